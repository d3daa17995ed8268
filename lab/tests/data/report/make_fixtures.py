#!/usr/bin/env python3
"""Writes the fixture bundles of the report's golden tests: two runs of the
fsync-policy scenario, synced commit off (`synced-off/bundle`) and on
(`synced-on/bundle`). Small, hand-made, with known answers:
stress: 10 blocks; off: 0 fsyncs, no disk-write stall; on: 10 fdatasyncs
(1 per block), a disk-write stall path worth 120000 us of 420000 us off-CPU.
Run from this directory; commit the output."""
import json, os

T0 = 1_000_000_000_000  # monotonic ns of the first phase start
PH = [("warmup", 0, 5), ("stress", 5, 15)]

def w(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)

def bundle(case, synced):
    d = f"{case}/bundle"
    w(f"{d}/scenario.toml", f'''name = "fsync-policy"
seed = 7

[target]
kind = "local"

[node]
kind = "refnode"

[node.refnode]
block_interval_ms = 1000
synced_commit = {"true" if synced else "false"}

[[phase]]
name = "warmup"
duration_s = 5

[[phase]]
name = "stress"
duration_s = 10

[phase.load.rpc]
model = "open"
rate_per_s = 100

[[expect]]
figure = "fsync.per_block"
phase = "stress"
op = ">="
value = 1.0
why = "after T3.2 every block commit syncs the WAL"

[[expect]]
figure = "offcpu.disk_write_stall"
phase = "stress"
op = ">"
value = 0
why = "a synced commit waits for the disk"

[[expect]]
figure = "load.rpc.p99_ms"
phase = "stress"
op = "<"
value = 200

[[expect]]
figure = "oncpu.share_matching:blake3::"
op = "<"
value = 50

[[expect]]
figure = "load.tx.p99_ms"
phase = "stress"
op = "<"
value = 500
why = "no tx load in this scenario: cannot be evaluated"
''')
    w(f"{d}/timeline.json", json.dumps({"phases": [
        {"name": n, "start_ns": T0 + a * 10**9, "end_ns": T0 + z * 10**9} for n, a, z in PH]}, indent=1) + "\n")
    # the run's own shape (lab::context::Context)
    w(f"{d}/context.json", json.dumps({
        "target": {"kind": "local", "arch": "x86_64", "accel": None, "emulated": False},
        "target_details": {}, "facts": {}, "node_pid": None, "node_version": None,
        "threads_at_ready": {}, "threads_at_end": {}}) + "\n")
    # the probes' own shape (bundle_schema::probes::Session): no probe cost, no
    # stack quality recorded (a session without them says so in the report)
    def window(name, a, z, lost, trunc):
        return {"phase": name, "start_ns": T0 + a * 10**9, "end_ns": T0 + z * 10**9,
                "lost_events": lost, "lost_total": sum(lost.values()),
                "offcpu_below_threshold": 0, "bio_unmatched_completions": 0,
                "truncated_stack_share": trunc, "events": {}, "cost": None,
                "unwind": "fp", "stack_quality": {}}
    w(f"{d}/probes/session.json", json.dumps({
        "options": {"scope": "system", "hz": 99}, "arch": "x86_64", "kernel": "6.1.0",
        "clock": "CLOCK_MONOTONIC", "ready_ns": T0 - 10**9, "stopped_ns": T0 + 16 * 10**9,
        "discarded_before_first_phase": 0,
        "windows": [
            window("warmup", 0, 5, {}, {"oncpu": 0.0, "offcpu": 0.0}),
            window("stress", 5, 15, {"offcpu": 3, "oncpu": 0}, {"oncpu": 0.02, "offcpu": 0.02}),
        ],
        "lost_events_total": 3, "bpf_stats": {"state": "enabled", "how": "BPF_ENABLE_STATS"},
        "cost_total": None, "attach": {"writepath": "syscalls", "refused": []},
        "overhead_pct": None}) + "\n")
    # metrics every second, t = -1 .. 15
    lines = []
    for t in range(-1, 16):
        height = max(t, 0)
        wal = height if synced else 0
        l0 = {"state": min(t, 6) if t > 5 else 1, "headers": 1}
        pend = (t - 5) * 1048576 if t > 5 else 0
        stall = max(0, t - 10) * 2500
        prom = "# TYPE qfc_block_height gauge\n"
        prom += f"qfc_block_height {height}\n"
        for cf, v in l0.items():
            prom += f'qfc_rocksdb_l0_files{{cf="{cf}"}} {v}\n'
        prom += f'qfc_rocksdb_pending_compaction_bytes{{cf="state"}} {pend}\n'
        prom += f"qfc_rocksdb_stall_micros_total {stall}\n"
        prom += f"qfc_rocksdb_wal_syncs_total {wal}\n"
        lines.append(json.dumps({"t_ns": T0 + t * 10**9, "prom": prom}))
    w(f"{d}/metrics/series.jsonl", "\n".join(lines) + "\n")
    # warmup probes: bpftrace text form
    if synced:
        w(f"{d}/probes/warmup/fsync.txt", "Attaching 5 probes...\n\n@by_comm_us[tokio-rt-worker]: \n[1K, 2K)               5 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n\n@calls[tokio-rt-worker]: 5\n@fsync_latency_us: \n[1K, 2K)               5 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n\n")
    else:
        w(f"{d}/probes/warmup/fsync.txt", "Attaching 5 probes...\n\n\n")
    w(f"{d}/probes/warmup/oncpu.folded",
      "qfc-refnode;main;tokio::runtime::scheduler::multi_thread::worker::Context::run_task;qfc_refnode::rpc::serve;core::fmt::write 4\n"
      "tokio-rt-worker;std::sys::thread::unix::Thread::new::thread_start;tokio::runtime::scheduler::multi_thread::worker::Context::run_task;qfc_refnode::chain::produce_block;blake3::portable::compress_in_place 6\n")
    # stress probes: the probes' own JSON shape (bundle_schema::probes::SyscallFile, BioFile)
    def hist(buckets):
        return {"count": sum(c for _, _, c in buckets),
                "sum_us": float(sum((lo + hi) / 2 * c for lo, hi, c in buckets)),
                "buckets": [{"lo": lo, "hi": hi, "count": c} for lo, hi, c in buckets]}
    def merged(*bs):
        acc = {}
        for b in bs:
            for lo, hi, c in b:
                acc[(lo, hi)] = acc.get((lo, hi), 0) + c
        return [(lo, hi, c) for (lo, hi), c in sorted(acc.items())]
    def header(probe):
        return {"probe": probe, "phase": "stress", "start_ns": T0 + 5 * 10**9, "end_ns": T0 + 15 * 10**9,
                "scope": "system", "lost_events": {}}
    def syscall_file(probe, per):  # per: {(thread, syscall): buckets}
        by_sys, by_thread, rows = {}, {}, []
        for (t, sc), b in sorted(per.items()):
            by_sys[sc] = merged(by_sys.get(sc, []), b)
            by_thread[t] = merged(by_thread.get(t, []), b)
            rows.append({"tgid": 4242, "process": "qfc-refnode", "thread": t, "syscall": sc,
                         "count": hist(b)["count"], "sum_us": hist(b)["sum_us"]})
        total = merged(*per.values())
        return dict(header(probe), total=hist(total),
                    by_syscall={k: hist(v) for k, v in by_sys.items()},
                    by_thread={k: hist(v) for k, v in by_thread.items()},
                    by_process={"4242": {"tgid": 4242, "process": "qfc-refnode", "hist": hist(total)}} if per else {},
                    by_thread_syscall={f"{t}, {sc}": hist(b) for (t, sc), b in sorted(per.items())},
                    rows=rows)
    fs = {("tokio-rt-worker", "fdatasync"): [(1024, 2048, 7), (2048, 4096, 2), (8192, 16384, 1)]} if synced else {}
    w(f"{d}/probes/stress/fsync.json", json.dumps(syscall_file("fsync", fs), indent=1) + "\n")
    rwbs = {"W": [(256, 512, 40), (512, 1024, 50), (4096, 8192, 10)]}
    nbytes = {"W": 4096 * 100}
    if synced:
        rwbs["WS"] = [(512, 1024, 6), (1024, 2048, 4)]
        rwbs["FWS"] = [(1024, 2048, 8), (16384, 32768, 2)]
        nbytes["WS"] = 4096 * 10
        nbytes["FWS"] = 0
    w(f"{d}/probes/stress/bio.json", json.dumps(dict(header("bio"),
        total=hist(merged(*rwbs.values())), by_dev={"vda": hist(merged(*rwbs.values()))},
        by_rwbs={k: hist(v) for k, v in rwbs.items()}, bytes_by_rwbs=nbytes,
        bytes_by_dev={"vda": sum(nbytes.values())}), indent=1) + "\n")
    wp = {("tokio-rt-worker", "write"): [(0, 1, 100), (1, 2, 150), (2, 4, 50)],
          ("tokio-rt-worker", "pwrite64"): [(2, 4, 20)],
          ("rocksdb:low", "pwrite64"): [(4, 8, 80)]}
    if synced:
        wp[("tokio-rt-worker", "fdatasync")] = [(1024, 2048, 10)]
    w(f"{d}/probes/stress/writepath.json", json.dumps(syscall_file("writepath", wp), indent=1) + "\n")
    w(f"{d}/probes/stress/oncpu.folded",
      "tokio-rt-worker;std::sys::thread::unix::Thread::new::thread_start;tokio::runtime::scheduler::multi_thread::worker::Context::run_task;qfc_refnode::chain::produce_block;blake3::portable::compress_in_place 20\n"
      "tokio-rt-worker;std::sys::thread::unix::Thread::new::thread_start;tokio::runtime::scheduler::multi_thread::worker::Context::run_task;qfc_refnode::sync::respond;<tracing_subscriber::fmt::Subscriber<N,E,F,W> as tracing_core::subscriber::Subscriber>::event;core::fmt::write 12\n"
      "tokio-rt-worker;std::sys::thread::unix::Thread::new::thread_start;tokio::runtime::scheduler::multi_thread::worker::Context::run_task;qfc_refnode::rpc::serve;malloc 5\n"
      "rocksdb:low;std::sys::thread::unix::Thread::new::thread_start;rocksdb::ThreadPoolImpl::Impl::BGThread;rocksdb::CompactionJob::Run 8\n"
      "tokio-rt-worker;std::sys::thread::unix::Thread::new::thread_start;tokio::runtime::scheduler::multi_thread::worker::Context::run_task;hyper::proto::h1::dispatch::Dispatcher::poll_read;tcp_recvmsg_[k] 3\n"
      "tokio-rt-worker;std::sys::thread::unix::Thread::new::thread_start;tokio::runtime::scheduler::multi_thread::worker::Context::run_task;qfc_refnode::rpc::serve;entry_SYSCALL_64_[k];do_syscall_64_[k] 2\n")
    off = ("tokio-rt-worker;std::sys::thread::unix::Thread::new::thread_start;tokio::runtime::park::Inner::park;syscall;entry_SYSCALL_64_[k];__x64_sys_futex_[k];futex_wait_[k];schedule_[k] 200000\n"
           "tokio-rt-worker;std::sys::thread::unix::Thread::new::thread_start;mio::poll::Poll::poll;epoll_wait;entry_SYSCALL_64_[k];do_epoll_wait_[k];ep_poll_[k];schedule_hrtimeout_range_[k];schedule_[k] 100000\n")
    if synced:
        off += "tokio-rt-worker;std::sys::thread::unix::Thread::new::thread_start;tokio::runtime::scheduler::multi_thread::worker::Context::run_task;qfc_refnode::chain::commit_block;rocksdb::DBImpl::WriteImpl;fdatasync;entry_SYSCALL_64_[k];__x64_sys_fdatasync_[k];file_write_and_wait_range_[k];__filemap_fdatawait_range_[k];folio_wait_writeback_[k];io_schedule_[k];schedule_[k] 120000\n"
    else:
        off += "tokio-rt-worker;std::sys::thread::unix::Thread::new::thread_start;mio::poll::Poll::poll;epoll_wait;entry_SYSCALL_64_[k];do_epoll_wait_[k];ep_poll_[k];schedule_hrtimeout_range_[k];schedule_[k] 120000\n"
    w(f"{d}/probes/stress/offcpu.folded", off)
    p99 = 8.5 if not synced else 14.0
    # the load generator's own shape (bundle_schema::load::PhaseSummary, microseconds)
    lat = {"count": 998, "min_us": 300, "mean_us": 2000.0, "p50_us": 1200, "p90_us": 3000,
           "p99_us": int(p99 * 1000), "p999_us": 19000, "max_us": 20000}
    rpc = {"workload": "rpc", "model": "open", "target_rate_per_s": 100.0, "ramp_to_per_s": None,
           "concurrency": 16, "start_ns": T0 + 5 * 10**9, "end_ns": T0 + 15 * 10**9, "duration_s": 10.0,
           "scheduled": 1000, "sent": 1000, "ok": 998, "errors": {"timeout": 2}, "dropped": 0,
           "throughput_per_s": 99.8, "latency": lat, "bytes_received": 0, "details": {}}
    if synced:
        rpc["pacing"] = {"sustained": True, "target_per_s": 100.0, "sent_per_s": 100.0, "shortfall_pct": 0.0,
                         "lag_p50_us": 40, "lag_p99_us": 90, "lag_max_us": 300,
                         "note": "target 100.0/s sustained: 1000 of 1000 arrivals sent"}
    summary = {"phase": "stress", "seed": 7, "start_ns": T0 + 5 * 10**9, "end_ns": T0 + 15 * 10**9,
               "duration_s": 10.0, "load": {"rpc": {"model": "open", "rate_per_s": 100.0}},
               "workloads": {"rpc": rpc}, "compaction": None, "cancelled": False, "floor": None}
    if synced:
        # the instrument floor (issue 18): p99 0.4 ms, far below the phase's 14 ms
        summary["floor"] = {"rate_per_s": 100.0, "basis": "rpc rate (peak of the phase)", "window_s": 1.0,
                            "concurrency": 16, "ok": 100, "failed": 0,
                            "latency": {"count": 100, "min_us": 90, "mean_us": 160.0, "p50_us": 150, "p90_us": 250,
                                        "p99_us": 400, "p999_us": 400, "max_us": 400}}
    w(f"{d}/load/stress/summary.json", json.dumps(summary, indent=1) + "\n")
    w(f"{d}/load/stress/series.json", json.dumps({"rpc": [
        {"t_ns": T0 + (6 + i) * 10**9, "second": i, "scheduled": 100, "ok": 100 - (i % 3), "errors": 0,
         "dropped": 0, "bytes": 0, "p50_us": 1000, "p99_us": int(round((p99 + (i % 4)) * 1000)), "max_us": 20000}
        for i in range(10)]}) + "\n")

bundle("synced-off", False)
bundle("synced-on", True)
