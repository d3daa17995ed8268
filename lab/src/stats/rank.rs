//! The two-sample rank statistics: the exact two-sided Mann-Whitney
//! (Wilcoxon rank-sum) test with ties handled by midranks and the exact
//! conditional (permutation) distribution of the rank sum, the
//! Hodges-Lehmann shift with its distribution-free (Moses) interval, and
//! Cliff's delta. Exact up to [`EXACT_MAX_N`] values in all; above, the
//! normal approximation with tie correction (said in [`RankTest::exact`]).

use serde::{Deserialize, Serialize};

use super::{median_sorted, sorted};

/// Largest `n_a + n_b` with the exact distribution (the dynamic programme is
/// O(N^3 n_a); beyond this repetitions are rare and the normal approximation good).
pub const EXACT_MAX_N: usize = 60;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RankTest {
    /// Mann-Whitney U of A: pairs (a, b) with a > b, ties counting 1/2.
    pub u_a: f64,
    /// Two-sided p: P(|W - E W| >= |w - E W|) under exchangeability.
    pub p: f64,
    /// Exact distribution (else normal approximation).
    pub exact: bool,
    /// Some values tie across or within the samples (midranks used).
    pub ties: bool,
}

/// Midranks of `all` (1-based), doubled so that they are integers.
fn doubled_midranks(all: &[f64]) -> (Vec<i64>, bool) {
    let mut idx: Vec<usize> = (0..all.len()).collect();
    idx.sort_by(|&i, &j| all[i].total_cmp(&all[j]));
    let mut r = vec![0i64; all.len()];
    let mut ties = false;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && all[idx[j + 1]] == all[idx[i]] {
            j += 1;
        }
        if j > i {
            ties = true;
        }
        // ranks i+1 ..= j+1, midrank (i+1 + j+1)/2, doubled
        let twice = (i + j + 2) as i64;
        for &k in &idx[i..=j] {
            r[k] = twice;
        }
        i = j + 1;
    }
    (r, ties)
}

/// Distribution of the sum of `k` items chosen from `scores` (all subsets
/// equally likely): `dist[s]` is the probability of the sum s.
fn subset_sum_distribution(scores: &[i64], k: usize) -> Vec<f64> {
    let total: i64 = scores.iter().sum();
    let max = total as usize;
    // ways[j][s]: number of j-subsets of the items seen so far summing to s
    let mut ways = vec![vec![0f64; max + 1]; k + 1];
    ways[0][0] = 1.0;
    for (seen, &sc) in scores.iter().enumerate() {
        let sc = sc as usize;
        for j in (1..=k.min(seen + 1)).rev() {
            let (lo, hi) = ways.split_at_mut(j);
            let prev = &lo[j - 1];
            let cur = &mut hi[0];
            for s in (sc..=max).rev() {
                if prev[s - sc] != 0.0 {
                    cur[s] += prev[s - sc];
                }
            }
        }
    }
    let all: f64 = ways[k].iter().sum();
    ways.swap_remove(k).into_iter().map(|w| w / all).collect()
}

/// Null distributions by (n_a, n_b), shared within one thread.
type DistCache =
    std::cell::RefCell<std::collections::HashMap<(usize, usize), std::rc::Rc<Vec<f64>>>>;

thread_local! {
    /// Null distributions of the doubled rank sum without ties, by (n_a, n_b):
    /// they depend on the sizes only, and a diff tests many figures at one size.
    static NO_TIES: DistCache = Default::default();
}

/// Distribution of the doubled rank sum of `na` of ranks 1..=na+nb.
fn no_ties_distribution(na: usize, nb: usize) -> std::rc::Rc<Vec<f64>> {
    NO_TIES.with(|c| {
        c.borrow_mut()
            .entry((na, nb))
            .or_insert_with(|| {
                let ranks: Vec<i64> = (1..=(na + nb) as i64).map(|r| 2 * r).collect();
                std::rc::Rc::new(subset_sum_distribution(&ranks, na))
            })
            .clone()
    })
}

