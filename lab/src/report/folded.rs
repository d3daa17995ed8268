//! Folded stacks (`root;...;leaf count`): parsing, on-CPU areas (hashing, log formatting,
//! RocksDB, allocator, network, kernel, other), thread roles, and off-CPU wait reasons
//! with the disk-write stall path. The classification rules live here and are documented
//! in docs/FIGURES.md.

use regex::Regex;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// One folded stack: thread (when the file carries it as the first frame), frames root
/// first, and its weight (samples for on-CPU, microseconds for off-CPU).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stack {
    /// The probe's own wait class (`[futex]`, `[poll]`, `[preempted]`, ...), when given.
    pub class: Option<String>,
    pub thread: Option<String>,
    pub frames: Vec<String>,
    pub count: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Folded {
    pub stacks: Vec<Stack>,
    /// Lines that had no trailing count and were skipped.
    pub malformed_lines: usize,
}

impl Folded {
    /// Parses folded text. With `thread_first`, the first frame of every line is the thread
    /// name (comm), as the lab's probes write it; T1's file has no thread frame.
    pub fn parse(text: &str, thread_first: bool) -> Folded {
        let mut f = Folded::default();
        for line in text.lines() {
            let line = line.trim_end();
            if line.trim().is_empty() {
                continue;
            }
            let Some((stack, count)) = line.rsplit_once(' ') else {
                f.malformed_lines += 1;
                continue;
            };
            let Ok(count) = count.trim().parse::<u64>() else {
                f.malformed_lines += 1;
                continue;
            };
            let mut frames: Vec<String> = stack.trim().split(';').map(str::to_string).collect();
            // the probes prefix off-CPU stacks with their wait class: `[futex];thread;...`
            let class = if thread_first && frames.len() > 2 && is_class(&frames[0]) {
                Some(frames.remove(0))
            } else {
                None
            };
            let thread = if thread_first && frames.len() > 1 {
                Some(frames.remove(0))
            } else {
                None
            };
            f.stacks.push(Stack {
                class,
                thread,
                frames,
                count,
            });
        }
        f
    }

    pub fn total(&self) -> u64 {
        self.stacks.iter().map(|s| s.count).sum()
    }

    pub fn merge(&mut self, other: &Folded) {
        self.stacks.extend(other.stacks.iter().cloned());
        self.malformed_lines += other.malformed_lines;
    }

    /// Folded text again (thread first when known), lines sorted and merged: the input of
    /// inferno.
    pub fn to_text(&self) -> String {
        let mut m: BTreeMap<String, u64> = BTreeMap::new();
        for s in &self.stacks {
            let mut key = String::new();
            if let Some(c) = &s.class {
                key.push_str(c);
                key.push(';');
            }
            if let Some(t) = &s.thread {
                key.push_str(t);
                key.push(';');
            }
            key.push_str(&s.frames.join(";"));
            *m.entry(key).or_default() += s.count;
        }
        let mut out = String::new();
        for (k, v) in m {
            out.push_str(&format!("{k} {v}\n"));
        }
        out
    }

    /// Weight of stacks with any frame matching `re`.
    pub fn matching(&self, re: &Regex) -> u64 {
        self.stacks
            .iter()
            .filter(|s| s.frames.iter().any(|f| re.is_match(f)))
            .map(|s| s.count)
            .sum()
    }

    /// Share of weight in stacks whose root frame is `[unknown]` (a broken unwind).
    pub fn unknown_root_weight(&self) -> u64 {
        self.stacks
            .iter()
            .filter(|s| s.frames.first().is_some_and(|f| f == "[unknown]"))
            .map(|s| s.count)
            .sum()
    }
}

/// `[word]` (not `[unknown]`): a class frame.
fn is_class(f: &str) -> bool {
    f.len() > 2
        && f.starts_with('[')
        && f.ends_with(']')
        && f != "[unknown]"
        && f[1..f.len() - 1]
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || c == '-')
}

