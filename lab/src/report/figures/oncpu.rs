//! The on-CPU family: figures over `probes/<phase>/oncpu.folded` (weight =
//! samples): sample counts, area shares by self or inclusive attribution, CPU
//! time per area and stack role, and the share of broken unwinds.

use regex::Regex;

use super::entry::{missing, pct, Ctx, Family, Fig, Figure, FigureRef};
use crate::report::evidence::{PhaseEvidence, StackData};
use crate::report::folded::{classify_oncpu, inclusive_areas, stack_role, Area, Role};
use crate::stats::Direction;

pub const FAMILY: Family = Family {
    name: "oncpu",
    title: "On-CPU (probes/<phase>/oncpu.folded; weight = samples)",
    intro: "",
    figures: &[
    Figure {
        name: "oncpu.samples",
        selectors: &["thread"],
        unit: "samples",
        good: Direction::None,
        doc: "on-CPU samples in the phase",
        eval: samples,
    },
    Figure {
        name: "oncpu.self_share",
        selectors: &["area"],
        unit: "%",
        good: Direction::None,
        doc: "share of samples whose **leaf-most recognised frame** is in the area; the areas sum to 100%",
        eval: |f, p, _| area_share(f, p, false),
    },
    Figure {
        name: "oncpu.inclusive_share",
        selectors: &["area"],
        unit: "%",
        good: Direction::None,
        doc: "share of samples with **any** frame in the area; a sample counts in every area it touches",
        eval: |f, p, _| area_share(f, p, true),
    },
    Figure {
        name: "oncpu.share",
        selectors: &["area", "thread"],
        unit: "%",
        good: Direction::None,
        doc: "with `area=`: the same as `oncpu.self_share`; with `thread=`: share of samples on a thread (comm)",
        eval: share,
    },
    Figure {
        name: "oncpu.cpu_s_per_s",
        selectors: &["area", "role", "thread"],
        unit: "CPU-s/s",
        good: Direction::Lower,
        doc: "CPU-seconds per second of the window: samples (in the area inclusively, on the stack role, on the thread) / sampling rate (`hz` of oncpu.json; T1: 99) / window",
        eval: cpu_s_per_s,
    },
    Figure {
        name: "oncpu.share_matching:<regex>",
        selectors: &[],
        unit: "%",
        good: Direction::None,
        doc: "share of samples with any frame matching the regex (e.g. `oncpu.share_matching:blake3::`)",
        eval: share_matching,
    },
    Figure {
        name: "oncpu.unknown_root_share",
        selectors: &[],
        unit: "%",
        good: Direction::Lower,
        doc: "share of samples whose root frame is `[unknown]` (broken unwind)",
        eval: unknown_root_share,
    },
    ],
    notes: r#"Areas (`area=`) come from one rule table, `AREA_RULES` in `lab/src/report/folded.rs`
(one test per rule). A frame (with any `_[k]` suffix stripped) is recognised by the first
rule, in this order, whose pattern it matches:

| area | frames |
|---|---|
| `hashing` | `blake3` |
| `crypto` | signature checks: `ed25519`, `curve25519`, `k256::`, `ecdsa`, `elliptic_curve`, `secp256k1` |
| `log_formatting` | `tracing_subscriber`, `tracing_core::field`, `core::fmt::`, `Debug` impls |
| `rocksdb` | `rocksdb` (any case) |
| `allocator` | `malloc`, `free`, `cfree`, `calloc`, `realloc`, glibc `_int_*`, `__rust_alloc/dealloc/realloc` |
| `rpc` | serving JSON-RPC over HTTP: `jsonrpsee`, `hyper::`, `hyper_util::`, `httparse::`, `http_body` (the handlers' own work below them goes to its leaf's area, the TCP underneath to `network`) |
| `network` | libp2p, yamux, multistream, noise, tokio/mio net, kernel TCP/IP frames |
| `node` | the node's own code: frames that start with `qfc_*::` (qfc-node's crates), `refnode::` or `wire::` (reference node), when nothing leaf-ward is recognised and the leaf is not a kernel frame (a syscall straight from the node's code is `kernel`); trait-impl frames (`<qfc_x::T as ...>`) are not matched, since T1's cut frames lose the trait: RPC handler bodies, transaction pool, chain logic |
| `kernel` | fallback: no frame recognised and the leaf frame is a kernel frame (`_[k]` suffix, or a known kernel symbol in T1's unmarked stacks); inclusively, any kernel frame |
| `other` | fallback: nothing recognised |

**Self** attribution names the work: a sample belongs to the area of its leaf-most
recognised frame, so Ed25519 checks (`curve25519_dalek` leaves) under the `jsonrpsee`
frames of an RPC handler are `crypto`, not `rpc`, the handler's own code there is `node`, and `malloc` under
`tracing_subscriber` is `allocator`. **Inclusive** shares show what a subsystem costs with
everything it calls. On T1's `05-oncpu.folded`: hashing 47.06% self and inclusive, log
formatting 15.30% self and 16.86% inclusive (the 1.56 points between are malloc/free
leaves under formatting frames); before issue 16 a sample went to the first area any
frame matched, which is what the inclusive figure keeps for these two areas.

Roles (`role=`), judged from the frames only, never from the thread name (T1 has no
thread names, and the real node's miner threads are named `tokio-rt-worker`):
`tokio` (tokio scheduler or blocking-pool frames: block production, RPC, sync),
`rocksdb_bg` (RocksDB's thread pool), `plain_thread` (`thread_start` without tokio
frames: the shape of the PoW miner threads), `kernel_or_unknown`, `other`. Miner hashing
is `oncpu.cpu_s_per_s{area=hashing,role=plain_thread}`, block hashing
`oncpu.cpu_s_per_s{area=hashing,role=tokio}`. Compare miner on and off in CPU-seconds per
second, not shares: the total shrinks too. `qfc-lab diff` prints one sentence with both.

Threads: the report lists, per area, the threads the samples ran on: the thread name
(first frame of each folded line in a lab bundle) and the role."#,
};

fn stacks(p: &PhaseEvidence) -> Result<&StackData, String> {
    p.oncpu.as_ref().ok_or_else(|| missing(p, "oncpu"))
}

/// Samples on the `{thread=...}` of `f`, if it names one.
fn on_thread(f: &FigureRef, s: &StackData) -> Result<Option<u64>, String> {
    let Some(t) = f.sel("thread") else {
        return Ok(None);
    };
    if !s.has_threads {
        return Err("these on-CPU stacks carry no thread names".into());
    }
    Ok(Some(
        s.folded
            .stacks
            .iter()
            .filter(|x| x.thread.as_deref() == Some(t))
            .map(|x| x.count)
            .sum(),
    ))
}

fn samples(f: &FigureRef, p: &PhaseEvidence, _: &Ctx) -> Fig {
    let s = stacks(p)?;
    Ok(match on_thread(f, s)? {
        Some(n) => n as f64,
        None => s.folded.total() as f64,
    })
}

/// `oncpu.share`: on a thread with `{thread=...}`, else the self share of `{area=...}`.
fn share(f: &FigureRef, p: &PhaseEvidence, _: &Ctx) -> Fig {
    let s = stacks(p)?;
    match on_thread(f, s)? {
        Some(n) => pct(n as f64, s.folded.total() as f64, "on-CPU samples"),
        None => area_share(f, p, false),
    }
}

/// Self attribution: the sample's area is that of its leaf-most recognised frame
/// (`classify_oncpu`), so the areas sum to 100. Inclusive: a sample counts in
/// every area any of its frames is in.
fn area_share(f: &FigureRef, p: &PhaseEvidence, inclusive: bool) -> Fig {
    let s = stacks(p)?;
    let area = f
        .sel("area")
        .and_then(Area::from_name)
        .ok_or_else(|| format!("{} needs {{area=...}}", f.base))?;
    let n: u64 = s
        .folded
        .stacks
        .iter()
        .filter(|x| {
            if inclusive {
                inclusive_areas(&x.frames).contains(&area)
            } else {
                classify_oncpu(&x.frames) == area
            }
        })
        .map(|x| x.count)
        .sum();
    pct(n as f64, s.folded.total() as f64, "on-CPU samples")
}

/// Samples (in the area inclusively, on the role, on the thread) / sampling rate /
/// window: CPU-seconds per second, comparable when the total changes.
fn cpu_s_per_s(f: &FigureRef, p: &PhaseEvidence, _: &Ctx) -> Fig {
    let s = stacks(p)?;
    let thread = f.sel("thread");
    if thread.is_some() && !s.has_threads {
        return Err("these on-CPU stacks carry no thread names".into());
    }
    let hz = s
        .sample_hz
        .ok_or("the on-CPU sampling rate is unknown (no probes.oncpu_hz in scenario.toml)")?;
    let window = s
        .window_s
        .filter(|w| *w > 0.0)
        .ok_or("the on-CPU window length is unknown")?;
    let area = f.sel("area").and_then(Area::from_name);
    let role = f.sel("role").and_then(Role::from_name);
    let n: u64 = s
        .folded
        .stacks
        .iter()
        .filter(|x| thread.is_none_or(|t| x.thread.as_deref() == Some(t)))
        .filter(|x| area.is_none_or(|a| inclusive_areas(&x.frames).contains(&a)))
        .filter(|x| role.is_none_or(|r| stack_role(&x.frames) == r))
        .map(|x| x.count)
        .sum();
    Ok(n as f64 / hz / window)
}

fn share_matching(f: &FigureRef, p: &PhaseEvidence, _: &Ctx) -> Fig {
    let s = stacks(p)?;
    let re = Regex::new(f.pattern.as_deref().unwrap_or("")).map_err(|e| e.to_string())?;
    pct(
        s.folded.matching(&re) as f64,
        s.folded.total() as f64,
        "on-CPU samples",
    )
}

fn unknown_root_share(_: &FigureRef, p: &PhaseEvidence, _: &Ctx) -> Fig {
    let s = stacks(p)?;
    pct(
        s.folded.unknown_root_weight() as f64,
        s.folded.total() as f64,
        "on-CPU samples",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::figures::entry::eval_in;

    fn eval_name(name: &str, p: &PhaseEvidence) -> Fig {
        eval_in(&[&FAMILY], name, p, &Ctx::default())
    }

    /// Known answer: 6 samples, 4 of them with a blake3 leaf (hashing), 2 of
    /// those on thread `miner`; 2 with a malloc leaf under tracing_subscriber
    /// (allocator by self attribution, log formatting inclusively).
    #[test]
    fn shares_and_cpu_time_of_known_stacks() {
        let folded = crate::report::folded::Folded::parse(
            "miner;std::sys::pal::unix::thread::Thread::new::thread_start;blake3::compress 2\n\
             tokio-rt-worker;tokio::runtime::park;blake3::compress 2\n\
             tokio-rt-worker;tracing_subscriber::fmt::format;malloc 2\n",
            true,
        );
        let p = PhaseEvidence {
            oncpu: Some(StackData {
                folded,
                window_s: Some(2.0),
                has_threads: true,
                sample_hz: Some(1.0),
            }),
            ..Default::default()
        };
        let f = |n: &str| eval_name(n, &p).unwrap();
        assert_eq!(f("oncpu.samples"), 6.0);
        assert_eq!(f("oncpu.samples{thread=miner}"), 2.0);
        assert!((f("oncpu.share{thread=miner}") - 100.0 / 3.0).abs() < 1e-9);
        assert!((f("oncpu.self_share{area=hashing}") - 200.0 / 3.0).abs() < 1e-9);
        assert_eq!(
            f("oncpu.share{area=hashing}"),
            f("oncpu.self_share{area=hashing}")
        );
        assert!((f("oncpu.self_share{area=allocator}") - 100.0 / 3.0).abs() < 1e-9);
        assert_eq!(f("oncpu.self_share{area=log_formatting}"), 0.0);
        assert!((f("oncpu.inclusive_share{area=log_formatting}") - 100.0 / 3.0).abs() < 1e-9);
        assert!((f("oncpu.share_matching:^blake3") - 200.0 / 3.0).abs() < 1e-9);
        // 4 hashing samples at 1 Hz over 2 s; 2 of them on the miner's plain thread
        assert_eq!(f("oncpu.cpu_s_per_s{area=hashing}"), 2.0);
        assert_eq!(f("oncpu.cpu_s_per_s{area=hashing,role=plain_thread}"), 1.0);
        let e = eval_name("oncpu.share", &p).unwrap_err();
        assert!(e.contains("needs {area=...}"), "{e}");
        let none = eval_name("oncpu.samples", &PhaseEvidence::default()).unwrap_err();
        assert!(none.contains("no oncpu evidence"), "{none}");
    }
}
