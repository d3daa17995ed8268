//! `qfc-lab diff A B`: two bundles compared phase by phase: differential flame graphs,
//! histogram shifts, load changes, and plain verdict sentences such as
//! "fsyncs per block 0 -> 1; a disk-write stall appeared in off-CPU (12% of off-CPU time)".
//!
//! It decides which phases are compared (same name in both bundles; the others are
//! listed in a warning), which differences are worth a sentence ([`phase_sentences`]:
//! a figure that appeared, vanished or moved by the thresholds there), and when a
//! comparison is doubtful (other scenario, other seed, emulation on one side only).
//!
//! Repeated bundles (issue 15) get [`diff_repeated`] instead: per phase and key
//! figure ([`DIFF_FIGURES`] and the load statistics), the noise-aware comparison of
//! `stats::compare` (one Benjamini-Hochberg correction across all figures), the
//! regression gate of `stats::gate` with `--fail-on-regression`, and its Markdown
//! ([`RepeatedDiff::markdown`]) and JSON forms. A single run on either side is n = 1:
//! "no noise estimate", never "significant".

use super::charts::diff_flame_svg;
use super::evidence::{Bundle, PhaseEvidence};
use super::figures::{eval_name, Ctx};
use super::render::{cell, num, Block, Doc};

/// Figures shown side by side for every phase.
pub const DIFF_FIGURES: &[&str] = &[
    "node.blocks",
    "fsync.count",
    "fsync.per_block",
    "fsync.p50_us",
    "fsync.p99_us",
    "writepath.writes_per_s",
    "writepath.fsyncs_per_s",
    "bio.p50_us{rwbs=W}",
    "bio.p99_us{rwbs=W}",
    "bio.p99_us{rwbs=WS}",
    "bio.p99_us{rwbs=FWS}",
    "offcpu.total_s",
    "offcpu.share{reason=disk}",
    "offcpu.share{reason=futex}",
    "offcpu.disk_write_stall",
    "oncpu.samples",
    "oncpu.share{area=hashing}",
    "oncpu.cpu_s_per_s{area=hashing}",
    "oncpu.cpu_s_per_s{area=hashing,role=plain_thread}",
    "oncpu.cpu_s_per_s{area=hashing,role=tokio}",
    "oncpu.share{area=crypto}",
    "oncpu.share{area=log_formatting}",
    "oncpu.share{area=allocator}",
    "oncpu.share{area=rocksdb}",
    "oncpu.share{area=network}",
    "oncpu.share{area=kernel}",
    "rocksdb.l0_files.max",
    "rocksdb.pending_compaction_bytes.max",
    "rocksdb.stall_us",
    "rocksdb.wal_syncs",
];

pub const LOAD_STATS: &[&str] = &["throughput_per_s", "p50_ms", "p99_ms", "max_ms", "errors"];

/// Result of a diff: the document and the flame graphs to write (file name, SVG).
pub struct DiffResult {
    pub doc: Doc,
    pub sentences: Vec<String>,
    pub files: Vec<(String, String)>,
}

fn change(a: f64, b: f64) -> String {
    if a == 0.0 {
        if b == 0.0 {
            "=".into()
        } else {
            "new".into()
        }
    } else {
        let pct = 100.0 * (b - a) / a.abs();
        format!("{}{}%", if pct >= 0.0 { "+" } else { "" }, num(pct))
    }
}

/// How much of the hashing the miner accounts for, in CPU-seconds per second (not shares:
/// the total shrinks too when the miner stops): hashing on miner-shaped stacks
/// (thread_start without tokio frames) before and after, and the fall of all hashing as a
/// share of the before amount.
fn miner_sentence(a: &PhaseEvidence, b: &PhaseEvidence, ca: &Ctx, cb: &Ctx) -> Option<String> {
    let f = |n: &str, p: &PhaseEvidence, c: &Ctx| eval_name(n, p, c).ok();
    let all = "oncpu.cpu_s_per_s{area=hashing}";
    let miner = "oncpu.cpu_s_per_s{area=hashing,role=plain_thread}";
    let (ha, hb) = (f(all, a, ca)?, f(all, b, cb)?);
    let (ma, mb) = (f(miner, a, ca)?, f(miner, b, cb)?);
    if ha.max(hb) <= 0.0 {
        return None;
    }
    let (hi, lo, mhi, mlo) = if ha >= hb {
        (ha, hb, ma, mb)
    } else {
        (hb, ha, mb, ma)
    };
    Some(format!(
        "hashing {} -> {} CPU-s/s (miner-shaped stacks {} -> {}): the {} run's hashing is {}% lower, and the miner accounts for {}% of the higher run's hashing",
        num(ha),
        num(hb),
        num(ma),
        num(mb),
        if ha >= hb { "second" } else { "first" },
        num(100.0 * (hi - lo) / hi),
        num(100.0 * (mhi - mlo).max(0.0) / hi),
    ))
}

