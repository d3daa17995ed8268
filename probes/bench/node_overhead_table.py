#!/usr/bin/env python3
"""Summarizes the raw output of node_overhead.sh into the markdown table of
docs/BENCHMARKS.md (on standard output).

    python3 node_overhead_table.py OUT

OUT holds `run.json` (the bench's settings), `windows.tsv` (one line per
measured window), `seconds.tsv` (one line per second of those windows) and
`bpf.tsv` (the kernel's count per probe session).

Per block of a mode (two `on` and two `off` windows of one node under one
load), two figures, each `on` over `off`:
- whole windows: transactions accepted over the windows' time, and node
  CPU time per 1,000 of them;
- seconds: each window's median over its one-second figures, then the
  mean of a side's two windows. A compaction that stalls the node for a second
  or two moves a window's total by several percent and its median second
  hardly at all; a steady tax such as the probes' moves both.
Blocks alternate between the patterns off-on-on-off (odd blocks) and
on-off-off-on (even blocks). A drift that is not linear over a block (a
node that slows down fast at first, then less) biases the first pattern
one way and the second the other, by as much as 4-5% here; so the unit of
the result is a pair of blocks (2j-1, 2j), one of each pattern, whose
figure is the geometric mean of their two. The result per mode is the
median over pairs with a distribution-free 95% interval of that median
(order statistics); each pattern's own median is shown beside it. Where
the raw files carry the CPU of the node's RocksDB background threads
(`bg_ticks`), the result is also given adjusted for their share of the
node's core (`adjusted`), which takes out most of the window-to-window
noise. Exits 1 with the reason when a file is missing or a block is
incomplete."""
import csv
import json
import math
import random
import statistics
import sys
from pathlib import Path


def fail(why):
    sys.exit(f"node_overhead_table: {why}")


def median_ci(xs):
    """Median, and the order statistics x(k), x(n+1-k) with the largest k
    such that P(Bin(n, 1/2) < k) <= 0.025, with their coverage (at least
    95%; lab/src/stats/interval.rs interpolates between such order
    statistics for the lab's own figures); no interval (NaN) for fewer
    than six values."""
    xs = sorted(xs)
    n = len(xs)
    k, below = 0, 0.0
    while k < n:
        p = math.comb(n, k) / 2**n
        if below + p > 0.025:
            break
        below += p
        k += 1
    if k == 0:
        return statistics.median(xs), math.nan, math.nan, math.nan
    return statistics.median(xs), xs[k - 1], xs[n - k], 1 - 2 * below


class Side:
    """One side (`on` or `off`) of a block: its windows' totals, and each
    window's median second (rate, and CPU-s per 1,000 tx)."""

    def __init__(self):
        self.seconds, self.accepted, self.node_ticks, self.probe_ticks = 0.0, 0, 0, 0
        # RocksDB's background threads (runs before `bg_ticks` have none).
        self.bg_ticks = 0
        self.has_bg = True
        self.median_rates, self.median_cpu = [], []

    def add(self, row, secs):
        self.seconds += float(row["seconds"])
        self.accepted += int(row["accepted"])
        self.node_ticks += int(row["node_ticks"])
        self.probe_ticks += int(row["probe_ticks"])
        if row.get("bg_ticks") in (None, ""):
            self.has_bg = False
        else:
            self.bg_ticks += int(row["bg_ticks"])
        if secs:
            self.median_rates.append(statistics.median(x[0] for x in secs))
            self.median_cpu.append(statistics.median(x[1] for x in secs))

    def rate(self):
        return self.accepted / self.seconds

    def cpu_per_ktx(self, hz):
        return self.node_ticks / hz * 1000 / self.accepted

    def fg_share(self):
        """The share of the node's CPU left to its other threads (the
        transactions' path) by RocksDB's background threads."""
        return 1 - self.bg_ticks / self.node_ticks


def adjusted(ys, xs, seed=12, resamples=10000):
    """Regression adjustment over pairs of blocks: fits log(y) = a + b *
    log(x) by least squares, where y is a pair's on / off figure and x its
    on / off ratio of the foreground share (`Side.fg_share`), and returns
    (exp(a), 2.5th and 97.5th percentiles of exp(a) over `resamples`
    bootstrap resamples of the pairs (seeded), b). exp(a) is the figure at
    equal foreground shares on both sides: the compactions' share of the
    core, which comes and goes by tens of percent from one window to the
    next, is taken out of the comparison; what the probes cost in any
    thread, the background ones included, stays in y. NaN for fewer than
    six pairs."""
    pts = [(math.log(x), math.log(y)) for y, x in zip(ys, xs)]

    def fit(ps):
        mx = statistics.fmean(p[0] for p in ps)
        my = statistics.fmean(p[1] for p in ps)
        sxx = sum((p[0] - mx) ** 2 for p in ps)
        b = sum((p[0] - mx) * (p[1] - my) for p in ps) / sxx if sxx > 0 else 0.0
        return my - b * mx, b

    if len(pts) < 6:
        return math.nan, math.nan, math.nan, math.nan
    a, b = fit(pts)
    rng = random.Random(seed)
    boot = sorted(math.exp(fit([rng.choice(pts) for _ in pts])[0]) for _ in range(resamples))
    return math.exp(a), boot[int(0.025 * resamples)], boot[int(0.975 * resamples) - 1], b