/// Exact (or, above [`EXACT_MAX_N`], approximate) two-sided rank test of
/// A against B. Both need at least one value; finite values only.
pub fn mann_whitney(a: &[f64], b: &[f64]) -> RankTest {
    let (na, nb) = (a.len(), b.len());
    let n = na + nb;
    let all: Vec<f64> = a.iter().chain(b).copied().collect();
    let (r2, ties) = doubled_midranks(&all);
    let w2: i64 = r2[..na].iter().sum();
    // U_A = W_A - na(na+1)/2, in doubled units
    let u_a = (w2 - (na * (na + 1)) as i64) as f64 / 2.0;
    let mean2 = (na * (n + 1)) as i64; // E[2W]
    let obs = (w2 - mean2).abs();
    if n <= EXACT_MAX_N {
        let dist = if ties {
            std::rc::Rc::new(subset_sum_distribution(&r2, na))
        } else {
            no_ties_distribution(na, nb)
        };
        let p: f64 = dist
            .iter()
            .enumerate()
            .filter(|(s, pr)| **pr > 0.0 && (*s as i64 - mean2).abs() >= obs)
            .map(|(_, pr)| pr)
            .sum();
        return RankTest {
            u_a,
            p: p.min(1.0),
            exact: true,
            ties,
        };
    }
    // normal approximation with tie correction and continuity correction
    let (naf, nbf, nf) = (na as f64, nb as f64, n as f64);
    let mean_r: f64 = (nf + 1.0) / 2.0;
    let var_r = r2
        .iter()
        .map(|&x| (x as f64 / 2.0 - mean_r).powi(2))
        .sum::<f64>()
        / (nf - 1.0);
    let var_w = naf * nbf / nf * var_r;
    let z = if var_w > 0.0 {
        ((obs as f64 / 2.0) - 0.5).max(0.0) / var_w.sqrt()
    } else {
        0.0
    };
    RankTest {
        u_a,
        p: (2.0 * normal_sf(z)).min(1.0),
        exact: false,
        ties,
    }
}

/// Upper tail of the standard normal (Abramowitz-Stegun 7.1.26 on erfc).
pub(crate) fn normal_sf(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erfc = poly * (-x * x).exp();
    if x >= 0.0 {
        erfc / 2.0
    } else {
        1.0 - erfc / 2.0
    }
}

/// The smallest two-sided p the exact test can give at `na` vs `nb`: the
/// two extreme arrangements of 2 / C(na + nb, na).
pub fn smallest_p(na: usize, nb: usize) -> f64 {
    let (k, n) = (na.min(nb), na + nb);
    let mut c = 1.0f64;
    for i in 0..k {
        c = c * (n - i) as f64 / (i + 1) as f64;
    }
    (2.0 / c).min(1.0)
}

/// Smallest equal n per side whose smallest p is at most `alpha`.
pub fn n_needed(alpha: f64) -> usize {
    (2..200).find(|&n| smallest_p(n, n) <= alpha).unwrap_or(200)
}

/// The location shift of B over A: the Hodges-Lehmann estimate (median of
/// all b - a) and the Moses interval, order statistics of those differences
/// picked from the exact no-ties distribution of U.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Shift {
    pub estimate: f64,
    pub lo: f64,
    pub hi: f64,
    /// Confidence of `[lo, hi]`: at least the nominal one when the sizes
    /// allow it, else the best they allow (90% at 3 vs 3).
    pub confidence: f64,
}

pub fn shift(a: &[f64], b: &[f64], nominal: f64) -> Shift {
    let (na, nb) = (a.len(), b.len());
    let mut d: Vec<f64> = b
        .iter()
        .flat_map(|y| a.iter().map(move |x| y - x))
        .collect();
    d.sort_by(f64::total_cmp);
    let m = d.len();
    if m == 0 {
        return Shift {
            estimate: f64::NAN,
            lo: f64::NAN,
            hi: f64::NAN,
            confidence: 0.0,
        };
    }
    let estimate = median_sorted(&d);
    // P(U <= k - 1) from the distribution of the rank sum of ranks 1..=N
    let n = na + nb;
    let exact = (n <= EXACT_MAX_N).then(|| {
        let dist = no_ties_distribution(na, nb);
        let base = na * (na + 1); // 2 * min W
        (0..=m)
            .map(|u| dist.get(base + 2 * u).copied().unwrap_or(0.0))
            .collect::<Vec<f64>>()
    });
    let tail = |k: usize| -> f64 {
        match &exact {
            Some(pu) => pu[..k].iter().sum(),
            None if k == 0 => 0.0,
            None => {
                let mu = (na * nb) as f64 / 2.0;
                let sd = ((na * nb * (n + 1)) as f64 / 12.0).sqrt();
                1.0 - normal_sf(((k - 1) as f64 + 0.5 - mu) / sd)
            }
        }
    };
    let alpha2 = (1.0 - nominal) / 2.0;
    // largest k with P(U <= k - 1) <= alpha/2; at least 1 ([min d, max d])
    let mut k = 1;
    while k < m.div_ceil(2) && tail(k + 1) <= alpha2 {
        k += 1;
    }
    Shift {
        estimate,
        lo: d[k - 1],
        hi: d[m - k],
        confidence: (1.0 - 2.0 * tail(k)).max(0.0),
    }
}

/// Cliff's delta of B against A: P(b > a) - P(b < a), in [-1, 1].
pub fn cliffs_delta(a: &[f64], b: &[f64]) -> f64 {
    let mut more = 0i64;
    let mut less = 0i64;
    for y in b {
        for x in a {
            if y > x {
                more += 1;
            } else if y < x {
                less += 1;
            }
        }
    }
    (more - less) as f64 / (a.len() * b.len()) as f64
}