/// Plain sentences for one phase.
pub fn phase_sentences(a: &PhaseEvidence, b: &PhaseEvidence, ca: &Ctx, cb: &Ctx) -> Vec<String> {
    let mut out = Vec::new();
    let f = |name: &str, p: &PhaseEvidence, c: &Ctx| eval_name(name, p, c);
    // fsyncs per block is the finding; when either side cannot give it (no
    // metrics, no block), the raw counts still say something, with the reasons.
    match (f("fsync.per_block", a, ca), f("fsync.per_block", b, cb)) {
        (Ok(x), Ok(y)) => out.push(format!("fsyncs per block {} -> {}", num(x), num(y))),
        (x, y) => {
            if let (Ok(cx), Ok(cy)) = (f("fsync.count", a, ca), f("fsync.count", b, cb)) {
                out.push(format!(
                    "fsync calls {} -> {} (per block: {})",
                    num(cx),
                    num(cy),
                    [
                        x.err().map(|e| format!("A: {e}")),
                        y.err().map(|e| format!("B: {e}"))
                    ]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join("; ")
                ));
            }
        }
    }
    match (
        f("offcpu.disk_write_stall", a, ca),
        f("offcpu.disk_write_stall", b, cb),
    ) {
        (Ok(x), Ok(y)) if x == 0.0 && y > 0.0 => out.push(format!(
            "a disk-write stall appeared in off-CPU ({}% of off-CPU time)",
            num(y)
        )),
        (Ok(x), Ok(y)) if x > 0.0 && y == 0.0 => out.push(format!(
            "the disk-write stall disappeared from off-CPU (was {}% of off-CPU time)",
            num(x)
        )),
        (Ok(x), Ok(y)) if x > 0.0 => out.push(format!(
            "a disk-write stall is in off-CPU in both ({}% -> {}% of off-CPU time)",
            num(x),
            num(y)
        )),
        (Ok(_), Ok(_)) => out.push("no disk-write stall in off-CPU in either".into()),
        _ => {}
    }
    if let Some(line) = miner_sentence(a, b, ca, cb) {
        out.push(line);
    }
    for area in [
        "hashing",
        "crypto",
        "log_formatting",
        "allocator",
        "rocksdb",
        "network",
        "kernel",
    ] {
        let n = format!("oncpu.share{{area={area}}}");
        if let (Ok(x), Ok(y)) = (f(&n, a, ca), f(&n, b, cb)) {
            // a move of 5 points of the self share or more is worth a sentence
            if (y - x).abs() >= 5.0 {
                out.push(format!("on-CPU {area} share {}% -> {}%", num(x), num(y)));
            }
        }
    }
    for n in ["fsync.p99_us", "bio.p99_us{rwbs=W}"] {
        if let (Ok(x), Ok(y)) = (f(n, a, ca), f(n, b, cb)) {
            // log2 buckets: only a change of at least one whole bucket is real
            if x > 0.0 && (y / x >= 2.0 || y / x <= 0.5) {
                out.push(format!(
                    "{n} moved {} -> {} us (bucket upper edges)",
                    num(x),
                    num(y)
                ));
            }
        }
    }
    let mut workloads: Vec<&String> = a
        .load
        .iter()
        .chain(b.load.iter())
        .flat_map(|l| l.keys())
        .collect();
    workloads.sort();
    workloads.dedup();
    for w in workloads {
        let n = format!("load.{w}.p99_ms");
        if let (Ok(x), Ok(y)) = (f(&n, a, ca), f(&n, b, cb)) {
            // HdrHistogram percentiles are exact to 0.1%: 20% is a real move
            if x > 0.0 && ((y - x) / x).abs() >= 0.2 {
                out.push(format!(
                    "{w} p99 latency {} -> {} ms ({})",
                    num(x),
                    num(y),
                    change(x, y)
                ));
            }
        }
        let n = format!("load.{w}.errors");
        if let (Ok(x), Ok(y)) = (f(&n, a, ca), f(&n, b, cb)) {
            if x != y {
                out.push(format!("{w} errors {} -> {}", num(x), num(y)));
            }
        }
    }
    out
}