def read_tsv(path):
    if not path.is_file():
        fail(f"{path}: missing")
    return list(csv.DictReader(path.open(), delimiter="\t"))


def main(out):
    out = Path(out)
    run = json.loads((out / "run.json").read_text())
    hz = float(run["hz"])
    windows = read_tsv(out / "windows.tsv")
    seconds = read_tsv(out / "seconds.tsv") if (out / "seconds.tsv").is_file() else []
    bpf = {}
    if (out / "bpf.tsv").is_file():
        for line in (out / "bpf.tsv").read_text().splitlines():
            name, _, b, t = line.split("\t")
            if b != "nan" and t != "nan" and float(t) > 0:
                bpf.setdefault(name, []).append(float(b) / float(t))

    # Each window's seconds (by the window number both files carry): its
    # (rate, CPU-s per 1,000 tx) for each second with transactions.
    by_window = {}
    for r in seconds:
        a, s, t = int(r["accepted"]), float(r["seconds"]), int(r["node_ticks"])
        if a > 0 and s > 0:
            by_window.setdefault(r["window"], []).append((a / s, t / hz * 1000 / a))

    # Per mode and block, each side's totals and its windows' median seconds.
    per_mode = {}
    for r in windows:
        side = (
            per_mode.setdefault(r["mode"], {})
            .setdefault(r["block"], {k: Side() for k in ("on", "off")})[r["side"]]
        )
        side.add(r, by_window.get(r["window"], []))

    results = {}
    for m in run["modes"].split():
        res = []
        for block, s in sorted(per_mode.get(m, {}).items(), key=lambda kv: int(kv[0])):
            on, off = s["on"], s["off"]
            if min(on.seconds, off.seconds) <= 0 or min(on.accepted, off.accepted) <= 0:
                fail(f"mode {m}, block {block}: a side with no time or no transactions")
            row = {
                "block": block,
                "t_off": off.rate(),
                "tr": on.rate() / off.rate(),
                "cr": on.cpu_per_ktx(hz) / off.cpu_per_ktx(hz),
                "probe_cpu_per_s": on.probe_ticks / hz / on.seconds,
            }
            if on.has_bg and off.has_bg and min(on.node_ticks, off.node_ticks) > 0:
                if not (0 < on.fg_share() <= 1 and 0 < off.fg_share() <= 1):
                    fail(f"mode {m}, block {block}: background CPU outside 0..node CPU (a thread ended?)")
                row["fg"] = on.fg_share() / off.fg_share()
            if len(on.median_rates) == len(off.median_rates) == 2:
                row["tr_s"] = statistics.mean(on.median_rates) / statistics.mean(off.median_rates)
                row["cr_s"] = statistics.mean(on.median_cpu) / statistics.mean(off.median_cpu)
            res.append(row)
        results[m] = res

    def pairs(res, key):
        """Each pair of blocks (2j-1, 2j) of a mode: the geometric mean of
        their figures; a block without a partner is left out."""
        by = {int(r["block"]): r for r in res if key in r}
        return [math.sqrt(by[b][key] * by[b + 1][key]) for b in sorted(by) if b % 2 == 1 and b + 1 in by]

    def pattern(res, key, odd):
        xs = [r[key] for r in res if key in r and (int(r["block"]) % 2 == 1) == odd]
        return f"{statistics.median(xs):.3f}" if xs else "-"

    def interval(ci):
        return "-" if math.isnan(ci[1]) else f"{ci[1]:.3f} to {ci[2]:.3f} ({ci[3]:.1%})"

    # Runs before `cycles` held one block per node.
    cycles = int(run.get("cycles", "1"))
    per_node = (
        "per block a fresh node under one load"
        if cycles == 1
        else f"a fresh node under one load per {cycles} blocks of each mode"
    )
    pinned = " Pinned: the node on CPU 0, qfc-load and qfc-probe on CPU 1." if run["pin"] == "1" else ""
    print(
        f"Probes `{run['probes']}`. Closed transaction loop ({run['accounts']} clients, one per account), "
        f"blocks every {run['block_ms']} ms. Paired design: {per_node}, after a {run['warm']} s warm-up; a block is "
        f"four {run['w']} s windows, off, on, on, off or on, off, off, on in turn (the "
        f"probes attached and detached between windows); {run['blocks']} blocks per mode, the modes alternating; "
        f"the figure is the median over pairs of blocks, one of each pattern. "
        f"Stack copy {run['ustack']} bytes in dwarf mode.{pinned} {run['started']} to {run['ended']}, "
        f"{run['kernel']}, {run['cpus']} CPUs, load average at the start {run['load_start']}, at the end "
        f"{run['load_end']}."
    )
    print()
    print(
        "| mode | figure | on / off (median of pairs of blocks) | 95% interval | off-on-on-off blocks (median) | "
        "on-off-off-on blocks (median) | by windows' median seconds (median of pairs) | 95% interval |"
    )
    print("|---|---|---:|---|---:|---:|---:|---|")
    def fmt(x):
        return "-" if math.isnan(x) else f"{x:.3f}"

    def over_pairs(res, key):
        xs = pairs(res, key)
        return median_ci(xs) if xs else (math.nan,) * 4

    for m, res in results.items():
        if not res:
            continue
        for name, key in (("throughput", "tr"), ("node CPU-s per 1,000 tx", "cr")):
            ci, cs = over_pairs(res, key), over_pairs(res, key + "_s")
            print(
                f"| {m} | {name} | {fmt(ci[0])} | {interval(ci)} | {pattern(res, key, True)} | "
                f"{pattern(res, key, False)} | {fmt(cs[0])} | {interval(cs)} |"
            )
    print()
    print(
        "| mode | BPF run time / node CPU (kernel's count, median of probe sessions) | qfc-probe CPU-s per s "
        "(median of blocks) | tx/s off (median of blocks) |"
    )
    print("|---|---:|---:|---:|")
    for m, res in results.items():
        if not res:
            continue
        k = [x for n, xs in bpf.items() if n.rsplit("-", 1)[0] == m for x in xs]
        kk = f"{statistics.median(k):.4f}" if k else "-"
        print(
            f"| {m} | {kk} | {statistics.median(r['probe_cpu_per_s'] for r in res):.4f} | "
            f"{statistics.median(r['t_off'] for r in res):.0f} |"
        )
    adj = {}
    for m, res in results.items():
        fg = pairs(res, "fg")
        if len(fg) == len(pairs(res, "tr")) and fg:
            adj[m] = {
                "fg": median_ci(fg),
                "tr": adjusted(pairs(res, "tr"), fg),
                "cr": adjusted(pairs(res, "cr"), fg),
            }
    if adj:
        print()
        print(
            "Adjusted for the compactions' share of the node's core: per pair of blocks, log(on / off) fitted "
            "against log(foreground share on / off) by least squares (the foreground share: the node's CPU "
            "outside its RocksDB background threads); the figure is the fit at equal shares, its interval "
            "the 2.5th to 97.5th percentiles over 10,000 bootstrap resamples of the pairs (seed 12). The "
            "probes' cost in any thread, the background ones included, stays in the figure; the last column "
            "shows whether the probes moved the share itself."
        )
        print()
        print(
            "| mode | figure | adjusted on / off | 95% interval (bootstrap) | slope | "
            "foreground share on / off (median of pairs) | 95% interval |"
        )
        print("|---|---|---:|---|---:|---:|---|")
        for m, a in adj.items():
            for key, label in (("tr", "throughput"), ("cr", "node CPU-s per 1,000 tx")):
                v, lo, hi, b = a[key]
                ci = "-" if math.isnan(lo) else f"{lo:.3f} to {hi:.3f}"
                print(
                    f"| {m} | {label} | {fmt(v)} | {ci} | {fmt(b)} | {fmt(a['fg'][0])} | "
                    f"{interval(a['fg'])} |"
                )
    print()
    print("Per block, in block order (on / off):")
    print()
    print("| mode | throughput | throughput, seconds | node CPU per 1,000 tx | tx/s off |")
    print("|---|---|---|---|---|")
    for m, res in results.items():
        cols = [
            " ".join("-" if k not in r else format(r[k], f) for r in res)
            for k, f in (("tr", ".3f"), ("tr_s", ".3f"), ("cr", ".3f"), ("t_off", ".0f"))
        ]
        print(f"| {m} | {cols[0]} | {cols[1]} | {cols[2]} | {cols[3]} |")
    print()

    def verdict(ci, bar, ge, what="median"):
        med, lo, hi = ci[:3]
        meets = med >= bar if ge else med <= bar
        if math.isnan(lo):
            return f"{what} {'meets' if meets else 'misses'} it; too few blocks for an interval"
        if (lo >= bar) if ge else (hi <= bar):
            return "met: the whole interval is on the right side"
        if (hi < bar) if ge else (lo > bar):
            return "missed: the whole interval is on the wrong side"
        return f"{what} {'meets' if meets else 'misses'} it; the interval straddles it"

    if results.get("dwarf") and pairs(results["dwarf"], "tr"):
        res = results["dwarf"]
        tr = median_ci(pairs(res, "tr"))
        cr = median_ci(pairs(res, "cr"))
        line = (
            f"Targets (issue 12, dwarf, pairs of blocks): throughput / off >= 0.97: {verdict(tr, 0.97, True)}; "
            f"node CPU per 1,000 tx / off <= 1.03: {verdict(cr, 1.03, False)}."
        )
        if "dwarf" in adj:
            a = adj["dwarf"]
            line += (
                f" Adjusted for the compactions' share: throughput {verdict(a['tr'], 0.97, True, 'figure')}; "
                f"node CPU per 1,000 tx {verdict(a['cr'], 1.03, False, 'figure')}."
            )
        print(line)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        fail("usage: node_overhead_table.py OUT")
    main(sys.argv[1])
