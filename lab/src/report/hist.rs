//! Power-of-two latency histograms as bpftrace prints them (`[2K, 4K)`, `[0]`, `[1]`),
//! with merging and percentile estimates (the upper edge of the bucket holding the rank).

use std::collections::BTreeMap;

/// One bucket: values `lo <= v < hi`. bpftrace's single-value buckets `[0]` and `[1]`
/// have `hi = lo + 1`. The probes' JSON histograms are made of the same buckets.
pub use bundle_schema::probes::Bucket;

/// A histogram keyed by bucket lower edge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Log2Hist {
    buckets: BTreeMap<u64, (u64, u64)>,
}

impl Log2Hist {
    pub fn from_buckets(buckets: impl IntoIterator<Item = Bucket>) -> Self {
        let mut h = Self::default();
        for b in buckets {
            h.add(b);
        }
        h
    }

    pub fn add(&mut self, b: Bucket) {
        let e = self.buckets.entry(b.lo).or_insert((b.hi, 0));
        e.0 = e.0.max(b.hi);
        e.1 += b.count;
    }

    pub fn merge(&mut self, other: &Log2Hist) {
        for b in other.buckets() {
            self.add(b);
        }
    }

    pub fn buckets(&self) -> impl Iterator<Item = Bucket> + '_ {
        self.buckets
            .iter()
            .map(|(&lo, &(hi, count))| Bucket { lo, hi, count })
    }

    pub fn total(&self) -> u64 {
        self.buckets.values().map(|v| v.1).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    /// The value at quantile `q` (0 < q <= 1) as the upper edge of the bucket that holds
    /// the rank `ceil(q * total)`: an upper bound, exact only to a factor of two. For the
    /// single-value buckets `[0]` and `[1]` the value itself. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for b in self.buckets() {
            seen += b.count;
            if seen >= rank {
                return Some(if b.hi == b.lo + 1 { b.lo } else { b.hi });
            }
        }
        None
    }

    /// Upper edge of the highest non-empty bucket.
    pub fn max(&self) -> Option<u64> {
        self.quantile(1.0)
    }
}

/// Parses a bpftrace size label (`512`, `2K`, `16M`, `1G`); suffixes are powers of 1024.
pub fn parse_size_label(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'K' => (&s[..s.len() - 1], 1u64 << 10),
        'M' => (&s[..s.len() - 1], 1 << 20),
        'G' => (&s[..s.len() - 1], 1 << 30),
        'T' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

/// Parses one bpftrace histogram line: `[2K, 4K)   4 |@@@|`, `[0]  264343 |@@|`.
pub fn parse_hist_line(line: &str) -> Option<Bucket> {
    let line = line.trim();
    let rest = line.strip_prefix('[')?;
    let close = rest.find([')', ']'])?;
    let range = &rest[..close];
    let after = rest[close + 1..].trim_start();
    let count_str = after
        .split(|c: char| c.is_whitespace() || c == '|')
        .next()?;
    let count = count_str.parse::<u64>().ok()?;
    let (lo, hi) = match range.split_once(',') {
        Some((a, b)) => (parse_size_label(a)?, parse_size_label(b)?),
        None => {
            let v = parse_size_label(range)?;
            (v, v + 1)
        }
    };
    if hi <= lo {
        return None;
    }
    Some(Bucket { lo, hi, count })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_and_single_values() {
        assert_eq!(
            parse_hist_line("[2K, 4K)               4 |@@@@@@@@|"),
            Some(Bucket {
                lo: 2048,
                hi: 4096,
                count: 4
            })
        );
        assert_eq!(
            parse_hist_line("[0]               264343 |@@@@|"),
            Some(Bucket {
                lo: 0,
                hi: 1,
                count: 264343
            })
        );
        assert_eq!(
            parse_hist_line("[1]               310535 |@@@@|"),
            Some(Bucket {
                lo: 1,
                hi: 2,
                count: 310535
            })
        );
        assert_eq!(
            parse_hist_line("[1M, 2M)  2 |@|"),
            Some(Bucket {
                lo: 1 << 20,
                hi: 2 << 20,
                count: 2
            })
        );
        assert_eq!(parse_hist_line("@calls[alloy]: 6"), None);
    }

    #[test]
    fn quantile_is_bucket_upper_edge() {
        let h = Log2Hist::from_buckets([
            Bucket {
                lo: 2048,
                hi: 4096,
                count: 4,
            },
            Bucket {
                lo: 4096,
                hi: 8192,
                count: 2,
            },
        ]);
        assert_eq!(h.total(), 6);
        assert_eq!(h.quantile(0.5), Some(4096));
        assert_eq!(h.quantile(0.99), Some(8192));
        let z = Log2Hist::from_buckets([Bucket {
            lo: 0,
            hi: 1,
            count: 9,
        }]);
        assert_eq!(z.quantile(0.99), Some(0));
        assert_eq!(Log2Hist::default().quantile(0.5), None);
    }
}
