//! `probe-workload`: known-answer workloads for the probe tests and the
//! benchmarks. Each prints `ready <pid>`, waits for a line on stdin, does
//! exactly what it is told, prints `done`, then waits for stdin to close
//! before exiting (so the probe can read its memory maps).
use std::{
    fs::OpenOptions,
    io::{BufRead, Write},
    os::unix::fs::{FileExt, OpenOptionsExt},
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "probe-workload")]
struct Cli {
    #[command(subcommand)]
    work: Work,
    /// Do not wait for `go` and for stdin to close (for benchmarks).
    #[arg(long, global = true)]
    no_wait: bool,
}

#[derive(Subcommand)]
enum Work {
    /// Exactly N fdatasync calls on a file (one byte written before each).
    Fdatasync {
        #[arg(long)]
        count: u64,
        #[arg(long)]
        file: PathBuf,
        /// Pause this long after each call (paces the work across windows).
        #[arg(long, default_value_t = 0)]
        gap_us: u64,
    },
    /// Burn CPU in `qfc_probe_burn_cpu_7c1e` for this long. With
    /// `--threads N`, in N threads `qfc-burn-I` started after `go` (so after
    /// the probe attached); `done` then carries their CPU time in ns.
    Burn {
        #[arg(long)]
        ms: u64,
        #[arg(long, default_value_t = 0)]
        threads: u32,
    },
    /// Burn CPU in three functions with about 60/30/10% of the time
    /// (`qfc_probe_mix_a`, `_b`, `_c`), for the on-CPU cross-check with perf.
    Mix {
        #[arg(long)]
        ms: u64,
    },
    /// Sleep `count` times for `ms` each.
    Sleep {
        #[arg(long)]
        ms: u64,
        #[arg(long)]
        count: u64,
    },
    /// N writes of 4 KiB to a file, with O_DIRECT or followed by fsync.
    Write {
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        count: u64,
        #[arg(long)]
        direct: bool,
    },
    /// Two named threads: `qfc-wr-a` does A write() calls, `qfc-wr-b` does
    /// B pwrite64() calls and C fdatasync() calls.
    Threads {
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        writes: u64,
        #[arg(long)]
        pwrites: u64,
        #[arg(long)]
        syncs: u64,
    },
}

/// The uniquely named on-CPU frame the tests look for. Written without any
/// call (no iterator, no `black_box`, no checked arithmetic helpers) so that
/// even an unoptimized build samples this function as the leaf, and not a
/// callee that frame-pointer unwinding would show without it.
#[inline(never)]
fn qfc_probe_burn_cpu_7c1e(rounds: u64) -> u64 {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut i = 0u64;
    while i < rounds {
        x = ((x << 7) | (x >> 57)) ^ i;
        // SAFETY: an empty asm block as an optimization barrier.
        unsafe { std::arch::asm!("/* {0} */", inout(reg) x) };
        i += 1;
    }
    x
}

macro_rules! burner {
    ($name:ident) => {
        /// A leaf burner for the mix workload (no calls inside, see above).
        #[inline(never)]
        fn $name(rounds: u64) -> u64 {
            let mut x = rounds;
            let mut i = 0u64;
            while i < rounds {
                x = ((x << 9) | (x >> 55)) ^ i;
                // SAFETY: an empty asm block as an optimization barrier.
                unsafe { std::arch::asm!("/* {0} */", inout(reg) x) };
                i += 1;
            }
            x
        }
    };
}
burner!(qfc_probe_mix_a);
burner!(qfc_probe_mix_b);
burner!(qfc_probe_mix_c);

/// Burns in `qfc_probe_burn_cpu_7c1e` for `ms` of wall time.
fn burn_for(ms: u64) {
    let end = Instant::now() + Duration::from_millis(ms);
    let mut acc = 0u64;
    while Instant::now() < end {
        acc ^= qfc_probe_burn_cpu_7c1e(2_000_000);
    }
    std::hint::black_box(acc);
}