/// On-CPU areas. A sample's **self** area is the area of its leaf-most recognised frame
/// (see [`AREA_RULES`]); its **inclusive** areas are every area any of its frames matches.
/// `kernel` and `other` are fallbacks: `kernel` when no frame is recognised and the leaf is
/// a kernel frame, `other` when nothing is recognised at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Area {
    Hashing,
    Crypto,
    LogFormatting,
    RocksDb,
    Allocator,
    /// Serving JSON-RPC over HTTP (jsonrpsee, hyper): the RPC plumbing, not the
    /// handlers' work (their leaf frames decide) and not TCP (kernel frames are network).
    Rpc,
    Network,
    /// The node's own code (qfc-node's `qfc_*` crates, the reference node's `refnode`
    /// and `wire`), when no library frame below it is recognised: RPC handler bodies,
    /// transaction pool, chain logic.
    Node,
    Kernel,
    Other,
}

impl Area {
    pub const ALL: [Area; 10] = [
        Area::Hashing,
        Area::Crypto,
        Area::LogFormatting,
        Area::RocksDb,
        Area::Allocator,
        Area::Rpc,
        Area::Network,
        Area::Node,
        Area::Kernel,
        Area::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Area::Hashing => "hashing",
            Area::Crypto => "crypto",
            Area::LogFormatting => "log_formatting",
            Area::RocksDb => "rocksdb",
            Area::Allocator => "allocator",
            Area::Rpc => "rpc",
            Area::Network => "network",
            Area::Node => "node",
            Area::Kernel => "kernel",
            Area::Other => "other",
        }
    }

    pub fn from_name(s: &str) -> Option<Area> {
        Area::ALL.into_iter().find(|a| a.name() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            Area::Hashing => "hashing (blake3)",
            Area::Crypto => {
                "crypto (signature checks: ed25519, curve25519, k256, ecdsa, secp256k1)"
            }
            Area::LogFormatting => "log formatting (tracing_subscriber fmt, Debug)",
            Area::RocksDb => "RocksDB",
            Area::Allocator => "allocator (malloc/free)",
            Area::Rpc => "JSON-RPC serving (jsonrpsee, hyper)",
            Area::Network => "network (libp2p, yamux, TCP)",
            Area::Node => "node's own code (handlers, pool, chain)",
            Area::Kernel => "kernel",
            Area::Other => "other",
        }
    }
}

/// One rule of the on-CPU area table: a frame matching `pattern` (after any `_[k]`
/// suffix is stripped) is work of `area`. `example` is a frame the rule must recognise;
/// each rule has its test below.
pub struct AreaRule {
    pub area: Area,
    pub pattern: &'static str,
    pub example: &'static str,
}

/// The on-CPU area rules, the only place areas are defined (documented in
/// docs/FIGURES.md). When one frame matches several rules, the first one in this table
/// wins; across frames, the leaf-most recognised frame decides the self area.
pub const AREA_RULES: &[AreaRule] = &[
    AreaRule {
        area: Area::Hashing,
        pattern: r"blake3",
        example: "blake3::portable::compress_in_place",
    },
    AreaRule {
        area: Area::Crypto,
        pattern: r"ed25519|curve25519|k256::|ecdsa|elliptic_curve|secp256k1",
        example: "curve25519_dalek::backend::serial::u64::field::FieldElement51::pow2k",
    },
    AreaRule {
        area: Area::LogFormatting,
        pattern: r"tracing_subscriber|tracing_core::field|core::fmt::|as core::fmt::Debug>|::fmt::Debug",
        example: "<tracing_subscriber::fmt::format::DefaultFields as tracing_subscriber::fmt::format::FormatFields>::format_fields",
    },
    AreaRule {
        area: Area::RocksDb,
        pattern: r"(?i)rocksdb",
        example: "rocksdb::DBImpl::Get(rocksdb::ReadOptions",
    },
    AreaRule {
        area: Area::Allocator,
        pattern: r"^(malloc|free|cfree|calloc|realloc|__libc_malloc|__libc_free|_int_malloc|_int_free|_int_realloc|malloc_consolidate|__rust_alloc|__rust_dealloc|__rust_realloc|alloc::alloc::)",
        example: "_int_malloc",
    },
    AreaRule {
        area: Area::Rpc,
        pattern: r"jsonrpsee|hyper::|hyper_util::|httparse::|http_body",
        example: "hyper::proto::h1::dispatch::Dispatcher<D,Bs,I,T>::poll_read",
    },
    AreaRule {
        area: Area::Network,
        pattern: r"libp2p|yamux|multistream|snow::|ring_core_.*chacha|tokio::net::|mio::net|(^|[^a-z])(tcp_|inet_|sock_|__sys_sendto|__sys_recvfrom|ip_|__ip_|netif|__netif|nf_conntrack|nf_confirm|skb_|__skb_|napi_|net_rx)",
        example: "tcp_sendmsg_locked_[k]",
    },
    AreaRule {
        area: Area::Node,
        pattern: r"^(qfc_[a-z_]+|refnode|wire)::",
        example: "refnode::chain::Chain::add_tx",
    },
];

