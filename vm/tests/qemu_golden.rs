//! Golden QEMU command lines (`tests/data/qemu/<case>/argv.txt`, one argument
//! per line), built without running QEMU. Missing files are created; set
//! `QFC_BLESS=1` to rewrite them after an intended change.

use std::path::{Path, PathBuf};
use vm::arch::{Arch, ResolvedAccel};
use vm::qemu::{qemu_args, Forward, LaunchSpec};

fn spec(arch: Arch, accel: ResolvedAccel) -> LaunchSpec {
    let img = PathBuf::from("/cache/images/KEY");
    LaunchSpec {
        arch,
        accel,
        cpus: 2,
        mem_mib: 2048,
        kernel: img.join("vmlinuz"),
        initrd: img.join("initrd.img"),
        disk: img.join("disk.qcow2"),
        share_dir: "/runs/r1/guest/share".into(),
        serial_log: "/runs/r1/guest/serial.log".into(),
        forwards: vec![
            Forward {
                guest_port: 22,
                host_port: 40022,
            },
            Forward {
                guest_port: 8545,
                host_port: 48545,
            },
            Forward {
                guest_port: 30303,
                host_port: 40303,
            },
            Forward {
                guest_port: 6060,
                host_port: 46060,
            },
        ],
    }
}

fn check(case: &str, spec: &LaunchSpec) {
    let argv = qemu_args(spec);
    let text: String = argv
        .iter()
        .map(|a| format!("{}\n", a.to_str().expect("utf-8 argument")))
        .collect();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/qemu")
        .join(case)
        .join("argv.txt");
    if let Err(e) = vm::testing::golden(&path, &text) {
        panic!("{case}: {e}");
    }
}

#[test]
fn aarch64_tcg() {
    check("aarch64-tcg", &spec(Arch::Aarch64, ResolvedAccel::Tcg));
}

#[test]
fn aarch64_kvm() {
    check("aarch64-kvm", &spec(Arch::Aarch64, ResolvedAccel::Kvm));
}

#[test]
fn aarch64_hvf() {
    check("aarch64-hvf", &spec(Arch::Aarch64, ResolvedAccel::Hvf));
}

#[test]
fn x86_64_tcg() {
    check("x86_64-tcg", &spec(Arch::X86_64, ResolvedAccel::Tcg));
}

#[test]
fn x86_64_kvm() {
    check("x86_64-kvm", &spec(Arch::X86_64, ResolvedAccel::Kvm));
}

#[test]
fn commas_in_paths_are_escaped() {
    let mut s = spec(Arch::Aarch64, ResolvedAccel::Tcg);
    s.share_dir = "/runs/a,b/share".into();
    s.disk = "/cache/x,y/disk.qcow2".into();
    s.kernel = "/cache/x,y/vmlinuz".into();
    check("path-with-comma", &s);
}

/// Invariants every case must keep, independent of the golden files.
#[test]
fn invariants_snapshot_loopback_only_serial_to_file() {
    for arch in [Arch::Aarch64, Arch::X86_64] {
        for accel in [ResolvedAccel::Tcg, ResolvedAccel::Kvm] {
            let argv: Vec<String> = qemu_args(&spec(arch, accel))
                .into_iter()
                .map(|a| a.into_string().unwrap())
                .collect();
            let joined = argv.join(" ");
            let drive = argv
                .iter()
                .find(|a| a.starts_with("if=none,id=disk0"))
                .unwrap();
            assert!(
                drive.contains("snapshot=on"),
                "disk not in snapshot mode: {drive}"
            );
            let netdev = argv.iter().find(|a| a.starts_with("user,id=net0")).unwrap();
            let fwds: Vec<&str> = netdev
                .split(',')
                .filter(|p| p.starts_with("hostfwd="))
                .collect();
            assert_eq!(fwds.len(), 4);
            for f in fwds {
                assert!(
                    f.starts_with("hostfwd=tcp:127.0.0.1:"),
                    "forward not on loopback: {f}"
                );
            }
            assert!(
                netdev.contains("restrict=on"),
                "guest may reach the outside: {netdev}"
            );
            assert!(joined.contains("-serial chardev:serial0"));
            assert!(joined.contains("mount_tag=host0"));
            assert!(joined.contains(&format!("-accel {}", accel.as_str())));
        }
    }
}
