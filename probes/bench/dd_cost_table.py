#!/usr/bin/env python3
"""Summarizes the raw output of dd_cost.sh (from this machine or fetched
from a guest, so every file is checked, not trusted) into the markdown table
of docs/BENCHMARKS.md: medians per attach point, each traced run's BPF time
per write from the kernel's statistics, bpftrace beside them.

    python3 dd_cost_table.py OUT      # writes OUT/cost.md; prints the
                                      # fewest writes seen at `syscalls`
Exits 1 with the file and the reason when a run's output is missing or
inconsistent."""
import json
import re
import statistics
import sys
from pathlib import Path

MODES = ["tp-btf", "raw", "syscalls", "bpftrace"]
NAMES = {
    "tp-btf": "qfc-probe writepath, tp_btf sys_enter/sys_exit",
    "raw": "qfc-probe writepath, raw tracepoints sys_enter/sys_exit",
    "syscalls": "qfc-probe writepath, 8 syscalls:sys_{enter,exit}_* tracepoints (auto's first choice)",
    "bpftrace": "bpftrace 0.17, syscalls:sys_{enter,exit}_write, hist of latency",
}


def fail(path, why):
    sys.exit(f"dd_cost_table: {path}: {why}")


def load_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        fail(path, f"unreadable JSON ({e}); rerun dd_cost.sh")


def count(v, path, what):
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        fail(path, f"{what} is {v!r}, not a count")
    return v


def ours(out, mode, rep):
    """(enter_runs, enter_ns, exit_runs, exit_ns, writes) of one qfc-probe run."""
    d = out / f"dd-{mode}-{rep}"
    s = load_json(d / "session.json")
    attach = (s.get("attach") or {}).get("writepath")
    if attach != mode:
        fail(d / "session.json", f"attach.writepath is {attach!r}, the run asked for {mode}")
    progs = s["windows"][0]["cost"]["programs"]
    pick = lambda p: [v for k, v in progs.items() if k.startswith(p)]
    en, ex = pick("writepath_enter"), pick("writepath_exit")
    if not en or not ex:
        fail(d / "session.json", f"no writepath programs in the cost: {sorted(progs)}")
    w = load_json(d / "run" / "writepath.json")
    ev = sum(count(r.get("count"), d / "run/writepath.json", "count")
             for r in w["rows"] if r.get("syscall") == "write")
    f = d / "session.json"
    return (count(en[0]["runs"], f, "runs"), count(en[0]["run_time_ns"], f, "run_time_ns"),
            count(ex[0]["runs"], f, "runs"), count(ex[0]["run_time_ns"], f, "run_time_ns"), ev)


def bpftrace(out, rep):
    """The same for bpftrace: its programs' statistics across the window, by
    id present before and after, and the writes its histogram counted."""
    before = {p["id"]: p for p in load_json(out / f"bt-dd-{rep}.before.json")}
    got = {}
    for p in load_json(out / f"bt-dd-{rep}.after.json"):
        if p.get("id") in before and p.get("name") in ("sys_enter_write", "sys_exit_write"):
            q = before[p["id"]]
            got[p["name"]] = (p.get("run_cnt", 0) - q.get("run_cnt", 0),
                              p.get("run_time_ns", 0) - q.get("run_time_ns", 0))
    if len(got) != 2:
        fail(out / f"bt-dd-{rep}.after.json", f"bpftrace's write programs not found ({sorted(got)})")
    text = (out / f"bt-dd-{rep}.txt").read_text(errors="replace")
    ev = sum(int(m.group(1)) for m in re.finditer(r"^\[[^\n]*?[\])]\s+(\d+)\s+\|", text, re.M))
    (er, en), (xr, xn) = got["sys_enter_write"], got["sys_exit_write"]
    return (er, en, xr, xn, ev)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: dd_cost_table.py OUT")
    out = Path(sys.argv[1])
    machine = dict(l.split(" ", 1) for l in (out / "machine.txt").read_text().splitlines() if " " in l)
    walls, rows = {}, {}
    for n, line in enumerate((out / "dd.tsv").read_text().splitlines(), 1):
        f = line.split()
        if len(f) != 3 or f[0] not in ["none"] + MODES or not f[1].isdigit() or not f[2].isdigit():
            fail(out / "dd.tsv", f"line {n}: {line!r} is not `mode rep wall_ns`")
        mode, rep, wall = f[0], f[1], int(f[2])
        walls.setdefault(mode, []).append(wall)
        if mode == "bpftrace":
            rows.setdefault(mode, []).append(bpftrace(out, rep))
        elif mode != "none":
            rows.setdefault(mode, []).append(ours(out, mode, rep))
    if "none" not in walls:
        fail(out / "dd.tsv", "no untraced run")
    med = statistics.median
    none = med(walls["none"])
    lines = [
        f"Kernel {machine.get('kernel', '?')}, {machine.get('arch', '?')}, {machine.get('cpus', '?')} CPUs; "
        f"`dd bs=1 count={machine.get('count', '?')}`, {machine.get('reps', '?')} interleaved runs per mode, medians. "
        f"Load average (1, 5, 15 min) at start: {machine.get('load_start', '?')}; at end: {machine.get('load_end', '?')} "
        "(the absolute times depend on the machine and its load: compare only within this table).",
        "",
        "| attach point | dd wall (median) | vs untraced | enter ns/run | exit ns/run | runs per write (enter) | BPF ns per write (enter + exit) | writes seen |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| none | {none/1e9:.3f} s | 1.00x | | | | | |",
    ]
    for m in MODES:
        rs = rows.get(m, [])
        if not rs:
            continue
        wall = med(walls[m])
        en = med([r[1] / r[0] for r in rs if r[0]] or [0])
        ex = med([r[3] / r[2] for r in rs if r[2]] or [0])
        per_write = med([(r[1] + r[3]) / r[4] for r in rs if r[4]] or [0])
        runs_w = med([r[0] / r[4] for r in rs if r[4]] or [0])
        ev = min(r[4] for r in rs)
        lines.append(f"| {NAMES[m]} | {wall/1e9:.3f} s | {wall/none:.2f}x | {en:.0f} | {ex:.0f} | "
                     f"{runs_w:.2f} | **{per_write:.0f}** | {ev} (min over runs) |")
    fentry = (out / "fentry.txt").read_text(errors="replace").splitlines()
    sym = fentry[0].split(" ", 1)[1] if fentry and fentry[0].startswith("symbol ") else "?"
    errors = [l for l in fentry[1:] if "ERROR" in l]
    # bpftrace also prints warnings as ERROR (RLIMIT_MEMLOCK): the refusal
    # names the probe type.
    said = next((l for l in errors if "kfunc" in l or "fentry" in l), errors[-1] if errors else None)
    if said:
        verdict, why = "refused", said[said.index("ERROR"):]
    elif any("Attaching" in l for l in fentry[1:]):
        verdict, why = "loads", "bpftrace attached a kfunc probe (qfc-probe does not offer fentry yet)"
    else:
        verdict, why = "unknown", "(no output)"
    why = why.replace("|", "\\|").replace('"', "'")
    lines.append(f"| fentry/fexit on `{sym}` | {verdict} | | | | | | bpftrace: {why} |")
    (out / "cost.md").write_text("\n".join(lines) + "\n")
    if "syscalls" in rows:
        print(min(r[4] for r in rows["syscalls"]))


if __name__ == "__main__":
    main()
