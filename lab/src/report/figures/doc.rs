//! docs/FIGURES.md, generated from the registry: the general sections around
//! it, then one section per family (its intro, a table of its figures, its
//! notes), then what the report reads and writes. `cargo xtask figures-doc`
//! writes the file; a test fails when the file differs from [`markdown`].

use super::entry::Family;
use crate::stats::Direction;

/// Before the families: what a figure is and how names are written.
const PREAMBLE: &str = r#"# Figures

The one place where figure names are documented. A figure is a number computed from a
bundle for one phase (or for the whole run); `[[expect]]` entries in a scenario compare a
figure with a bound, the report shows them, `qfc-lab diff` compares them between bundles,
and `qfc-lab import-t1` computes them from T1's production files. The registry is
`lab/src/report/figures/` (one file per family); this file is generated from it by
`cargo xtask figures-doc`, and a test fails when it is not current: edit the registry,
not this file.

## Names

    name                       plain
    name{key=value}            with a selector, e.g. bio.p99_us{rwbs=W}
    name{k1=a,k2=b}            several selectors
    oncpu.share_matching:REGEX a regex over frame names (Rust `regex` syntax)

An unknown name, selector or selector value is an error at `qfc-lab validate` time (with
a did-you-mean). A figure that cannot be computed is never made up: it evaluates to
"cannot evaluate" with the reason (evidence absent, metric not exported, no block
produced, ...). Shares are percentages (0-100), not fractions.

With `phase = "..."` a figure is computed over that phase's window; without it, over the
whole run (stacks, histograms and counts of all phases added up; load percentiles cannot
be merged from per-phase summaries and then cannot be evaluated).

The **good** column is the figure's good direction: `lower` (latency, fsyncs per block,
stalls), `higher` (throughput, blocks) or `none` (counts, sizes, shares that only move
between areas). `qfc-lab diff --fail-on-regression` gates only a significant change in
the bad direction (docs/STATISTICS.md); `none` figures are reported, never gated."#;

/// T1's findings (judged in `report/t1_findings.rs`), after the families.
const T1_FINDINGS: &str = r#"Each of T1's four findings gets a verdict: **reproduced**, **refuted**, or **not
comparable: <missing evidence>** (a bundle that lacks what a finding needs never gives
"reproduced"), with the figures on both sides, the reason and the bundle used. Several
bundles may be given; each finding takes the best-suited bundle that has its evidence.
The rules live in `lab/src/report/t1_findings.rs`:

| finding | evidence (preferred bundle) | reproduced when | refuted when |
|---|---|---|---|
| 1. 47% in blake3 `portable::compress_in_place` ("no NEON backend") | on-CPU stacks (an aarch64 target) | hashing self share >= 20% | below 20% |
| 2. 17% formatting SyncResponse logs at INFO; stdout copied by containerd-shim and dockerd | on-CPU stacks and a system-wide write path on a container target | log formatting self share >= 5% and the runtime wrote (containerd*, dockerd) | log formatting < 5%, or a system-wide container capture with no runtime write; without such a capture: not comparable |
| 3. no fsync/fdatasync from block commits (before T3.2) | fsync calls by thread and the block count (probes scoped to the node) | 0 syncs on the node's non-RocksDB threads | any; RocksDB background threads (`rocksdb:*`: flush, `SyncClosedLogs`, compaction) are counted apart, and off-CPU sync stacks are split into block-commit path and background flush by their user frames |
| 4. off-CPU only futex and TCP, no io_schedule | off-CPU stacks (probes scoped to the node) | no disk-write stall path (fsync, fdatasync, writeback, journal, dirty throttling) and other disk waits < 1 ms per second of the window | any disk-write stall, or other disk waits >= 1 ms/s; the verdict states that T1 filtered by the thread name `qfc-node` and the lab by process |