/// Compares bundle `a` (before) with bundle `b` (after).
pub fn diff(a: &Bundle, b: &Bundle) -> DiffResult {
    let ca = Ctx {
        emulated: a.emulated,
    };
    let cb = Ctx {
        emulated: b.emulated,
    };
    let mut doc = Doc {
        title: "qfc-lab diff".into(),
        blocks: Vec::new(),
    };
    let mut files = Vec::new();
    let mut all_sentences = Vec::new();
    header(&mut doc, a, b);
    for pa in &a.phases {
        let Some(pb) = b.phases.iter().find(|q| q.name == pa.name) else {
            continue;
        };
        doc.h(1, format!("Phase {}", pa.name));
        let sentences = phase_sentences(pa, pb, &ca, &cb);
        if sentences.is_empty() {
            doc.p("No figure comparable in both bundles.");
        } else {
            doc.p(format!("**{}.**", sentences.join("; ")));
        }
        all_sentences.extend(sentences.iter().map(|s| format!("{}: {s}", pa.name)));
        doc.table(
            &["figure", "A", "B", "change"],
            figure_rows(pa, pb, &ca, &cb),
        );
        histogram_tables(&mut doc, pa, pb);
        flame_diffs(&mut doc, &mut files, pa, pb);
    }
    DiffResult {
        doc,
        sentences: all_sentences,
        files,
    }
}

/// Which bundles, and the warnings that make a comparison doubtful: other
/// scenario, other seed, emulation on one side, phases on one side only.
fn header(doc: &mut Doc, a: &Bundle, b: &Bundle) {
    doc.list(vec![
        format!(
            "A (before): {} ({}, seed {})",
            dir_name(&a.dir),
            a.scenario.name,
            a.scenario
                .seed
                .map(|s| s.to_string())
                .unwrap_or_else(|| "?".into())
        ),
        format!(
            "B (after): {} ({}, seed {})",
            dir_name(&b.dir),
            b.scenario.name,
            b.scenario
                .seed
                .map(|s| s.to_string())
                .unwrap_or_else(|| "?".into())
        ),
    ]);
    if a.scenario.name != b.scenario.name {
        doc.warn(format!(
            "the bundles come from different scenarios ({:?} and {:?}): differences may come from the scenarios, not from the change under test",
            a.scenario.name, b.scenario.name
        ));
    }
    if a.scenario.seed != b.scenario.seed {
        doc.warn(format!(
            "the bundles used different seeds ({} and {}): load and data differ between them",
            a.scenario
                .seed
                .map(|s| s.to_string())
                .unwrap_or_else(|| "?".into()),
            b.scenario
                .seed
                .map(|s| s.to_string())
                .unwrap_or_else(|| "?".into())
        ));
    }
    if a.emulated != b.emulated {
        doc.warn("one bundle comes from an emulated target and the other does not: timings are not comparable");
    } else if a.emulated == Some(true) {
        doc.warn("both bundles come from an emulated target (QEMU TCG): compare counts and paths, not times");
    }
    let only_a: Vec<&str> = a
        .phases
        .iter()
        .filter(|p| !b.phases.iter().any(|q| q.name == p.name))
        .map(|p| p.name.as_str())
        .collect();
    let only_b: Vec<&str> = b
        .phases
        .iter()
        .filter(|p| !a.phases.iter().any(|q| q.name == p.name))
        .map(|p| p.name.as_str())
        .collect();
    if !only_a.is_empty() || !only_b.is_empty() {
        doc.warn(format!(
            "phases only in A: {}; only in B: {}",
            if only_a.is_empty() {
                "none".into()
            } else {
                only_a.join(", ")
            },
            if only_b.is_empty() {
                "none".into()
            } else {
                only_b.join(", ")
            }
        ));
    }
}

