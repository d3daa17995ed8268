//! How a `qfc-lab` command ends: its [`Exit`] code, or a [`Failure`] the
//! binary prints (the one place errors are printed, lab/src/main.rs). A leaf
//! module: the commands (lib.rs, orchestrate.rs) depend on it, never the
//! other way.

/// Exit codes (documented in README.md and docs/ARCHITECTURE.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    Ok = 0,
    CheckFailed = 1,
    Usage = 2,
    RunFailed = 3,
    /// An expectation over repetitions is inconclusive (its interval
    /// straddles the bound), and none failed: not a pass.
    Inconclusive = 4,
}

/// A command that failed before it reported its own outcome: the binary
/// prints each error with its chain ([`Failure`]'s `Display`, the one place
/// errors are printed) and exits with `exit`. Outcomes a command already
/// reported (a run's bundle status, a report's failed expectation) are
/// `Ok(Exit)` instead.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub errors: Vec<anyhow::Error>,
}

impl Failure {
    pub fn new(exit: Exit, error: impl Into<anyhow::Error>) -> Self {
        Self {
            exit,
            errors: vec![error.into()],
        }
    }

    /// A usage or scenario error (exit 2).
    pub fn usage(error: impl Into<anyhow::Error>) -> Self {
        Self::new(Exit::Usage, error)
    }

    /// A failed run or command (exit 3).
    pub fn run_failed(error: impl Into<anyhow::Error>) -> Self {
        Self::new(Exit::RunFailed, error)
    }
}

/// `error: <chain>` per error, one a line. The chain is `{:#}`'s
/// `outer: cause: cause`, except that a cause whose text its outer message
/// already quotes (this workspace's errors say their source in their own
/// message) is not repeated.
impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {}", error_chain(e.as_ref()))?;
        }
        Ok(())
    }
}

/// An error and its causes as one line (see [`Failure`]'s `Display`).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let t = c.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading x.toml: {0}")]
    struct Quotes(#[source] std::io::Error);

    #[test]
    fn the_chain_names_each_cause_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        // A cause its message already quotes is not repeated.
        let f = Failure::usage(Quotes(io()));
        assert_eq!(f.to_string(), "error: reading x.toml: no such file");
        // Context added on top is chained, as `{:#}` does.
        let e = anyhow::Error::from(Quotes(io())).context("loading the scenario");
        let f = Failure {
            exit: Exit::Usage,
            errors: vec![e, anyhow::anyhow!("second")],
        };
        assert_eq!(
            f.to_string(),
            "error: loading the scenario: reading x.toml: no such file\nerror: second"
        );
    }
}
