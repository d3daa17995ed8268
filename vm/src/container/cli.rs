//! Docker command lines, built by pure functions and run by [`run`].
//!
//! Why the CLI and not `testcontainers`: testcontainers 0.28 talks to the
//! engine through bollard 0.21 with the API version pinned to 1.53
//! (`bollard::API_DEFAULT_VERSION`, no negotiation, and no way to hand it a
//! client of our own), and Debian's Docker 20.10 answers every such request
//! with HTTP 400 "client version 1.53 is too new. Maximum supported API
//! version is 1.41". The Debian docker CLI that ships with the engine speaks
//! its API version exactly, so the lab drives the engine through it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::target::{ExecOutput, TargetError};

/// The docker client to use: `$QFC_LAB_DOCKER`, else Debian's
/// `/usr/bin/docker` (the client matching the engine), else `docker` on PATH.
pub fn default_docker() -> PathBuf {
    if let Some(p) = std::env::var_os("QFC_LAB_DOCKER") {
        return PathBuf::from(p);
    }
    let debian = Path::new("/usr/bin/docker");
    if debian.exists() {
        debian.to_path_buf()
    } else {
        PathBuf::from("docker")
    }
}

fn os(items: &[&str]) -> Vec<OsString> {
    items.iter().map(OsString::from).collect()
}

/// `docker version` as one JSON object (client and server).
pub fn version_argv(docker: &Path) -> Vec<OsString> {
    let mut v = vec![docker.as_os_str().to_owned()];
    v.extend(os(&["version", "--format", "{{json .}}"]));
    v
}

/// `docker image inspect` printing the image id (`sha256:...`), or failing
/// when the image does not exist locally.
pub fn image_id_argv(docker: &Path, image: &str) -> Vec<OsString> {
    let mut v = vec![docker.as_os_str().to_owned()];
    v.extend(os(&["image", "inspect", "--format", "{{.Id}}", image]));
    v
}

/// `docker build` with the classic builder (BuildKit is off through the
/// environment, see [`build_env`]): no registry is reached when the
/// Dockerfile starts `FROM` a local image.
pub fn build_argv(docker: &Path, tag: &str, context: &Path) -> Vec<OsString> {
    let mut v = vec![docker.as_os_str().to_owned()];
    v.extend(os(&["build", "--pull=false", "--quiet", "--tag", tag]));
    v.push(context.as_os_str().to_owned());
    v
}

/// Environment for [`build_argv`]: the classic builder.
pub fn build_env() -> Vec<(OsString, OsString)> {
    vec![("DOCKER_BUILDKIT".into(), "0".into())]
}

/// `docker volume create NAME`.
pub fn volume_create_argv(docker: &Path, name: &str) -> Vec<OsString> {
    let mut v = vec![docker.as_os_str().to_owned()];
    v.extend(os(&["volume", "create", name]));
    v
}

/// `docker volume rm -f NAME`.
pub fn volume_rm_argv(docker: &Path, name: &str) -> Vec<OsString> {
    let mut v = vec![docker.as_os_str().to_owned()];
    v.extend(os(&["volume", "rm", "-f", name]));
    v
}

/// How the node's container is started: the production shape (see
/// ../shared/notes/qfc-node.md, "Deployment").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    /// Container name.
    pub name: String,
    /// Local image.
    pub image: String,
    /// Overrides the image's entrypoint (user images); `None`: the image's.
    pub entrypoint: Option<String>,
    /// Arguments after the entrypoint.
    pub args: Vec<OsString>,
    /// Named volume mounted at `volume_mount` (the node's data directory).
    pub volume: String,
    /// Where the volume is mounted in the container.
    pub volume_mount: String,
    /// Ports published as `127.0.0.1:P:P/tcp` (same number on both sides).
    pub ports: Vec<u16>,
    /// Environment variables.
    pub env: Vec<(OsString, OsString)>,
    /// Working directory in the container.
    pub workdir: Option<String>,
    /// Labels (the lab marks its containers so that leftovers can be found).
    pub labels: Vec<(String, String)>,
    /// Signal `docker stop` sends to PID 1 (`--stop-signal`); `None`: SIGTERM.
    pub stop_signal: Option<String>,
}