/// The registry's diff figures and every load statistic of the workloads on
/// either side; a figure that neither side can evaluate is left out.
fn figure_rows(pa: &PhaseEvidence, pb: &PhaseEvidence, ca: &Ctx, cb: &Ctx) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for n in DIFF_FIGURES {
        let unit = super::figures::parse_figure(n)
            .map(|f| f.unit)
            .unwrap_or("");
        let (x, y) = (eval_name(n, pa, ca), eval_name(n, pb, cb));
        if x.is_err() && y.is_err() {
            continue;
        }
        let ch = match (&x, &y) {
            (Ok(x), Ok(y)) => change(*x, *y),
            _ => String::new(),
        };
        rows.push(vec![format!("`{n}`"), cell(&x, unit), cell(&y, unit), ch]);
    }
    let mut workloads: Vec<&String> = pa
        .load
        .iter()
        .chain(pb.load.iter())
        .flat_map(|l| l.keys())
        .collect();
    workloads.sort();
    workloads.dedup();
    for w in workloads {
        for s in LOAD_STATS {
            let n = format!("load.{w}.{s}");
            let unit = super::figures::parse_figure(&n)
                .map(|f| f.unit)
                .unwrap_or("");
            let (x, y) = (eval_name(&n, pa, ca), eval_name(&n, pb, cb));
            let ch = match (&x, &y) {
                (Ok(x), Ok(y)) => change(*x, *y),
                _ => String::new(),
            };
            rows.push(vec![format!("`{n}`"), cell(&x, unit), cell(&y, unit), ch]);
        }
    }
    rows
}

/// Histogram shifts, bucket by bucket: fsync latency and block-IO latency per RWBS.
fn histogram_tables(doc: &mut Doc, pa: &PhaseEvidence, pb: &PhaseEvidence) {
    // histogram shifts: bucket by bucket for fsync and bio W
    let hist_rows = |ha: Option<&super::hist::Log2Hist>, hb: Option<&super::hist::Log2Hist>| {
        let mut m: std::collections::BTreeMap<(u64, u64), (u64, u64)> = Default::default();
        if let Some(h) = ha {
            for bk in h.buckets() {
                m.entry((bk.lo, bk.hi)).or_default().0 += bk.count;
            }
        }
        if let Some(h) = hb {
            for bk in h.buckets() {
                m.entry((bk.lo, bk.hi)).or_default().1 += bk.count;
            }
        }
        m.into_iter()
            .map(|((lo, hi), (x, y))| vec![format!("[{lo}, {hi})"), x.to_string(), y.to_string()])
            .collect::<Vec<_>>()
    };
    let fa = pa.fsync.as_ref().and_then(|f| f.latency_us.as_ref());
    let fb = pb.fsync.as_ref().and_then(|f| f.latency_us.as_ref());
    let r = hist_rows(fa, fb);
    if !r.is_empty() {
        doc.h(2, "fsync latency histogram (us)");
        doc.table(&["bucket", "A", "B"], r);
    }
    let mut rwbs: Vec<&String> = pa
        .bio
        .iter()
        .chain(pb.bio.iter())
        .flat_map(|x| x.by_rwbs_us.keys())
        .collect();
    rwbs.sort();
    rwbs.dedup();
    for k in rwbs {
        let r = hist_rows(
            pa.bio.as_ref().and_then(|x| x.by_rwbs_us.get(k)),
            pb.bio.as_ref().and_then(|x| x.by_rwbs_us.get(k)),
        );
        if !r.is_empty() {
            doc.h(2, format!("block-IO latency histogram, RWBS {k} (us)"));
            doc.table(&["bucket", "A", "B"], r);
        }
    }
}

/// Differential flame graphs (on-CPU and off-CPU) of one phase: inline in the
/// document and as files for `--out`.
fn flame_diffs(
    doc: &mut Doc,
    files: &mut Vec<(String, String)>,
    pa: &PhaseEvidence,
    pb: &PhaseEvidence,
) {
    for (which, sa, sb, unit) in [
        ("oncpu", &pa.oncpu, &pb.oncpu, "samples"),
        ("offcpu", &pa.offcpu, &pb.offcpu, "us"),
    ] {
        let ta = sa.as_ref().map(|s| s.folded.to_text()).unwrap_or_default();
        let tb = sb.as_ref().map(|s| s.folded.to_text()).unwrap_or_default();
        let name = format!("{}-{which}-diff.svg", pa.name);
        let svg = diff_flame_svg(
            &ta,
            &tb,
            &format!("{which} {}: A -> B (red grew, blue shrank)", pa.name),
            unit,
        );
        if let Some(s) = &svg {
            files.push((name.clone(), s.clone()));
        }
        doc.blocks.push(Block::Svg {
            title: format!("differential {which} flame graph, phase {}", pa.name),
            link: svg.as_ref().map(|_| name.clone()),
            svg,
        });
    }
}

