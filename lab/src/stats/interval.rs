//! The 95% confidence interval for a median from order statistics: the exact
//! binomial (sign-test) interval, interpolated between adjacent order
//! statistics (Hettmansperger and Sheather, 1986) so that its confidence is
//! close to nominal instead of above it. Distribution-free for continuous
//! data; docs/STATISTICS.md says what it is at small n.

use serde::{Deserialize, Serialize};

/// How an interval was obtained, and its confidence.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case", tag = "method")]
pub enum Method {
    /// `[x_(d), x_(n-d+1)]` exactly; its confidence is `1 - 2 P(B <= d-1)`,
    /// B ~ Binomial(n, 1/2). At n <= 5 this is `[min, max]` and its
    /// confidence is below the nominal one (93.75% at n = 5).
    OrderStatistics { d: usize },
    /// Interpolated between d and d+1 (confidences `gamma_d >= nominal >
    /// gamma_d1`) with weight `lambda` on the inner order statistics.
    Interpolated {
        d: usize,
        gamma_d: f64,
        gamma_d1: f64,
        lambda: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
    /// The confidence this interval has (nominal when interpolated).
    pub confidence: f64,
    #[serde(flatten)]
    pub method: Method,
}

/// `P(B <= k)`, B ~ Binomial(n, 1/2), summed in log space (any n).
pub fn binom_half_cdf(n: usize, k: usize) -> f64 {
    if k >= n {
        return 1.0;
    }
    let ln2 = std::f64::consts::LN_2;
    let mut ln_c = 0.0; // ln C(n, 0)
    let mut sum = 0.0;
    for i in 0..=k {
        if i > 0 {
            ln_c += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        sum += (ln_c - n as f64 * ln2).exp();
    }
    sum.min(1.0)
}

/// Confidence of `[x_(d), x_(n-d+1)]` (1-based d, `1 <= d <= (n+1)/2`).
pub fn order_statistic_confidence(n: usize, d: usize) -> f64 {
    debug_assert!(d >= 1 && 2 * d <= n + 1);
    (1.0 - 2.0 * binom_half_cdf(n, d - 1)).max(0.0)
}

/// Interval for the median of `sorted` (ascending, finite) at `nominal`
/// confidence; `None` below two values (one value carries no interval).
pub fn median_interval(sorted: &[f64], nominal: f64) -> Option<Interval> {
    let n = sorted.len();
    if n < 2 {
        return None;
    }
    let x = |i: usize| sorted[i - 1]; // 1-based order statistic
                                      // largest d whose exact interval still has at least the nominal confidence
    let max_d = n.div_ceil(2);
    let mut d = 0;
    for cand in 1..=max_d {
        if order_statistic_confidence(n, cand) >= nominal {
            d = cand;
        } else {
            break;
        }
    }
    if d == 0 {
        // even [min, max] is below nominal (n <= 5 at 95%): say so
        let confidence = order_statistic_confidence(n, 1);
        return Some(Interval {
            lo: x(1),
            hi: x(n),
            confidence,
            method: Method::OrderStatistics { d: 1 },
        });
    }
    let gamma_d = order_statistic_confidence(n, d);
    if d + 1 > max_d || gamma_d == nominal {
        return Some(Interval {
            lo: x(d),
            hi: x(n - d + 1),
            confidence: gamma_d,
            method: Method::OrderStatistics { d },
        });
    }
    let gamma_d1 = order_statistic_confidence(n, d + 1);
    let i = (gamma_d - nominal) / (gamma_d - gamma_d1);
    let (nf, df) = (n as f64, d as f64);
    let lambda = (nf - df) * i / (df + (nf - 2.0 * df) * i);
    Some(Interval {
        lo: lambda * x(d + 1) + (1.0 - lambda) * x(d),
        hi: lambda * x(n - d) + (1.0 - lambda) * x(n - d + 1),
        confidence: nominal,
        method: Method::Interpolated {
            d,
            gamma_d,
            gamma_d1,
            lambda,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomial_known_answers() {
        // P(B <= 1), n = 10: 11/1024; P(B <= 5), n = 20: 21700/1048576
        assert!((binom_half_cdf(10, 1) - 11.0 / 1024.0).abs() < 1e-15);
        assert!((binom_half_cdf(20, 5) - 21700.0 / 1048576.0).abs() < 1e-15);
        assert_eq!(binom_half_cdf(3, 3), 1.0);
        // large n stays finite and symmetric
        assert!((binom_half_cdf(2001, 1000) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn five_values_give_min_max_at_93_75_percent() {
        let s = [1.0, 2.0, 3.0, 4.0, 5.0];
        let iv = median_interval(&s, 0.95).unwrap();
        assert_eq!((iv.lo, iv.hi), (1.0, 5.0));
        assert!((iv.confidence - 0.9375).abs() < 1e-12);
        assert!(matches!(iv.method, Method::OrderStatistics { d: 1 }));
    }

    #[test]
    fn ten_values_interpolate_between_the_2nd_and_3rd() {
        let s: Vec<f64> = (1..=10).map(f64::from).collect();
        let iv = median_interval(&s, 0.95).unwrap();
        // gamma_2 = 1 - 22/1024, gamma_3 = 1 - 112/1024
        let Method::Interpolated {
            d,
            gamma_d,
            gamma_d1,
            lambda,
        } = iv.method
        else {
            panic!("{iv:?}")
        };
        assert_eq!(d, 2);
        assert!((gamma_d - (1.0 - 22.0 / 1024.0)).abs() < 1e-12);
        assert!((gamma_d1 - (1.0 - 112.0 / 1024.0)).abs() < 1e-12);
        let i = (gamma_d - 0.95) / (gamma_d - gamma_d1);
        let want = 8.0 * i / (2.0 + 6.0 * i);
        assert!((lambda - want).abs() < 1e-12);
        assert!((iv.lo - (2.0 + lambda)).abs() < 1e-12);
        assert!((iv.hi - (9.0 - lambda)).abs() < 1e-12);
        assert!(iv.lo > 2.0 && iv.lo < 3.0);
    }

    #[test]
    fn one_value_has_no_interval() {
        assert_eq!(median_interval(&[3.0], 0.95), None);
        assert_eq!(median_interval(&[], 0.95), None);
    }
}