/// `docker run -d` of a [`RunSpec`]: json-file log driver, ports on
/// 127.0.0.1 only, data on a named volume, no `--platform` (it would pull).
pub fn run_argv(docker: &Path, spec: &RunSpec) -> Vec<OsString> {
    let mut v = vec![docker.as_os_str().to_owned()];
    v.extend(os(&[
        "run",
        "--detach",
        "--name",
        &spec.name,
        "--log-driver",
        "json-file",
    ]));
    for (k, val) in &spec.labels {
        v.push("--label".into());
        v.push(format!("{k}={val}").into());
    }
    v.push("--volume".into());
    v.push(format!("{}:{}", spec.volume, spec.volume_mount).into());
    for p in &spec.ports {
        v.push("--publish".into());
        v.push(format!("127.0.0.1:{p}:{p}/tcp").into());
    }
    for (k, val) in &spec.env {
        v.push("--env".into());
        let mut kv = k.clone();
        kv.push("=");
        kv.push(val);
        v.push(kv);
    }
    if let Some(sig) = &spec.stop_signal {
        v.push("--stop-signal".into());
        v.push(sig.into());
    }
    if let Some(w) = &spec.workdir {
        v.push("--workdir".into());
        v.push(w.into());
    }
    if let Some(e) = &spec.entrypoint {
        v.push("--entrypoint".into());
        v.push(e.into());
    }
    v.push(spec.image.clone().into());
    v.extend(spec.args.iter().cloned());
    v
}

/// `docker inspect` of a container as JSON (an array of one object).
pub fn inspect_argv(docker: &Path, container: &str) -> Vec<OsString> {
    let mut v = vec![docker.as_os_str().to_owned()];
    v.extend(os(&["container", "inspect", container]));
    v
}

/// `docker stop -t GRACE` (SIGTERM to PID 1, SIGKILL after the grace).
pub fn stop_argv(docker: &Path, container: &str, grace: Duration) -> Vec<OsString> {
    let mut v = vec![docker.as_os_str().to_owned()];
    let secs = grace.as_secs().max(1).to_string();
    v.extend(os(&["stop", "--time", &secs, container]));
    v
}

/// `docker rm -f -v` (also removes anonymous volumes, not named ones).
pub fn rm_argv(docker: &Path, container: &str) -> Vec<OsString> {
    let mut v = vec![docker.as_os_str().to_owned()];
    v.extend(os(&["rm", "--force", "--volumes", container]));
    v
}

/// `docker exec CONTAINER ARGV...`.
pub fn exec_argv(docker: &Path, container: &str, argv: &[OsString]) -> Vec<OsString> {
    let mut v = vec![docker.as_os_str().to_owned()];
    v.extend(os(&["exec", container]));
    v.extend(argv.iter().cloned());
    v
}

/// A one-shot container from `image` running `argv` (before the node's
/// container exists).
pub fn run_rm_argv(docker: &Path, image: &str, argv: &[OsString]) -> Vec<OsString> {
    let mut v = vec![docker.as_os_str().to_owned()];
    v.extend(os(&["run", "--rm", "--log-driver", "none"]));
    if let Some((first, rest)) = argv.split_first() {
        v.push("--entrypoint".into());
        v.push(first.clone());
        v.push(image.into());
        v.extend(rest.iter().cloned());
    } else {
        v.push(image.into());
    }
    v
}

/// `docker cp CONTAINER:SRC/. DEST`: the directory's content into `dest`.
pub fn cp_from_argv(docker: &Path, container: &str, src: &Path, dest: &Path) -> Vec<OsString> {
    let mut v = vec![docker.as_os_str().to_owned()];
    v.push("cp".into());
    let mut from = OsString::from(format!("{container}:"));
    from.push(src.as_os_str());
    from.push("/.");
    v.push(from);
    v.push(dest.as_os_str().to_owned());
    v
}