/// The bundle's directory name (not its full path, so that output does not depend on where
/// the bundles live).
fn dir_name(p: &std::path::Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

// ---------------------------------------------------------------------------
// Noise-aware diff of repeated bundles (issue 15)
// ---------------------------------------------------------------------------

/// One side of a noise-aware diff: a parent bundle of `run --repeat` (its
/// repetitions in the statistics) or a single run (n = 1), as
/// `repeat::side` reads it.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct Side {
    /// The bundle's directory name.
    pub dir: String,
    pub scenario: String,
    pub seed: Option<u64>,
    #[serde(skip)]
    pub emulated: Option<bool>,
    /// Whether it is a parent bundle of repetitions.
    pub repeated: bool,
    /// Repetitions in the statistics (1 for a single run).
    pub repetitions: usize,
    /// Repetitions left out, with the reason.
    pub excluded: Vec<String>,
    /// Per phase and key figure, one value per repetition.
    #[serde(skip)]
    pub series: Vec<crate::stats::Series>,
}

/// A figure's comparison and, with `--fail-on-regression`, its gate.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct Compared {
    #[serde(flatten)]
    pub comparison: crate::stats::compare::Comparison,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<crate::stats::gate::GateResult>,
}

/// The noise-aware diff: every figure both sides have, compared with the
/// exact rank test and the Benjamini-Hochberg correction across all of
/// them (`--json` prints it).
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct RepeatedDiff {
    pub schema_version: u32,
    pub a: Side,
    pub b: Side,
    pub warnings: Vec<String>,
    pub alpha: f64,
    pub comparisons: Vec<Compared>,
    /// `phase: figure` measured on one side only.
    pub only_a: Vec<String>,
    pub only_b: Vec<String>,
    /// Whether `--fail-on-regression` was given.
    pub gated: bool,
    /// Figures that are regressions (`--fail-on-regression`).
    pub regressions: Vec<String>,
}

/// Compares the figures of `a` (before) and `b` (after); with `thresholds`
/// each comparison is gated ([`crate::stats::gate`]: only a figure that has
/// a threshold, its own or the default, is gated).
pub fn diff_repeated(
    a: &Side,
    b: &Side,
    thresholds: Option<&crate::stats::gate::Thresholds>,
    settings: &crate::stats::Settings,
) -> Result<RepeatedDiff, crate::stats::StatsError> {
    use crate::stats::compare::compare_all;
    let key = |s: &crate::stats::Series| (s.phase.clone(), s.name.clone());
    let label =
        |s: &crate::stats::Series| format!("{}: {}", s.phase.as_deref().unwrap_or("run"), s.name);
    let mut pairs = Vec::new();
    let mut only_a = Vec::new();
    for sa in &a.series {
        match b.series.iter().find(|sb| key(sb) == key(sa)) {
            Some(sb) => pairs.push((sa.clone(), sb.clone())),
            None => only_a.push(label(sa)),
        }
    }
    let only_b = b
        .series
        .iter()
        .filter(|sb| !a.series.iter().any(|sa| key(sa) == key(sb)))
        .map(label)
        .collect();
    let comparisons: Vec<Compared> = compare_all(&pairs, settings)?
        .into_iter()
        .map(|c| {
            let gate = thresholds.map(|t| match t.for_figure(&c.figure) {
                Some(th) => crate::stats::gate::gate(&c, th),
                None => crate::stats::gate::GateResult {
                    figure: c.figure.clone(),
                    regression: false,
                    reason: "no threshold for this figure: not gated".into(),
                },
            });
            Compared {
                comparison: c,
                gate,
            }
        })
        .collect();
    let regressions = comparisons
        .iter()
        .filter(|c| c.gate.as_ref().is_some_and(|g| g.regression))
        .map(|c| {
            format!(
                "{}: {}",
                c.comparison.phase.as_deref().unwrap_or("run"),
                c.comparison.figure
            )
        })
        .collect();
    let mut warnings = Vec::new();
    if a.scenario != b.scenario {
        warnings.push(format!(
            "the bundles come from different scenarios ({:?} and {:?}): differences may come from the scenarios, not from the change under test",
            a.scenario, b.scenario
        ));
    }
    if a.seed != b.seed {
        warnings.push(format!(
            "the bundles used different seeds ({} and {}): load and data differ between them",
            seed(a.seed),
            seed(b.seed)
        ));
    }
    if a.emulated != b.emulated {
        warnings.push("one bundle comes from an emulated target and the other does not: timings are not comparable".into());
    }
    if a.repetitions < 2 || b.repetitions < 2 {
        warnings.push(format!(
            "no noise estimate: {} vs {} repetitions; a side with one run cannot tell an effect from noise, so no figure is called significant: run both with --repeat 5",
            a.repetitions, b.repetitions
        ));
    }
    Ok(RepeatedDiff {
        schema_version: crate::schema::SCHEMA_VERSION,
        a: a.clone(),
        b: b.clone(),
        warnings,
        alpha: settings.alpha,
        comparisons,
        only_a,
        only_b,
        gated: thresholds.is_some(),
        regressions,
    })
}