struct Rules {
    areas: Vec<(Area, Regex)>,
    kernel: Regex,
    tokio: Regex,
    rocksdb_bg: Regex,
    std_thread: Regex,
    disk_stall: Regex,
    disk: Regex,
    futex: Regex,
    net_wait: Regex,
    poll: Regex,
    sleep: Regex,
    bg_sync: Regex,
    commit_sync: Regex,
}

fn rules() -> &'static Rules {
    static R: OnceLock<Rules> = OnceLock::new();
    R.get_or_init(|| {
        let r = |s: &str| Regex::new(s).expect("built-in classification regex");
        Rules {
            areas: AREA_RULES.iter().map(|x| (x.area, r(x.pattern))).collect(),
            kernel: r(r"_\[k\]$|^(el0|el1|__el0|__arm64_|__x64_|__do_sys|do_syscall|entry_SYSCALL|syscall_exit|invoke_syscall|do_el0_svc|ret_from_fork|__schedule|schedule|finish_task_switch|try_to_wake_up|__wake_up|wake_up|do_notify_resume|exit_to_user|irq|__irq|handle_|gic_|_raw_spin|raw_spin|__softirq|do_softirq|hrtimer|ktime|perf_|rcu_|update_|enqueue_|dequeue_|pick_next|__switch_to|cpu_|arch_|__arch_copy|copy_|ksys_|vfs_|__vfs|ext4_|xfs_|blk_|bio_|__sys_|futex|__futex|kmem_|__kmalloc|kmalloc|kfree|__kfree|page_|folio_|filemap_|__filemap|mutex_|__mutex|tcp_|inet_|sock_|ip_|__ip|nf_|netif|__netif|skb_|__skb|napi_|__napi|el0t_)"),
            tokio: r(r"tokio::runtime::(scheduler|task)|tokio::runtime::blocking"),
            rocksdb_bg: r(r"rocksdb::(ThreadPoolImpl|BGThread|DBImpl::BGWork|DBImpl::Background)"),
            std_thread: r(r"std::sys::.*thread.*thread_start|std::thread::"),
            disk_stall: r(r"(^|[^a-z_])(do_fsync|__x64_sys_fsync|__x64_sys_fdatasync|__arm64_sys_fsync|__arm64_sys_fdatasync|vfs_fsync_range|file_write_and_wait_range|__filemap_fdatawait_range|filemap_fdatawait|folio_wait_writeback|wait_on_page_writeback|jbd2_log_wait_commit|jbd2_complete_transaction|blkdev_issue_flush|submit_bio_wait|balance_dirty_pages|ext4_sync_file|xfs_file_fsync|xfs_log_force|btrfs_sync_file)|fdatasync|fsync|rocksdb::.*(SyncWAL|::Sync\(|::Fsync\(|SyncClosedLogs)"),
            disk: r(r"io_schedule|blk_mq_|bit_wait_io|wait_on_buffer|__lock_page|folio_wait_bit|__folio_lock|jbd2_|ext4_|xfs_"),
            futex: r(r"futex"),
            net_wait: r(r"tcp_recvmsg|sk_wait_data|sk_stream_wait|inet_csk_accept|unix_stream_read|sock_recvmsg|__sys_recvfrom|__sys_recvmsg|tcp_sendmsg"),
            poll: r(r"ep_poll|do_epoll_wait|do_sys_poll|do_select|core_sys_select|__sys_epoll"),
            sleep: r(r"nanosleep|hrtimer_nanosleep|do_nanosleep|schedule_hrtimeout|msleep"),
            bg_sync: r(r"rocksdb::(FlushJob|CompactionJob|DBImpl::(SyncClosedLogs|BGWork|BackgroundCallFlush|BackgroundCallCompaction|BackgroundFlush|BackgroundCompaction|FlushMemTableToOutputFile)|BuildTable|ThreadPoolImpl|SstFileWriter)"),
            commit_sync: r(r"rocksdb::(DBImpl::(WriteImpl|WriteToWAL|SyncWAL|FlushWAL|Write\()|DB::Write|WriteBatch)|rocksdb::.*::write\b|tokio::runtime::(scheduler|task)"),
        }
    })
}