/// The calling thread's CPU time so far, in ns.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Does the work; `Some(value)` is printed after `done`.
fn run(work: &Work) -> Result<Option<u64>> {
    match work {
        Work::Fdatasync {
            count,
            file,
            gap_us,
        } => {
            let f = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(file)
                .with_context(|| format!("opening {}", file.display()))?;
            for i in 0..*count {
                f.write_at(&[i as u8], i).context("write")?;
                f.sync_data().context("fdatasync")?;
                if *gap_us > 0 {
                    std::thread::sleep(Duration::from_micros(*gap_us));
                }
            }
        }
        Work::Burn { ms, threads: 0 } => {
            burn_for(*ms);
        }
        Work::Burn { ms, threads } => {
            let ms = *ms;
            let handles = (0..*threads)
                .map(|i| {
                    std::thread::Builder::new()
                        .name(format!("qfc-burn-{i}"))
                        .spawn(move || {
                            burn_for(ms);
                            thread_cpu_ns()
                        })
                })
                .collect::<std::io::Result<Vec<_>>>()?;
            let mut cpu_ns = 0u64;
            for h in handles {
                cpu_ns += h.join().map_err(|_| anyhow::anyhow!("a burner panicked"))?;
            }
            return Ok(Some(cpu_ns));
        }
        Work::Mix { ms } => {
            let end = Instant::now() + Duration::from_millis(*ms);
            let mut acc = 0u64;
            while Instant::now() < end {
                acc ^= qfc_probe_mix_a(600_000);
                acc ^= qfc_probe_mix_b(300_000);
                acc ^= qfc_probe_mix_c(100_000);
            }
            std::hint::black_box(acc);
        }
        Work::Sleep { ms, count } => {
            for _ in 0..*count {
                std::thread::sleep(Duration::from_millis(*ms));
            }
        }
        Work::Write {
            file,
            count,
            direct,
        } => {
            let mut o = OpenOptions::new();
            o.create(true).write(true).truncate(true);
            if *direct {
                o.custom_flags(libc::O_DIRECT);
            }
            let f = o
                .open(file)
                .with_context(|| format!("opening {}", file.display()))?;
            // 4 KiB aligned buffer for O_DIRECT.
            let layout = std::alloc::Layout::from_size_align(4096, 4096).context("layout")?;
            // SAFETY: non-zero size; freed below.
            let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
            if ptr.is_null() {
                bail!("allocating 4 KiB");
            }
            // SAFETY: ptr is valid for 4096 bytes.
            let buf = unsafe { std::slice::from_raw_parts(ptr, 4096) };
            for i in 0..*count {
                f.write_at(buf, i * 4096).context("write")?;
                if !*direct {
                    f.sync_data().context("fdatasync")?;
                }
            }
            // SAFETY: allocated above with this layout.
            unsafe { std::alloc::dealloc(ptr, layout) };
        }
        Work::Threads {
            file,
            writes,
            pwrites,
            syncs,
        } => {
            let (writes, pwrites, syncs) = (*writes, *pwrites, *syncs);
            let file = file.clone();
            let a = std::thread::Builder::new().name("qfc-wr-a".into()).spawn(
                move || -> Result<()> {
                    let mut f = OpenOptions::new().write(true).open("/dev/null")?;
                    for _ in 0..writes {
                        f.write_all(b"x")?;
                    }
                    Ok(())
                },
            )?;
            let b = std::thread::Builder::new().name("qfc-wr-b".into()).spawn(
                move || -> Result<()> {
                    let f = OpenOptions::new()
                        .create(true)
                        .write(true)
                        .truncate(true)
                        .open(&file)?;
                    for i in 0..pwrites {
                        f.write_at(b"y", i)?;
                    }
                    for _ in 0..syncs {
                        f.sync_data()?;
                    }
                    Ok(())
                },
            )?;
            a.join()
                .map_err(|_| anyhow::anyhow!("thread a panicked"))??;
            b.join()
                .map_err(|_| anyhow::anyhow!("thread b panicked"))??;
        }
    }
    Ok(None)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    if !cli.no_wait {
        println!("ready {}", std::process::id());
        std::io::stdout().flush()?;
        let _go = lines.next();
    }
    let value = run(&cli.work)?;
    if !cli.no_wait {
        match value {
            Some(v) => println!("done {v}"),
            None => println!("done"),
        }
        std::io::stdout().flush()?;
        for _ in lines.by_ref() {}
    }
    Ok(())
}