fn seed(s: Option<u64>) -> String {
    s.map(|s| s.to_string()).unwrap_or_else(|| "?".into())
}

fn side_line(which: &str, s: &Side) -> String {
    let reps = if s.repeated {
        format!("{} repetitions in the statistics", s.repetitions)
    } else {
        "one run".to_string()
    };
    let excluded = if s.excluded.is_empty() {
        String::new()
    } else {
        format!("; left out: {}", s.excluded.join(", "))
    };
    format!(
        "{which}: {} ({}, seed {}, {reps}{excluded})",
        s.dir,
        s.scenario,
        seed(s.seed)
    )
}

impl RepeatedDiff {
    /// Markdown: the sides, the warnings, the method, then per phase a
    /// table and one verdict sentence per figure.
    pub fn markdown(&self) -> String {
        use crate::stats::compare::Outcome;
        let mut o = String::from("# qfc-lab diff (repeated runs)\n\n");
        o += &format!(
            "- {}\n- {}\n\n",
            side_line("A (before)", &self.a),
            side_line("B (after)", &self.b)
        );
        for w in &self.warnings {
            o += &format!("> **Warning:** {w}\n\n");
        }
        let tested = self
            .comparisons
            .iter()
            .filter(|c| c.comparison.test.is_some())
            .count();
        let significant = self
            .comparisons
            .iter()
            .filter(|c| c.comparison.outcome == Outcome::Significant)
            .count();
        o += &format!(
            "Per figure: the change of the median, the Hodges-Lehmann shift with its interval, the exact two-sided Mann-Whitney test, Cliff's delta, and Benjamini-Hochberg adjusted p over the {tested} figures with a noise estimate, significant at alpha = {} (docs/STATISTICS.md). **{significant} of {} figures significant.**\n\n",
            self.alpha,
            self.comparisons.len()
        );
        if self.gated {
            if self.regressions.is_empty() {
                o += "**Regression gate: no regression.**\n\n";
            } else {
                o += &format!(
                    "**Regression gate: {} regressions: {}.**\n\n",
                    self.regressions.len(),
                    self.regressions.join(", ")
                );
            }
        }
        let mut phases: Vec<Option<&str>> = Vec::new();
        for c in &self.comparisons {
            let p = c.comparison.phase.as_deref();
            if !phases.contains(&p) {
                phases.push(p);
            }
        }
        for p in phases {
            o += &format!("## Phase {}\n\n", p.unwrap_or("run"));
            o += "| figure | median A | median B | change | shift [CI] | p | p (BH) | Cliff's delta | verdict |";
            if self.gated {
                o += " gate |";
            }
            o += "\n|---|---:|---:|---:|---|---:|---:|---:|---|";
            if self.gated {
                o += "---|";
            }
            o += "\n";
            let here: Vec<&Compared> = self
                .comparisons
                .iter()
                .filter(|c| c.comparison.phase.as_deref() == p)
                .collect();
            for c in &here {
                let x = &c.comparison;
                let shift = x
                    .shift
                    .map(|s| format!("{} [{}, {}]", num(s.estimate), num(s.lo), num(s.hi)))
                    .unwrap_or_default();
                let opt = |v: Option<f64>| v.map(num).unwrap_or_default();
                let verdict = match x.outcome {
                    Outcome::Significant => "significant",
                    Outcome::WithinNoise => "within noise",
                    Outcome::NoNoiseEstimate => "no noise estimate",
                };
                o += &format!(
                    "| `{}` | {} | {} | {}{} | {shift} | {} | {} | {} | {verdict} |",
                    x.figure,
                    num(x.median_a),
                    num(x.median_b),
                    num(x.change),
                    x.change_rel
                        .map(|r| format!(" ({:+.1}%)", r * 100.0))
                        .unwrap_or_default(),
                    opt(x.test.map(|t| t.p)),
                    opt(x.p_adjusted),
                    opt(x.cliffs_delta),
                );
                if self.gated {
                    o += &format!(
                        " {} |",
                        match &c.gate {
                            Some(g) if g.regression => "**REGRESSION**".to_string(),
                            Some(g) => g.reason.clone(),
                            None => String::new(),
                        }
                    );
                }
                o += "\n";
            }
            o += "\n";
            for c in &here {
                o += &format!("- {}", c.comparison.sentence);
                if let Some(g) = c.gate.as_ref().filter(|g| g.regression) {
                    o += &format!(" **Gate: {}.**", g.reason);
                }
                o += "\n";
            }
            o += "\n";
        }
        if !self.only_a.is_empty() || !self.only_b.is_empty() {
            let l = |v: &[String]| {
                if v.is_empty() {
                    "none".to_string()
                } else {
                    v.join(", ")
                }
            };
            o += &format!(
                "Measured on one side only (not compared): A: {}; B: {}.\n",
                l(&self.only_a),
                l(&self.only_b)
            );
        }
        o
    }
}

