//! SIGINT/SIGTERM: the handler only records the signal (and asks `vm`'s
//! blocking waits to give up); the orchestrator polls [`requested`] and
//! tears everything down in order. Teardown lets `vm` wait again, so a
//! first signal still fetches the evidence; a second one cancels that too.

use std::sync::atomic::{AtomicI32, Ordering};

static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn record(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::SeqCst);
    // Blocking waits in `vm` (boot, ssh, transfers, image and cross-build
    // steps) give up within a fraction of a second: Ctrl-C takes effect in
    // any step, not only between steps. An atomic store: signal-safe.
    vm::process::request_cancel();
}

/// Installs the handlers for SIGINT and SIGTERM.
pub fn install() -> nix::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(record),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for s in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores into an atomic (async-signal-safe).
        unsafe { sigaction(s, &action) }?;
    }
    Ok(())
}

/// The signal received, if any.
pub fn requested() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Signal name for messages.
pub fn name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "signal",
    }
}