/// Median of values (sorted copy).
pub fn median(v: &[f64]) -> f64 {
    median_sorted(&sorted(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_documentation_example() {
        // R: wilcox.test(x, y, alternative = "g") gives W = 35, p = 0.1272
        // (exact); two-sided is twice that (symmetric null, no ties).
        let x = [0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46];
        let y = [1.15, 0.88, 0.90, 0.74, 1.21];
        let t = mann_whitney(&x, &y);
        assert_eq!(t.u_a, 35.0);
        assert!(t.exact && !t.ties);
        assert!((t.p - 0.2544).abs() < 5e-4, "{t:?}");
    }

    #[test]
    fn three_vs_three_cannot_go_below_one_tenth() {
        let t = mann_whitney(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]);
        assert!((t.p - 0.1).abs() < 1e-12, "{t:?}");
        assert!((smallest_p(3, 3) - 0.1).abs() < 1e-12);
        assert_eq!(n_needed(0.05), 4);
    }

    #[test]
    fn five_vs_five_separated_is_p_0_008_even_when_constant() {
        // 0 vs 1 fsync per block in every repetition: all tied within each side
        let t = mann_whitney(&[0.0; 5], &[1.0; 5]);
        assert!((t.p - 2.0 / 252.0).abs() < 1e-12, "{t:?}");
        assert!(t.ties);
        // identical constants: nothing to see
        let t = mann_whitney(&[2.0; 5], &[2.0; 5]);
        assert!((t.p - 1.0).abs() < 1e-12, "{t:?}");
    }

    #[test]
    fn ties_across_samples_by_enumeration() {
        // brute force over all C(7,3) = 35 splits with midranks
        let a = [1.0, 2.0, 2.0];
        let b = [2.0, 3.0, 3.0, 4.0];
        let all: Vec<f64> = a.iter().chain(&b).copied().collect();
        let (r2, ties) = doubled_midranks(&all);
        assert!(ties);
        let mean2 = 3 * 8;
        let obs = (r2[..3].iter().sum::<i64>() - mean2).abs();
        let mut hits = 0;
        let mut total = 0;
        for i in 0..7 {
            for j in i + 1..7 {
                for k in j + 1..7 {
                    total += 1;
                    if (r2[i] + r2[j] + r2[k] - mean2).abs() >= obs {
                        hits += 1;
                    }
                }
            }
        }
        let t = mann_whitney(&a, &b);
        assert!((t.p - hits as f64 / total as f64).abs() < 1e-12, "{t:?}");
    }

    #[test]
    fn shift_and_delta_known_answers() {
        let s = shift(&[1.0, 2.0, 3.0], &[11.0, 12.0, 13.0], 0.95);
        assert_eq!(s.estimate, 10.0);
        // 3 vs 3 cannot reach 95%: [min d, max d] at 1 - 2/20 = 90%
        assert_eq!((s.lo, s.hi), (8.0, 12.0));
        assert!((s.confidence - 0.9).abs() < 1e-12);
        assert_eq!(cliffs_delta(&[1.0, 2.0, 3.0], &[11.0, 12.0, 13.0]), 1.0);
        assert_eq!(cliffs_delta(&[1.0, 2.0], &[2.0, 1.0]), 0.0);
        // 5 vs 5: P(U <= 2) = 4/252 <= 0.025 < P(U <= 3) = 7/252, so k = 3
        let a = [0.0, 1.0, 2.0, 3.0, 4.0];
        let b = [10.0, 11.0, 12.0, 13.0, 14.0];
        let s = shift(&a, &b, 0.95);
        assert!((s.confidence - (1.0 - 8.0 / 252.0)).abs() < 1e-12, "{s:?}");
        assert_eq!(s.estimate, 10.0);
        assert_eq!((s.lo, s.hi), (7.0, 13.0));
    }

    #[test]
    fn empty_sides_do_not_panic() {
        assert!(shift(&[], &[1.0], 0.95).estimate.is_nan());
        assert!(median(&[]).is_nan());
        assert_eq!(mann_whitney(&[], &[1.0, 2.0]).p, 1.0);
    }

    #[test]
    fn large_samples_use_the_approximation_sensibly() {
        let a: Vec<f64> = (0..40).map(f64::from).collect();
        let b: Vec<f64> = (0..40).map(|i| f64::from(i) + 0.5).collect();
        let t = mann_whitney(&a, &b);
        assert!(!t.exact);
        assert!(t.p > 0.5 && t.p <= 1.0, "{t:?}");
        let b: Vec<f64> = (100..140).map(f64::from).collect();
        assert!(mann_whitney(&a, &b).p < 1e-6);
    }
}