#[cfg(test)]
mod repeated_tests {
    use super::*;
    use crate::stats::gate::Thresholds;
    use crate::stats::{Direction, Series, Settings};

    fn side(repeated: bool, per_block: &[f64], p99: &[f64]) -> Side {
        let mut f = Series::new(
            "fsync.per_block",
            "calls/block",
            Direction::Lower,
            per_block,
        );
        f.phase = Some("load".into());
        let mut l = Series::new("load.rpc.p99_ms", "ms", Direction::Lower, p99);
        l.phase = Some("load".into());
        Side {
            dir: "x".into(),
            scenario: "s".into(),
            seed: Some(1),
            emulated: Some(false),
            repeated,
            repetitions: per_block.len(),
            excluded: vec![],
            series: vec![f, l],
        }
    }

    const NOISE: [f64; 5] = [10.0, 11.0, 9.5, 10.5, 10.2];

    #[test]
    fn fsync_off_vs_on_is_significant_and_gated() {
        let a = side(true, &[0.0; 5], &NOISE);
        let b = side(true, &[1.0; 5], &NOISE);
        let t = Thresholds::parse("fsync.per_block=0.5").unwrap();
        let d = diff_repeated(&a, &b, Some(&t), &Settings::default()).unwrap();
        let md = d.markdown();
        assert!(md.contains("significant (p = 0.008, n = 5 vs 5)"), "{md}");
        assert!(md.contains("within noise"), "{md}");
        assert_eq!(d.regressions, vec!["load: fsync.per_block".to_string()]);
        // the load p99 has no threshold of its own and no default: not gated
        let same = diff_repeated(
            &a,
            &a,
            Some(&Thresholds::parse("0%").unwrap()),
            &Settings::default(),
        )
        .unwrap();
        assert!(same.regressions.is_empty());
        assert!(!same.markdown().contains("significant ("));
    }

    #[test]
    fn a_single_side_is_never_significant() {
        let a = side(true, &[0.0; 5], &NOISE);
        let b = side(false, &[1.0], &[50.0]);
        let d = diff_repeated(
            &a,
            &b,
            Some(&Thresholds::parse("0%").unwrap()),
            &Settings::default(),
        )
        .unwrap();
        let md = d.markdown();
        assert!(md.contains("no noise estimate"), "{md}");
        assert!(!md.contains("significant ("), "{md}");
        assert!(d.regressions.is_empty());
    }
}