fn strip_k(f: &str) -> &str {
    f.strip_suffix("_[k]").unwrap_or(f)
}

/// Whether a frame looks like a kernel frame (`_[k]` suffix, or a known kernel symbol).
pub fn is_kernel_frame(f: &str) -> bool {
    rules().kernel.is_match(f)
}

/// The area rule that recognises one frame (first in [`AREA_RULES`] order), if any.
pub fn frame_area(frame: &str) -> Option<Area> {
    let f = strip_k(frame);
    rules()
        .areas
        .iter()
        .find(|(_, re)| re.is_match(f))
        .map(|(a, _)| *a)
}

fn fallback_area(frames: &[String]) -> Area {
    if frames
        .iter()
        .rev()
        .find(|f| f.as_str() != "[unknown]")
        .is_some_and(|f| is_kernel_frame(f))
    {
        Area::Kernel
    } else {
        Area::Other
    }
}

/// The self area of a sample: the area of its leaf-most recognised frame; `kernel` when
/// no frame is recognised and the leaf is a kernel frame; `other` otherwise.
///
/// `node` is the node's own code in general: a kernel leaf under it (a syscall the node's
/// code made with no library frame between) is `kernel`, not `node`.
pub fn classify_oncpu(frames: &[String]) -> Area {
    match frames.iter().rev().find_map(|f| frame_area(f)) {
        Some(Area::Node) if fallback_area(frames) == Area::Kernel => Area::Kernel,
        Some(a) => a,
        None => fallback_area(frames),
    }
}

/// The inclusive areas of a sample: every area any of its frames matches (`kernel` when
/// any frame is a kernel frame), or the fallback area when no frame is recognised.
pub fn inclusive_areas(frames: &[String]) -> Vec<Area> {
    let mut v: Vec<Area> = frames.iter().filter_map(|f| frame_area(f)).collect();
    if frames.iter().any(|f| is_kernel_frame(f)) {
        v.push(Area::Kernel);
    }
    if v.is_empty() {
        v.push(fallback_area(frames));
    }
    v.sort();
    v.dedup();
    v
}

/// What kind of thread a stack ran on, judged from its frames alone (T1 has no thread
/// names, and the real node's miner threads are named `tokio-rt-worker`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// tokio scheduler or blocking-pool frames: block production, RPC, sync.
    Tokio,
    /// RocksDB's own thread pool (flush, compaction).
    RocksDbBackground,
    /// `thread_start` without tokio frames: the shape of the PoW miner threads.
    PlainThread,
    /// Only kernel or `[unknown]` frames.
    KernelOrUnknown,
    Other,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Tokio,
        Role::RocksDbBackground,
        Role::PlainThread,
        Role::KernelOrUnknown,
        Role::Other,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Role::Tokio => "tokio",
            Role::RocksDbBackground => "rocksdb_bg",
            Role::PlainThread => "plain_thread",
            Role::KernelOrUnknown => "kernel_or_unknown",
            Role::Other => "other",
        }
    }
    pub fn from_name(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|a| a.name() == s)
    }
    pub fn label(self) -> &'static str {
        match self {
            Role::Tokio => "tokio worker",
            Role::RocksDbBackground => "RocksDB background",
            Role::PlainThread => "plain std::thread (no tokio frames)",
            Role::KernelOrUnknown => "kernel or unknown",
            Role::Other => "other",
        }
    }
}

/// The [`Role`] of a stack, from its frames.
pub fn stack_role(frames: &[String]) -> Role {
    let r = rules();
    let any = |re: &Regex| frames.iter().any(|f| re.is_match(f));
    if any(&r.tokio) {
        Role::Tokio
    } else if any(&r.rocksdb_bg) {
        Role::RocksDbBackground
    } else if any(&r.std_thread) {
        Role::PlainThread
    } else if frames
        .iter()
        .all(|f| is_kernel_frame(f) || f == "[unknown]")
    {
        Role::KernelOrUnknown
    } else {
        Role::Other
    }
}

/// What kind of thread a stack ran on, as a label.
pub fn thread_role(frames: &[String]) -> &'static str {
    stack_role(frames).label()
}

/// Who issued a sync seen in a stack: the block-commit path, RocksDB's own background
/// flush or compaction (`SyncClosedLogs`, SST file sync), or unknown (no user frames).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SyncPath {
    BlockCommit,
    Background,
    Unknown,
}