Finding 1's diagnosis is answered in one sentence: the share of hashing CPU-seconds on
miner-shaped stacks (`plain_thread`) against block hashing on tokio workers, on the lab
bundle and on T1's own stacks; at 90% or more on the miner, the blake3 share is the
miner's work, not a missing NEON backend."#;

/// After the families: the input files the report reads and what it writes.
const APPENDIX: &str = r#"## Inputs the report reads (contract with probes, loadgen and the spine)

Adapters live only in `lab/src/report/inputs.rs`; every file is optional, and a file that
does not parse as its type becomes a note naming the file and the field, not a number.

- `timeline.json`: `{"phases": [{"name", "start_ns", "end_ns"}]}` on the monotonic clock.
- `scenario.toml`: `name`, `seed`, `[[phase]]` (`name`, `duration_s`), `[[expect]]`.
- `context.json` / `manifest.json`: an `emulated` boolean anywhere (e.g.
  `{"target": {"kind": "qemu", "arch": "aarch64", "accel": "tcg", "emulated": true}}`),
  `kind`, `arch`, `accel` strings for the header.
- `probes/session.json`, `probes/<phase>/{fsync,writepath,bio,oncpu,offcpu}.json`: the
  types of `bundle_schema::probes` (`Session`, `SyscallFile`, `BioFile`, `OncpuFile`,
  `OffcpuFile`), the ones the probes write them with. The report reads `lost_events_total`,
  `overhead_pct`, `bpf_stats` (`{"state": "enabled", "how"}` or `{"state": "refused",
  "reason"}`) and per window (`windows[]`, by `phase`) `lost_total`,
  `truncated_stack_share` (probe -> share, the largest is shown), `cost` (`programs` and
  `probes`: `{"runs", "run_time_ns", "ns_per_event", "cpu_s"}`, `bpf_cpu_s`,
  `probe_process_cpu_s`, `target_cpu_s`, `target`, `overhead_share` 0-1) and
  `stack_quality` (probe -> `reached_root_share`, `method_share`, `lost_stacks`,
  `copies_cut_short`, `bytes_copied_per_s`, ...). From `fsync.json`: `total` and
  `by_thread`; from `bio.json`: `total`, `by_rwbs`, `bytes_by_rwbs`; from `writepath.json`:
  `rows` (`thread`, `syscall`, `count`) and `by_syscall`; from `oncpu.json`: `hz`. Each
  histogram is `{"count", "sum_us", "buckets": [{"lo", "hi", "count"}]}`, `hi` exclusive,
  microseconds. T1's bpftrace text (`fsync.txt`, `bio.txt`, `writepath.txt`, with T1's map
  names `@calls[comm]`, `@fsync_latency_us`, `@by_comm_us[comm]`, `@bio_by_rwbs_us`,
  `@bytes_by_rwbs`, `@op_by_thread[comm, tracepoint:syscalls:sys_enter_X]`, `@lat_us[...]`)
  is read when the JSON file is absent.
