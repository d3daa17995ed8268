//! Child processes that never outlive the lab: each runs in its own process
//! group, gets `SIGKILL` when the lab dies (`PR_SET_PDEATHSIG`) and is killed,
//! group and all, when its [`GroupChild`] handle is dropped.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not
//! the process. Callers spawn from short-lived threads (tokio's blocking pool
//! retires idle threads after seconds), so every child is forked by one
//! dedicated spawner thread that lives as long as the process.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Environment variable every child process of the lab carries: the pid of
/// the qfc-lab (or test) process that owns it (`qfc-lab gc` reads it, see
/// `crate::gc`). Declared here, where it is set, so that `process` needs
/// nothing from `gc` (no import cycle).
pub const OWNER_VAR: &str = "QFC_LAB_OWNER";

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

fn spawner() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("vm-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("the vm-spawner thread starts");
        Mutex::new(tx)
    })
}

/// A child process in its own process group, killed (whole group) on drop.
#[derive(Debug)]
pub struct GroupChild {
    child: Option<Child>,
    pgid: i32,
}

static CANCEL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Asks every blocking wait of this crate (ssh commands and transfers,
/// guest boot, image and cross-build steps, container commands) to give up
/// within a fraction of a second. Only an atomic store: callable from a
/// signal handler.
pub fn request_cancel() {
    CANCEL.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Lets blocking waits run again (the orchestrator's teardown does this so
/// that a first Ctrl-C still fetches the evidence; a second one cancels).
pub fn clear_cancel() {
    CANCEL.store(false, std::sync::atomic::Ordering::SeqCst);
}

/// True once [`request_cancel`] was called (and not cleared).
pub fn cancel_requested() -> bool {
    CANCEL.load(std::sync::atomic::Ordering::SeqCst)
}

/// The error every cancelled wait returns.
pub fn cancelled_error() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "interrupted (SIGINT/SIGTERM)")
}

/// Sleeps `d` in slices of at most 50 ms; `Err(Interrupted)` as soon as a
/// cancel is requested.
pub fn sleep_or_cancel(d: Duration) -> io::Result<()> {
    let end = Instant::now() + d;
    loop {
        if cancel_requested() {
            return Err(cancelled_error());
        }
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// Runs `cmd` (stdin from /dev/null, stdout and stderr captured) in its own
/// process group. `Ok(None)` when `timeout` passed first (the group is
/// killed); `Err(Interrupted)` when a cancel was requested (likewise).
pub fn run_output(
    cmd: Command,
    timeout: Option<Duration>,
) -> io::Result<Option<std::process::Output>> {
    let mut cmd = cmd;
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = spawn_group(cmd)?;
    fn drain<R: io::Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut b = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut b);
            }
            b
        })
    }
    let out = drain(child.child_mut().stdout.take());
    let err = drain(child.child_mut().stderr.take());
    let deadline = timeout.map(|t| Instant::now() + t);
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if cancel_requested() {
            let _ = child.kill();
            return Err(cancelled_error());
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ok(Some(std::process::Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }))
}

/// Spawns `cmd` as the leader of a new process group with
/// `PR_SET_PDEATHSIG = SIGKILL`, from the long-lived spawner thread.
pub fn spawn_group(mut cmd: Command) -> io::Result<GroupChild> {
    cmd.process_group(0);
    // The owner mark `qfc-lab gc` reads.
    cmd.env(OWNER_VAR, std::process::id().to_string());
    // SAFETY: the closure runs between fork and exec and calls only the
    // async-signal-safe `prctl` and `getppid`.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl.
            if libc::getppid() == 1 {
                return Err(io::Error::other("parent exited before exec"));
            }
            Ok(())
        });
    }
    let (tx, rx) = mpsc::channel();
    spawner()
        .lock()
        .map_err(|_| io::Error::other("vm-spawner lock poisoned"))?
        .send((cmd, tx))
        .map_err(|_| io::Error::other("vm-spawner thread is gone"))?;
    let child = rx
        .recv()
        .map_err(|_| io::Error::other("vm-spawner thread dropped the request"))??;
    let pgid = i32::try_from(child.id()).map_err(io::Error::other)?;
    Ok(GroupChild {
        child: Some(child),
        pgid,
    })
}

impl GroupChild {
    /// Process id (also the process group id).
    pub fn id(&self) -> u32 {
        self.pgid as u32
    }

    /// The std handle, for its piped stdio.
    pub fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("child present until drop")
    }

    /// Non-blocking: `Some(status)` once the leader has exited.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child_mut().try_wait()
    }

    /// Sends `SIGTERM` to the group, waits up to `grace` for the leader, then
    /// `SIGKILL`s the group and reaps the leader. Idempotent.
    pub fn terminate(&mut self, grace: Duration) -> io::Result<ExitStatus> {
        let Some(child) = self.child.as_mut() else {
            return Err(io::Error::other("child already reaped"));
        };
        if let Some(status) = child.try_wait()? {
            kill_group(self.pgid, libc::SIGKILL);
            return Ok(status);
        }
        kill_group(self.pgid, libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait()? {
                kill_group(self.pgid, libc::SIGKILL);
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        kill_group(self.pgid, libc::SIGKILL);
        child.wait()
    }

    /// Kills the group at once and reaps the leader.
    pub fn kill(&mut self) -> io::Result<ExitStatus> {
        self.terminate(Duration::ZERO)
    }
}

fn kill_group(pgid: i32, sig: i32) {
    if pgid > 1 {
        // SAFETY: plain syscall; a group that no longer exists yields ESRCH.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(self.pgid, libc::SIGKILL);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_kills_the_whole_group() {
        let mut cmd = Command::new("sh");
        // The grandchild keeps the group alive after the shell would exit.
        cmd.args(["-c", "sleep 60 & echo $! ; wait"]);
        cmd.stdout(std::process::Stdio::piped());
        let mut child = spawn_group(cmd).expect("spawn sh");
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.child_mut().stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let grandchild: i32 = line.trim().parse().unwrap();
        drop(child);
        std::thread::sleep(Duration::from_millis(100));
        // SAFETY: signal 0 only checks existence.
        let alive = unsafe { libc::kill(grandchild, 0) } == 0;
        let zombie = std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true);
        assert!(
            !alive || zombie,
            "grandchild {grandchild} survived the drop"
        );
    }

    #[test]
    fn spawn_from_a_thread_that_exits_does_not_kill_the_child() {
        let child = std::thread::spawn(|| {
            let mut cmd = Command::new("sleep");
            cmd.arg("30");
            spawn_group(cmd).expect("spawn sleep")
        })
        .join()
        .unwrap();
        let mut child = child;
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            child.try_wait().unwrap().is_none(),
            "child died with its spawning thread"
        );
        child.kill().unwrap();
    }
}
