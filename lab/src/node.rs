//! The node under test: its command line in qfc-node's vocabulary (a pure
//! function, unit-tested) and where its binary is found.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::scenario::{NodeKind, NodeSpec};

/// Loopback ports the lab chose for the node (`node/cmdline.json` records them).
pub use crate::context_file::NodePorts;

/// The node's command line after the program: qfc-node flags, then the
/// reference node's `--lab-*` knobs, then `extra_args` verbatim.
/// `host` is the address the listeners bind ([`vm::Target::listen_host`]).
pub fn node_args(
    spec: &NodeSpec,
    datadir: &Path,
    ports: NodePorts,
    host: std::net::IpAddr,
) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![
        "--datadir".into(),
        datadir.into(),
        "--chain-id".into(),
        spec.chain_id.to_string().into(),
        "--rpc-addr".into(),
        format!("{host}:{}", ports.rpc).into(),
        "--metrics-addr".into(),
        format!("{host}:{}", ports.metrics).into(),
        "--p2p-port".into(),
        ports.p2p.to_string().into(),
        "--log-level".into(),
        spec.log_level.as_str().into(),
    ];
    let flag = |a: &mut Vec<OsString>, on: bool, f: &str| {
        if on {
            a.push(f.into());
        }
    };
    flag(&mut a, spec.dev, "--dev");
    flag(&mut a, spec.no_network, "--no-network");
    flag(&mut a, spec.mine, "--mine");
    if let Some(t) = spec.threads {
        a.extend(["--threads".into(), t.to_string().into()]);
    }
    flag(&mut a, spec.db_statistics, "--db-statistics");
    if spec.snapshot_interval_secs > 0 {
        a.extend([
            "--snapshot-interval-secs".into(),
            spec.snapshot_interval_secs.to_string().into(),
        ]);
    }
    if let (NodeKind::Refnode, Some(r)) = (spec.kind, &spec.refnode) {
        if let Some(ms) = r.block_interval_ms {
            a.extend(["--lab-block-interval-ms".into(), ms.to_string().into()]);
        }
        flag(&mut a, r.synced_commit, "--lab-synced-commit");
        flag(&mut a, r.admin, "--lab-admin");
        // The reference node can keep p2p on loopback; qfc-node cannot.
        a.extend(["--lab-p2p-host".into(), host.to_string().into()]);
    }
    a.extend(spec.extra_args.iter().map(OsString::from));
    a
}

/// A binary shipped next to the running `qfc-lab` (same target directory).
/// Test binaries live in `target/<profile>/deps/`, so the parent is tried too.
pub fn sibling_binary(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    [dir.join(name), dir.parent()?.join(name)]
        .into_iter()
        .find(|p| p.is_file())
}

/// Why no node binary could be resolved.
#[derive(Debug, thiserror::Error)]
pub enum NodeBinaryError {
    #[error("node binary {} does not exist: build it or fix [node] binary", .0.display())]
    Missing(PathBuf),
    #[error("qfc-refnode not found next to qfc-lab: run `cargo build -p refnode` (same target directory) or pass --node-binary")]
    NoRefnode,
}

/// Resolves the node binary: `--node-binary`, then `[node] binary`, then
/// `qfc-refnode` next to qfc-lab.
pub fn resolve_binary(spec: &NodeSpec, cli: Option<&Path>) -> Result<PathBuf, NodeBinaryError> {
    if let Some(p) = cli.map(Path::to_path_buf).or_else(|| spec.binary.clone()) {
        return if p.is_file() {
            Ok(p)
        } else {
            Err(NodeBinaryError::Missing(p))
        };
    }
    sibling_binary("qfc-refnode").ok_or(NodeBinaryError::NoRefnode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::parse;

    fn args(extra: &str) -> Vec<String> {
        let src =
            format!("name = \"n\"\nseed = 1\n{extra}\n[[phase]]\nname = \"a\"\nduration_s = 1\n");
        let s = parse("n.toml", &src).unwrap();
        node_args(
            &s.node,
            Path::new("/d"),
            NodePorts {
                rpc: 1,
                metrics: 2,
                p2p: 3,
            },
            std::net::Ipv4Addr::LOCALHOST.into(),
        )
        .into_iter()
        .map(|a| a.into_string().unwrap())
        .collect()
    }

    #[test]
    fn refnode_flags_in_qfc_node_vocabulary() {
        let a = args("[node]\nthreads = 2\nmine = true\nextra_args = [\"--x\"]\n[node.refnode]\nsynced_commit = true\nblock_interval_ms = 500\n");
        assert_eq!(
            a.join(" "),
            "--datadir /d --chain-id 9000 --rpc-addr 127.0.0.1:1 --metrics-addr 127.0.0.1:2 \
             --p2p-port 3 --log-level info --dev --mine --threads 2 --db-statistics \
             --lab-block-interval-ms 500 --lab-synced-commit --lab-admin --lab-p2p-host 127.0.0.1 --x"
        );
    }

    #[test]
    fn qfc_node_gets_no_lab_flags() {
        let a = args("[node]\nkind = \"qfc-node\"\nbinary = \"/bin/true\"\ndev = false\ndb_statistics = false\n");
        assert!(!a.iter().any(|x| x.starts_with("--lab-")), "{a:?}");
        assert!(!a.contains(&"--dev".to_string()));
    }
}