/// Classifies a stack holding an fsync/fdatasync by its user frames.
pub fn sync_path(frames: &[String]) -> SyncPath {
    let r = rules();
    let any = |re: &Regex| frames.iter().any(|f| re.is_match(f));
    if any(&r.bg_sync) {
        SyncPath::Background
    } else if any(&r.commit_sync) {
        SyncPath::BlockCommit
    } else {
        SyncPath::Unknown
    }
}

/// Whether a thread name (comm) is one of RocksDB's background threads
/// (`rocksdb:low`, `rocksdb:high`, `rocksdb:bot`, ...).
pub fn is_rocksdb_thread(comm: &str) -> bool {
    comm.starts_with("rocksdb:")
}

/// Off-CPU wait reasons, in precedence order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    Disk,
    Futex,
    Network,
    Poll,
    Sleep,
    Other,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Reason::Disk,
        Reason::Futex,
        Reason::Network,
        Reason::Poll,
        Reason::Sleep,
        Reason::Other,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Reason::Disk => "disk",
            Reason::Futex => "futex",
            Reason::Network => "network",
            Reason::Poll => "poll",
            Reason::Sleep => "sleep",
            Reason::Other => "other",
        }
    }
    pub fn from_name(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|a| a.name() == s)
    }
}

/// Whether an off-CPU stack is a disk-write stall path (fsync/fdatasync, waiting for
/// writeback, journal commit, dirty-page throttling, RocksDB WAL sync).
pub fn is_disk_write_stall(frames: &[String]) -> bool {
    frames
        .iter()
        .any(|f| rules().disk_stall.is_match(strip_k(f)))
}

