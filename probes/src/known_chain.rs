//! The known answer of the no-frame-pointer unwinding tests (issue 12),
//! shared by probes/tests/unwind.rs (this host) and lab/tests/run_targets.rs
//! (the aarch64 guest): the chain a burner's samples must show, read from
//! probes/tests/data/unwind/nofp_chain.txt, and how many samples show it.

/// A call chain, leaf first, and the frames allowed above its last frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownChain {
    /// Leaf first, down to `main`.
    pub chain: Vec<String>,
    /// Frames allowed above `main` (libc start-up, `_start`).
    pub above: Vec<String>,
}

/// What [`KnownChain::count`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ChainCount {
    /// Samples whose leaf is the chain's leaf.
    pub leaf: u64,
    /// Of those, samples with the whole chain.
    pub whole: u64,
    /// Frames of those samples that are on neither the chain (at their
    /// place) nor the allowed frames above it: wrong frames.
    pub wrong: Vec<String>,
}

impl KnownChain {
    /// Parses `chain NAME` and `above NAME` lines (`#` comments ignored).
    pub fn parse(text: &str) -> Self {
        let pick = |kind: &str| {
            text.lines()
                .filter_map(|l| l.strip_prefix(kind))
                .map(|n| n.trim().to_owned())
                .collect()
        };
        Self {
            chain: pick("chain "),
            above: pick("above "),
        }
    }

    /// The no-frame-pointer program's chain, from the repository.
    pub fn nofp() -> std::io::Result<Self> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/unwind/nofp_chain.txt");
        Ok(Self::parse(&std::fs::read_to_string(p)?))
    }

    /// Counts `stacks` (count, user frames leaf first) against the chain.
    pub fn count(&self, stacks: &[(u64, Vec<String>)]) -> ChainCount {
        let mut c = ChainCount::default();
        for (n, user) in stacks {
            if user.first() != self.chain.first() {
                continue;
            }
            c.leaf += n;
            if user.len() >= self.chain.len() && user[..self.chain.len()] == self.chain[..] {
                c.whole += n;
            }
            for (i, f) in user.iter().enumerate() {
                let ok = match self.chain.get(i) {
                    Some(want) => f == want,
                    None => self.above.contains(f),
                };
                let w = format!("#{i} {f} in {user:?}");
                if !ok && !c.wrong.contains(&w) {
                    c.wrong.push(w);
                }
            }
        }
        c
    }
}

/// The user stacks of process `tgid` (all when None) in an `oncpu.json`:
/// (count, frames leaf first).
pub fn oncpu_user_stacks(v: &serde_json::Value, tgid: Option<u64>) -> Vec<(u64, Vec<String>)> {
    v["stacks"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|st| tgid.is_none_or(|t| st["tgid"].as_u64() == Some(t)))
                .map(|st| {
                    let user = st["user"]
                        .as_array()
                        .map(|f| {
                            f.iter()
                                .filter_map(|x| x.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default();
                    (st["count"].as_u64().unwrap_or(0), user)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_whole_cut_and_wrong() {
        let k = KnownChain::parse("# c\nchain a\nchain b\nchain main\nabove _start\n");
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        let stacks = vec![
            (3, s(&["a", "b", "main", "_start"])),
            (2, s(&["a", "b"])),
            (1, s(&["a", "x", "main"])),
            (7, s(&["other"])),
        ];
        let c = k.count(&stacks);
        assert_eq!((c.leaf, c.whole), (6, 3));
        assert_eq!(c.wrong.len(), 1, "{c:?}");
        assert!(c.wrong[0].starts_with("#1 x"));
        assert_eq!(
            KnownChain::nofp().unwrap().chain.last().map(String::as_str),
            Some("main")
        );
    }
}