/// `docker cp SRC CONTAINER:DEST`.
pub fn cp_to_argv(docker: &Path, src: &Path, container: &str, dest: &Path) -> Vec<OsString> {
    let mut v = vec![docker.as_os_str().to_owned()];
    v.push("cp".into());
    v.push(src.as_os_str().to_owned());
    let mut to = OsString::from(format!("{container}:"));
    to.push(dest.as_os_str());
    v.push(to);
    v
}

/// Runs a command to completion, killing it after `timeout`.
pub fn run(
    argv: &[OsString],
    env: &[(OsString, OsString)],
    timeout: Duration,
) -> Result<ExecOutput, TargetError> {
    let (program, args) = argv.split_first().ok_or_else(TargetError::empty_command)?;
    let name = program.to_string_lossy().into_owned();
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    tracing::debug!(?argv, "running");
    let mut child = cmd.spawn().map_err(|source| TargetError::Spawn {
        program: name.clone(),
        source,
    })?;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut b);
        b
    });
    let err_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err, &mut b);
        b
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if start.elapsed() >= timeout || crate::process::cancel_requested() => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(source) => {
                return Err(TargetError::Spawn {
                    program: name,
                    source,
                })
            }
        }
    };
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    match status {
        Some(s) => Ok(ExecOutput {
            code: s.code(),
            stdout,
            stderr,
        }),
        None => Err(TargetError::Timeout {
            program: describe(argv),
            timeout,
        }),
    }
}

