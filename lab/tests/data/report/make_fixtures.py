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
    w(f"{d}/context.json", json.dumps({"target": {"kind": "local", "arch": "x86_64", "emulated": False}}) + "\n")
    w(f"{d}/probes/session.json", json.dumps({
        "lost_events": {"offcpu": 3},
        "truncated_stack_share": 0.01,
        "windows": [
            {"phase": "warmup", "lost_events": 0, "truncated_stack_share": 0.0},
            {"phase": "stress", "lost_events": {"offcpu": 3, "oncpu": 0}, "truncated_stack_share": 0.02},
        ]}) + "\n")
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
    # stress probes: JSON form
    n = 10 if synced else 0
    w(f"{d}/probes/stress/fsync.json", json.dumps({
        "calls_by_comm": {"tokio-rt-worker": n} if synced else {},
        "latency_us": {"buckets": [{"lo": 1024, "hi": 2048, "count": 7}, {"lo": 2048, "hi": 4096, "count": 2}, {"lo": 8192, "hi": 16384, "count": 1}]} if synced else {"buckets": []},
        "by_comm_us": {"tokio-rt-worker": [[1024, 2048, 7], [2048, 4096, 2], [8192, 16384, 1]]} if synced else {},
    }, indent=1) + "\n")
    bio = {"by_rwbs_us": {"W": {"buckets": [{"lo": 256, "hi": 512, "count": 40}, {"lo": 512, "hi": 1024, "count": 50}, {"lo": 4096, "hi": 8192, "count": 10}]}},
           "bytes_by_rwbs": {"W": 4096 * 100}}
    if synced:
        bio["by_rwbs_us"]["WS"] = [[512, 1024, 6], [1024, 2048, 4]]
        bio["by_rwbs_us"]["FWS"] = [[1024, 2048, 8], [16384, 32768, 2]]
        bio["bytes_by_rwbs"]["WS"] = 4096 * 10
        bio["bytes_by_rwbs"]["FWS"] = 0
    w(f"{d}/probes/stress/bio.json", json.dumps(bio, indent=1) + "\n")
    ops = {"tokio-rt-worker": {"write": 300, "pwrite64": 20}, "rocksdb:low": {"pwrite64": 80}}
    if synced:
        ops["tokio-rt-worker"]["fdatasync"] = 10
    w(f"{d}/probes/stress/writepath.json", json.dumps({"ops_by_comm": ops, "lat_us_by_syscall": {"write": [[0, 1, 100], [1, 2, 150], [2, 4, 50]]}}, indent=1) + "\n")
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
    if synced:
        # the load generator's own shape (loadgen::PhaseSummary, microseconds)
        w(f"{d}/load/stress/summary.json", json.dumps({"phase": "stress", "seed": 7, "workloads": {"rpc": {
            "workload": "rpc", "sent": 1000, "ok": 998, "errors": {"timeout": 2}, "dropped": 0,
            "throughput_per_s": 99.8,
            "latency": {"count": 998, "min_us": 300, "mean_us": 2000.0, "p50_us": 1200, "p90_us": 3000,
                        "p99_us": int(p99 * 1000), "p999_us": 19000, "max_us": 20000},
            "pacing": {"sustained": True, "target_per_s": 100.0, "sent_per_s": 100.0, "shortfall_pct": 0.0,
                       "lag_p50_us": 40, "lag_p99_us": 90, "lag_max_us": 300,
                       "note": "target 100.0/s sustained: 1000 of 1000 arrivals sent"}}},
            # the instrument floor (issue 18): p99 0.4 ms, far below the phase's 14 ms
            "floor": {"rate_per_s": 100.0, "basis": "rpc rate (peak of the phase)", "window_s": 1.0,
                      "concurrency": 16, "ok": 100, "failed": 0,
                      "latency": {"count": 100, "min_us": 90, "mean_us": 160.0, "p50_us": 150, "p90_us": 250,
                                  "p99_us": 400, "p999_us": 400, "max_us": 400}}}, indent=1) + "\n")
        w(f"{d}/load/stress/series.json", json.dumps({"rpc": [
            {"t_ns": T0 + (6 + i) * 10**9, "second": i, "scheduled": 100, "ok": 100 - (i % 3), "errors": 0,
             "dropped": 0, "bytes": 0, "p50_us": 1000, "p99_us": int((p99 + (i % 4)) * 1000), "max_us": 20000}
            for i in range(10)]}) + "\n")
    else:
        w(f"{d}/load/stress/summary.json", json.dumps({"workloads": {"rpc": {
            "requests": 1000, "ok": 998, "errors": {"timeout": 2},
            "throughput_per_s": 99.8,
            "latency_ms": {"p50": 1.2, "p90": 3.0, "p99": p99, "max": 20.0}}}}, indent=1) + "\n")
        w(f"{d}/load/stress/series.json", json.dumps({"rpc": [
            {"t_s": i + 1, "ok": 100 - (i % 3), "errors": 0, "p99_ms": p99 + (i % 4)} for i in range(10)]}) + "\n")

bundle("synced-off", False)
bundle("synced-on", True)