- `probes/<phase>/{oncpu,offcpu}.folded`: `[class];thread;root;...;leaf count`: an
  optional `[class]` frame (the probe's wait class, e.g. `[futex]`), then the **thread
  name (comm)**, then the stack root first; kernel frames end in `_[k]`; on-CPU counts are
  samples, off-CPU counts are microseconds.
- `load/<phase>/summary.json`, `load/<phase>/series.json`: the types of
  `bundle_schema::load` (`PhaseSummary`, `Series`), the ones loadgen writes them with. Per
  workload: `sent`, `ok`, `errors` (kind -> n), `dropped`, `throughput_per_s`, `latency`
  (`{"count", "p50_us", "p90_us", "p99_us", "p999_us", "max_us"}`), `pacing`; the phase's
  `floor` or `floor_missing`; per second: `t_ns` (monotonic), `ok`, `p99_us`. Missing
  percentiles are read from `<workload>.hdr` (HdrHistogram V2, values in microseconds).
- `metrics/series.jsonl`: one JSON object per line, `{"t_ns": monotonic, "phase",
  "samples": {"name{labels}": value}}` (as the spine writes it) or `{"t_ns", "prom":
  "<exposition text>"}`; failed scrapes (`{"t_ns", "error"}`) are skipped;
  `metrics/<phase>.prom` is the fallback when the series has no sample in a phase.

## Outputs

- `verdicts.json`: `{"schema_version", "scenario", "seed", "pass", "fail", "cannot_evaluate",
  "verdicts": [{"figure", "phase", "op", "bound", "value", "unit", "status" ("pass" | "fail" |
  "cannot-evaluate"), "reason", "why"}]}`; the same verdicts as JUnit XML in
  `verdicts.junit.xml` (a fail is a `<failure>`, a cannot-evaluate an `<error>`).
- `figures.json`: the key figures of every phase (those `diff` compares, and each
  workload's load statistics): `{"schema_version", "scenario", "seed", "emulated",
  "figures": [{"phase", "figure", "unit", "good", "value"}], "not_evaluated": [{"phase",
  "figure", "reason"}]}`; the same values as OpenMetrics in `figures.om` (family
  `qfc_lab_figure`, labels scenario, phase, repetition `1`, figure, unit). Schemas:
  docs/schema/.
- `report.md`, `report.html` (self-contained: flame graphs inline, each in an
  `<iframe srcdoc>` so their scripts stay separate; the timeline inline), `timeline.svg`.
- `qfc-lab run` calls `lab::report::finish_run(bundle_dir)` last and exits 1 when
  `outcome.verdicts.any_failed()`; `qfc-lab report DIR` does the same.
- `qfc-lab diff A B --out DIR`: `diff.md`, `diff.html`, `<phase>-{oncpu,offcpu}-diff.svg`.

## T1 (import-t1)

T1's files map onto one phase named `T1`: `01-fsync-latency.txt` (fsync, system-wide,
60 s), `02-bio-latency.txt` (bio, 60 s), `03-offcpu-qfcnode.txt` (off-CPU by thread name
`qfc-node`, 30 s; `@offcpu_us[stack]` keys, `+offset` stripped), `04-writepath-syscalls.txt`
(write path, 25 s), `05-oncpu.folded` (on-CPU, 20 s, no thread names, frames cut at the
first space). Duplicated keys (the two `@bio_by_rwbs_us[W]`) are merged and reported;
helper maps (`@start`, `@off`, `@ks`) are listed and ignored. T1 has no metrics and no
load: `fsync.per_block`, `node.*`, `rocksdb.*` and `load.*` cannot be evaluated for it."#;

/// The whole of docs/FIGURES.md for `families`.
pub fn markdown(families: &[&Family]) -> String {
    let mut out = String::new();
    out += PREAMBLE;
    out += "\n\n";
    for fam in families {
        out += &format!("## {}\n\n", fam.title);
        if !fam.intro.is_empty() {
            out += fam.intro;
            out += "\n\n";
        }
        out += "| figure | selectors | unit | good | meaning |\n|---|---|---|---|---|\n";
        for f in fam.figures {
            // an empty selectors cell is `| |`, as in tables written by hand
            let selectors = if f.selectors.is_empty() {
                String::new()
            } else {
                f.selectors.join(", ") + " "
            };
            let good = match f.good {
                Direction::Lower => "lower",
                Direction::Higher => "higher",
                Direction::None => "none",
            };
            out += &format!(
                "| `{}` | {selectors}| {} | {good} | {} |\n",
                f.name, f.unit, f.doc
            );
        }
        out += "\n";
        if !fam.notes.is_empty() {
            out += fam.notes;
            out += "\n\n";
        }
    }
    out += "## T1's findings (`qfc-lab findings t1`, `qfc-lab report --baseline`)\n\n";
    out += T1_FINDINGS;
    out += "\n\n";
    out += APPENDIX;
    out += "\n";
    out
}