/// Runs a command that must succeed; the error names the command and
/// quotes its stderr.
pub fn run_ok(
    argv: &[OsString],
    env: &[(OsString, OsString)],
    timeout: Duration,
) -> Result<ExecOutput, TargetError> {
    let out = run(argv, env, timeout)?;
    if out.success() {
        Ok(out)
    } else {
        Err(TargetError::Exec {
            argv: describe(argv),
            code: out.code,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// The first words of a command line, for messages.
pub fn describe(argv: &[OsString]) -> String {
    argv.iter()
        .take(4)
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 14: a failed command is a typed `TargetError::Exec` (argv, code,
    /// stderr), not a string, and its message is the one users saw before.
    #[test]
    fn failed_command_is_a_typed_exec_error() {
        let argv: Vec<OsString> = ["sh", "-c", "echo oops >&2; exit 3"]
            .map(OsString::from)
            .to_vec();
        let e = run_ok(&argv, &[], Duration::from_secs(10)).unwrap_err();
        let TargetError::Exec { code, stderr, .. } = &e else {
            panic!("not Exec: {e:?}")
        };
        assert_eq!((*code, stderr.as_str()), (Some(3), "oops"));
        assert!(e.to_string().ends_with("failed (exit code 3): oops"), "{e}");
        let wrapped = TargetError::Container {
            message: "could not build the image".into(),
            source: Some(Box::new(e)),
        };
        let cause = std::error::Error::source(&wrapped).expect("a #[source]");
        assert!(cause.to_string().contains("exit code 3"), "{cause}");
        assert!(matches!(
            run_ok(&[], &[], Duration::from_secs(1)),
            Err(TargetError::Unsupported(_))
        ));
    }

    fn strs(v: &[OsString]) -> Vec<String> {
        v.iter().map(|s| s.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn run_has_production_shape() {
        let spec = RunSpec {
            name: "qfc-lab-node-1".into(),
            image: "qfc-lab/node:abc".into(),
            entrypoint: None,
            args: vec!["--dev".into(), "--rpc-addr".into(), "0.0.0.0:8545".into()],
            volume: "qfc-lab-data-1".into(),
            volume_mount: "/data".into(),
            ports: vec![8545, 6060],
            env: vec![("QFC_LOG_LEVEL".into(), "info".into())],
            workdir: Some("/data".into()),
            labels: vec![("qfc-lab".into(), "1".into())],
            stop_signal: Some("SIGINT".into()),
        };
        let v = strs(&run_argv(Path::new("/usr/bin/docker"), &spec));
        assert_eq!(
            v,
            [
                "/usr/bin/docker",
                "run",
                "--detach",
                "--name",
                "qfc-lab-node-1",
                "--log-driver",
                "json-file",
                "--label",
                "qfc-lab=1",
                "--volume",
                "qfc-lab-data-1:/data",
                "--publish",
                "127.0.0.1:8545:8545/tcp",
                "--publish",
                "127.0.0.1:6060:6060/tcp",
                "--env",
                "QFC_LOG_LEVEL=info",
                "--stop-signal",
                "SIGINT",
                "--workdir",
                "/data",
                "qfc-lab/node:abc",
                "--dev",
                "--rpc-addr",
                "0.0.0.0:8545"
            ]
        );
        assert!(!v
            .iter()
            .any(|a| a.contains("platform") || a.contains("privileged")));
    }

    #[test]
    fn entrypoint_override_comes_before_image() {
        let spec = RunSpec {
            name: "n".into(),
            image: "img:1".into(),
            entrypoint: Some("/usr/local/bin/qfc-node".into()),
            args: vec!["--dev".into()],
            volume: "v".into(),
            volume_mount: "/data".into(),
            ports: vec![],
            env: vec![],
            workdir: None,
            labels: vec![],
            stop_signal: None,
        };
        let v = strs(&run_argv(Path::new("docker"), &spec));
        let e = v.iter().position(|a| a == "--entrypoint").unwrap();
        let i = v.iter().position(|a| a == "img:1").unwrap();
        assert_eq!(v[e + 1], "/usr/local/bin/qfc-node");
        assert!(e < i);
        assert_eq!(v.last().unwrap(), "--dev");
    }

    #[test]
    fn small_commands() {
        let d = Path::new("docker");
        assert_eq!(
            strs(&version_argv(d)),
            ["docker", "version", "--format", "{{json .}}"]
        );
        assert_eq!(
            strs(&image_id_argv(d, "a:b")),
            ["docker", "image", "inspect", "--format", "{{.Id}}", "a:b"]
        );
        assert_eq!(
            strs(&build_argv(d, "t:1", Path::new("/tmp/ctx"))),
            [
                "docker",
                "build",
                "--pull=false",
                "--quiet",
                "--tag",
                "t:1",
                "/tmp/ctx"
            ]
        );
        assert_eq!(
            strs(&stop_argv(d, "c", Duration::from_millis(300))),
            ["docker", "stop", "--time", "1", "c"]
        );
        assert_eq!(
            strs(&rm_argv(d, "c")),
            ["docker", "rm", "--force", "--volumes", "c"]
        );
        assert_eq!(
            strs(&exec_argv(d, "c", &["uname".into(), "-m".into()])),
            ["docker", "exec", "c", "uname", "-m"]
        );
        assert_eq!(
            strs(&run_rm_argv(d, "img", &["uname".into(), "-m".into()])),
            [
                "docker",
                "run",
                "--rm",
                "--log-driver",
                "none",
                "--entrypoint",
                "uname",
                "img",
                "-m"
            ]
        );
        assert_eq!(
            strs(&cp_from_argv(
                d,
                "c",
                Path::new("/data/out"),
                Path::new("/tmp/x")
            )),
            ["docker", "cp", "c:/data/out/.", "/tmp/x"]
        );
        assert_eq!(
            strs(&cp_to_argv(
                d,
                Path::new("/tmp/f"),
                "c",
                Path::new("/opt/f")
            )),
            ["docker", "cp", "/tmp/f", "c:/opt/f"]
        );
        assert_eq!(
            build_env(),
            [(OsString::from("DOCKER_BUILDKIT"), OsString::from("0"))]
        );
    }

    #[test]
    fn run_reports_failure_with_stderr() {
        let argv: Vec<OsString> = vec!["sh".into(), "-c".into(), "echo nope >&2; exit 3".into()];
        let err = run_ok(&argv, &[], Duration::from_secs(5))
            .unwrap_err()
            .to_string();
        assert!(err.contains("exit code 3") && err.contains("nope"), "{err}");
        let t = run(
            &["sleep".into(), "5".into()],
            &[],
            Duration::from_millis(100),
        );
        assert!(matches!(t, Err(TargetError::Timeout { .. })));
    }
}