pub fn classify_offcpu(frames: &[String]) -> Reason {
    let r = rules();
    let any = |re: &Regex| frames.iter().any(|f| re.is_match(strip_k(f)));
    if is_disk_write_stall(frames) || any(&r.disk) {
        Reason::Disk
    } else if any(&r.futex) {
        Reason::Futex
    } else if any(&r.net_wait) {
        Reason::Network
    } else if any(&r.poll) {
        Reason::Poll
    } else if any(&r.sleep) {
        Reason::Sleep
    } else {
        Reason::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fr(s: &str) -> Vec<String> {
        s.split(';').map(str::to_string).collect()
    }

    /// One test per rule of [`AREA_RULES`]: the rule's example frame is recognised as its
    /// area, as a leaf under an unrecognised root and under a `jsonrpsee` frame (self,
    /// with `rpc` inclusive), and the example is counted in the area inclusively.
    macro_rules! rule_test {
        ($name:ident, $area:expr) => {
            #[test]
            fn $name() {
                let rule = AREA_RULES
                    .iter()
                    .find(|r| r.area == $area)
                    .expect("the area has a rule");
                assert_eq!(frame_area(rule.example), Some($area), "{}", rule.example);
                let st = fr(&format!("main;my_crate::work;{}", rule.example));
                assert_eq!(classify_oncpu(&st), $area);
                assert!(inclusive_areas(&st).contains(&$area));
                if $area != Area::Rpc {
                    let under = fr(&format!(
                        "thread_start;jsonrpsee_server::server::handle;{}",
                        rule.example
                    ));
                    assert_eq!(classify_oncpu(&under), $area);
                    assert!(inclusive_areas(&under).contains(&Area::Rpc));
                }
            }
        };
    }
    rule_test!(rule_hashing, Area::Hashing);
    rule_test!(rule_crypto, Area::Crypto);
    rule_test!(rule_log_formatting, Area::LogFormatting);
    rule_test!(rule_rocksdb, Area::RocksDb);
    rule_test!(rule_allocator, Area::Allocator);
    rule_test!(rule_rpc, Area::Rpc);
    rule_test!(rule_network, Area::Network);
    rule_test!(rule_node, Area::Node);

    /// Issue 16: the node's handler work under jsonrpsee frames is the node's, not network.
    #[test]
    fn handler_code_under_jsonrpsee_is_node() {
        let st = fr("thread_start;jsonrpsee_core::server::rpc_module::RpcModule<Context>::register_method::{{closure}};refnode::rpc::module::{{closure}};hex::decode");
        assert_eq!(classify_oncpu(&st), Area::Node);
        // a syscall straight from the node's code is kernel time
        let sys = fr("thread_start;refnode::chain::Chain::produce;do_syscall_64_[k]");
        assert_eq!(classify_oncpu(&sys), Area::Kernel);
        assert_eq!(frame_area("qfc_network::sync::handle"), Some(Area::Node));
        // T1's frames are cut at the first space: `<qfc_network::SyncResponse` is the
        // Debug impl's head, unrecognised, so the formatting frame above it decides
        assert_eq!(frame_area("<qfc_network::protocol::SyncResponse"), None);
        assert_eq!(
            frame_area("<qfc_chain::Block as core::fmt::Debug>::fmt"),
            Some(Area::LogFormatting)
        );
    }

    #[test]
    fn every_area_with_a_frame_rule_has_a_test() {
        // kernel and other are fallbacks (tested below); the rest are in AREA_RULES once
        let with_rule: Vec<Area> = AREA_RULES.iter().map(|r| r.area).collect();
        assert_eq!(with_rule.len(), Area::ALL.len() - 2);
        for a in Area::ALL {
            let n = with_rule.iter().filter(|x| **x == a).count();
            let expect = usize::from(!matches!(a, Area::Kernel | Area::Other));
            assert_eq!(n, expect, "{a:?}");
        }
    }

    #[test]
    fn rule_crypto_names_each_library() {
        for f in [
            "ed25519_dalek::verifying::VerifyingKey::verify_strict",
            "curve25519_dalek::edwards::EdwardsPoint::vartime_double_scalar_mul_basepoint",
            "k256::arithmetic::field::FieldElement::mul",
            "ecdsa::verifying::VerifyingKey<C>::verify_prehash",
            "elliptic_curve::point::AffinePoint::from_encoded_point",
            "secp256k1_ecdsa_verify",
        ] {
            assert_eq!(frame_area(f), Some(Area::Crypto), "{f}");
        }
    }

    /// Issue 16: Ed25519 checks of submitted transactions ran under jsonrpsee frames and
    /// were counted as network; they are crypto by their leaf frames, and the RPC frames
    /// above them are `rpc` (inclusive), not libp2p's network.
    #[test]
    fn curve25519_leaves_under_jsonrpsee_are_crypto_not_network() {
        let st = fr("tokio-rt-worker;std::sys::pal::unix::thread::Thread::new::thread_start;tokio::runtime::scheduler::multi_thread::worker::run;<jsonrpsee_server::server::Server>::handle;refnode::rpc::send_raw_transaction;wire::tx::Transaction::verify;ed25519_dalek::verifying::VerifyingKey::verify;curve25519_dalek::edwards::EdwardsPoint::vartime_double_scalar_mul_basepoint;curve25519_dalek::backend::serial::u64::field::FieldElement51::pow2k");
        assert_eq!(classify_oncpu(&st), Area::Crypto);
        let inc = inclusive_areas(&st);
        assert!(inc.contains(&Area::Crypto) && inc.contains(&Area::Rpc));
        assert!(!inc.contains(&Area::Network));
    }

    /// Issue 16: serving JSON-RPC is `rpc`; the TCP underneath it is `network` (kernel
    /// frames of the TCP stack), and libp2p stays `network`.
    #[test]
    fn rpc_plumbing_is_rpc_and_its_tcp_is_network() {
        let parse = fr("tokio-rt-worker;tokio::runtime::task::harness::poll;hyper::proto::h1::role::Server::parse;httparse::parse_headers");
        assert_eq!(classify_oncpu(&parse), Area::Rpc);
        let send = fr("tokio-rt-worker;hyper::proto::h1::dispatch::Dispatcher<D,Bs,I,T>::poll_write;tokio::net::tcp::stream::TcpStream::poll_write;__x64_sys_sendto_[k];tcp_sendmsg_locked_[k]");
        assert_eq!(classify_oncpu(&send), Area::Network);
        assert!(inclusive_areas(&send).contains(&Area::Rpc));
        let p2p = fr("tokio-rt-worker;libp2p_swarm::Swarm<T>::poll_next_event;yamux::connection::Connection<T>::poll_next_inbound");
        assert_eq!(classify_oncpu(&p2p), Area::Network);
        assert!(!inclusive_areas(&p2p).contains(&Area::Rpc));
    }

    #[test]
    fn self_area_is_the_leaf_most_recognised_frame() {
        // a kernel interrupt leaf under blake3 is hashing (kernel frames are a fallback)
        assert_eq!(
            classify_oncpu(&fr(
                "thread_start;blake3::portable::compress_in_place;el0t_64_irq"
            )),
            Area::Hashing
        );
        // malloc under log formatting is the allocator's self time, log formatting's inclusive
        let st = fr("x;<tracing_subscriber::fmt::Subscriber<N,E,F,W>;malloc");
        assert_eq!(classify_oncpu(&st), Area::Allocator);
        assert_eq!(
            inclusive_areas(&st),
            vec![Area::LogFormatting, Area::Allocator]
        );
        assert_eq!(classify_oncpu(&fr("x;y;cfree;[unknown]")), Area::Allocator);
    }

    #[test]
    fn rule_kernel_fallback() {
        assert_eq!(
            classify_oncpu(&fr("x;finish_task_switch.isra.0")),
            Area::Kernel
        );
        assert_eq!(classify_oncpu(&fr("x;do_work_[k]")), Area::Kernel);
        assert_eq!(inclusive_areas(&fr("x;do_work_[k]")), vec![Area::Kernel]);
    }

    #[test]
    fn rule_other_fallback() {
        assert_eq!(classify_oncpu(&fr("main;my_crate::work")), Area::Other);
        assert_eq!(
            inclusive_areas(&fr("main;my_crate::work")),
            vec![Area::Other]
        );
    }

    #[test]
    fn roles_by_shape_not_name() {
        assert_eq!(
            stack_role(&fr("[unknown];std::sys::pal::unix::thread::Thread::new::thread_start;blake3::portable::compress_in_place")),
            Role::PlainThread
        );
        assert_eq!(
            stack_role(&fr(
                "thread_start;tokio::runtime::scheduler::multi_thread::worker::run;blake3::hash"
            )),
            Role::Tokio
        );
    }

    #[test]
    fn sync_paths() {
        assert_eq!(
            sync_path(&fr("thread_start;rocksdb::DBImpl::BGWorkFlush;rocksdb::DBImpl::SyncClosedLogs;fdatasync;__x64_sys_fdatasync_[k]")),
            SyncPath::Background
        );
        assert_eq!(
            sync_path(&fr("thread_start;tokio::runtime::scheduler::multi_thread::worker::run;rocksdb::DBImpl::WriteImpl;rocksdb::DBImpl::WriteToWAL;fdatasync;__x64_sys_fdatasync_[k]")),
            SyncPath::BlockCommit
        );
        assert_eq!(
            sync_path(&fr("[libc.so.6];fdatasync_[k]")),
            SyncPath::Unknown
        );
    }

    #[test]
    fn offcpu_reasons() {
        assert_eq!(
            classify_offcpu(&fr("el0t_64_sync;__arm64_sys_futex;futex_wait;schedule")),
            Reason::Futex
        );
        assert_eq!(
            classify_offcpu(&fr("entry_SYSCALL_64_[k];__x64_sys_fdatasync_[k];file_write_and_wait_range_[k];io_schedule_[k]")),
            Reason::Disk
        );
        assert!(is_disk_write_stall(&fr(
            "a;__x64_sys_fdatasync_[k];schedule_[k]"
        )));
        assert!(!is_disk_write_stall(&fr("a;tcp_recvmsg;schedule")));
        assert_eq!(
            classify_offcpu(&fr("a;tcp_recvmsg;schedule")),
            Reason::Network
        );
    }

    #[test]
    fn parses_thread_first() {
        let f = Folded::parse("tokio-rt-worker;a;b 3\nbad line\nqfc-node;c 2\n", true);
        let g = Folded::parse("[futex];qfc-node;[libc.so.6];futex_wait_[k] 7\n", true);
        assert_eq!(g.stacks[0].class.as_deref(), Some("[futex]"));
        assert_eq!(g.stacks[0].thread.as_deref(), Some("qfc-node"));
        assert_eq!(g.stacks[0].frames, vec!["[libc.so.6]", "futex_wait_[k]"]);
        assert_eq!(f.total(), 5);
        assert_eq!(f.malformed_lines, 1);
        assert_eq!(f.stacks[0].thread.as_deref(), Some("tokio-rt-worker"));
        assert_eq!(f.stacks[0].frames, vec!["a", "b"]);
        assert_eq!(f.to_text(), "qfc-node;c 2\ntokio-rt-worker;a;b 3\n");
    }
}
