//! The statistics of repeated runs (`lab::stats`, issue 15) against
//! simulated figure series with known distributions: coverage of the median
//! interval, the rank test's false-alarm rate and power, and the
//! multiple-comparison correction. Every trial is seeded (ChaCha8), 1,000
//! trials each; measured rates are printed (`--no-capture`) and recorded in
//! docs/STATISTICS.md.

use lab::stats::compare::{compare, compare_all, Outcome};
use lab::stats::interval::median_interval;
use lab::stats::rank::mann_whitney;
use lab::stats::{Direction, Series, Settings};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const TRIALS: usize = 1000;

/// Standard normal by Box-Muller.
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Known distributions of a figure and their true medians.
#[derive(Clone, Copy, Debug)]
enum Dist {
    /// Normal(100, 10): a latency-like figure; median 100.
    Normal,
    /// Exponential with mean 5: skewed; median 5 ln 2.
    Exponential,
    /// Log-normal exp(N(3, 0.5)): heavy right tail; median e^3.
    LogNormal,
}

impl Dist {
    fn draw(self, rng: &mut ChaCha8Rng) -> f64 {
        match self {
            Dist::Normal => 100.0 + 10.0 * normal(rng),
            Dist::Exponential => -5.0 * (1.0 - rng.gen::<f64>()).ln(),
            Dist::LogNormal => (3.0 + 0.5 * normal(rng)).exp(),
        }
    }
    fn median(self) -> f64 {
        match self {
            Dist::Normal => 100.0,
            Dist::Exponential => 5.0 * std::f64::consts::LN_2,
            Dist::LogNormal => 3f64.exp(),
        }
    }
}

fn sample(rng: &mut ChaCha8Rng, d: Dist, n: usize) -> Vec<f64> {
    (0..n).map(|_| d.draw(rng)).collect()
}

fn coverage(d: Dist, n: usize, seed: u64) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut hit = 0;
    for _ in 0..TRIALS {
        let mut v = sample(&mut rng, d, n);
        v.sort_by(f64::total_cmp);
        let iv = median_interval(&v, 0.95).expect("n >= 2");
        if iv.lo <= d.median() && d.median() <= iv.hi {
            hit += 1;
        }
    }
    hit as f64 / TRIALS as f64
}

#[test]
fn median_interval_covers_93_to_97_percent_at_n_10_and_20() {
    for d in [Dist::Normal, Dist::Exponential, Dist::LogNormal] {
        for n in [10, 20] {
            let c = coverage(d, n, 1500 + n as u64);
            println!("coverage {d:?} n = {n}: {:.1}%", c * 100.0);
            assert!(
                (0.93..=0.97).contains(&c),
                "{d:?} n = {n}: coverage {c} outside 93-97%"
            );
        }
    }
}

#[test]
fn median_interval_coverage_at_n_5_is_that_of_min_max() {
    // [min, max] covers the median with probability 1 - 2/32 = 93.75%
    for d in [Dist::Normal, Dist::Exponential, Dist::LogNormal] {
        let c = coverage(d, 5, 1505);
        println!("coverage {d:?} n = 5: {:.1}% (theory 93.75%)", c * 100.0);
        // 3 standard errors of a 1,000-trial binomial proportion at 0.9375
        assert!((c - 0.9375).abs() <= 0.023, "{d:?} n = 5: coverage {c}");
    }
}

fn series(v: Vec<f64>) -> Series {
    Series::new("f", "ms", Direction::Lower, &v)
}

fn within_noise_rate(n: usize, d: Dist, seed: u64) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let s = Settings::default();
    let mut quiet = 0;
    for _ in 0..TRIALS {
        let a = series(sample(&mut rng, d, n));
        let b = series(sample(&mut rng, d, n));
        let c = compare(&a, &b, &s).unwrap();
        assert_ne!(c.outcome, Outcome::NoNoiseEstimate);
        if c.outcome == Outcome::WithinNoise {
            quiet += 1;
        }
    }
    quiet as f64 / TRIALS as f64
}

#[test]
fn same_distribution_is_within_noise_in_95_percent() {
    for (n, d) in [(5, Dist::Normal), (5, Dist::LogNormal), (10, Dist::Normal)] {
        let r = within_noise_rate(n, d, 2000 + n as u64);
        println!("within noise, {d:?} {n} vs {n}: {:.1}%", r * 100.0);
        assert!(r >= 0.95, "{d:?} {n} vs {n}: within noise in {r}");
    }
}

#[test]
fn two_sd_shift_at_5_vs_5_is_significant_in_most_trials() {
    let mut rng = ChaCha8Rng::seed_from_u64(2500);
    let s = Settings::default();
    let mut sig = 0;
    for _ in 0..TRIALS {
        let a = series((0..5).map(|_| 100.0 + 10.0 * normal(&mut rng)).collect());
        let b = series((0..5).map(|_| 120.0 + 10.0 * normal(&mut rng)).collect());
        if compare(&a, &b, &s).unwrap().outcome == Outcome::Significant {
            sig += 1;
        }
    }
    let power = sig as f64 / TRIALS as f64;
    println!("power, 2 SD shift, 5 vs 5: {:.1}%", power * 100.0);
    assert!(power > 0.5, "power {power}");
}

/// 50 figures of one distribution compared at `n` vs `n`: the share of
/// trials that flag none, with the correction and with raw p <= 0.05.
fn fifty_figures(n: usize, seed: u64) -> (f64, f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let s = Settings::default();
    let (mut clean, mut clean_raw) = (0, 0);
    for _ in 0..TRIALS {
        let pairs: Vec<(Series, Series)> = (0..50)
            .map(|_| {
                (
                    series(sample(&mut rng, Dist::Normal, n)),
                    series(sample(&mut rng, Dist::Normal, n)),
                )
            })
            .collect();
        let v = compare_all(&pairs, &s).unwrap();
        if v.iter().all(|c| c.outcome != Outcome::Significant) {
            clean += 1;
        }
        if v.iter().all(|c| c.test.unwrap().p > s.alpha) {
            clean_raw += 1;
        }
    }
    (
        clean as f64 / TRIALS as f64,
        clean_raw as f64 / TRIALS as f64,
    )
}

#[test]
fn fifty_same_vs_same_figures_flag_none_in_95_percent() {
    // 10 vs 10: the smallest p (1e-5) is far below 0.05/50, so the
    // correction, not the sample size, is what keeps the flags away
    for n in [5, 10] {
        let (clean, clean_raw) = fifty_figures(n, 3000 + n as u64);
        println!(
            "50 same-vs-same figures, {n} vs {n}: none flagged in {:.1}% (Benjamini-Hochberg), {:.1}% uncorrected",
            clean * 100.0,
            clean_raw * 100.0
        );
        assert!(clean >= 0.95, "{n} vs {n}: clean in {clean}");
        // the correction is doing the work: uncorrected, most trials flag one
        assert!(
            clean_raw < 0.5,
            "{n} vs {n}: uncorrected clean in {clean_raw}"
        );
    }
}

#[test]
fn corrected_comparison_still_finds_real_changes_among_fifty() {
    // 5 of 50 figures shift by 3 SD at 10 vs 10; the others do not
    let mut rng = ChaCha8Rng::seed_from_u64(3500);
    let s = Settings::default();
    let (mut found, mut false_flags) = (0usize, 0usize);
    for _ in 0..TRIALS {
        let pairs: Vec<(Series, Series)> = (0..50)
            .map(|i| {
                let shift = if i < 5 { 30.0 } else { 0.0 };
                let a: Vec<f64> = (0..10).map(|_| 100.0 + 10.0 * normal(&mut rng)).collect();
                let b: Vec<f64> = (0..10)
                    .map(|_| 100.0 + shift + 10.0 * normal(&mut rng))
                    .collect();
                (series(a), series(b))
            })
            .collect();
        let v = compare_all(&pairs, &s).unwrap();
        found += v[..5]
            .iter()
            .filter(|c| c.outcome == Outcome::Significant)
            .count();
        false_flags += v[5..]
            .iter()
            .filter(|c| c.outcome == Outcome::Significant)
            .count();
    }
    let power = found as f64 / (5 * TRIALS) as f64;
    let fdr_proxy = false_flags as f64 / (found + false_flags).max(1) as f64;
    println!(
        "5 of 50 shifted 3 SD, 10 vs 10: {:.1}% found, {:.1}% of flags false",
        power * 100.0,
        fdr_proxy * 100.0
    );
    assert!(power > 0.8, "power {power}");
    assert!(fdr_proxy <= 0.05, "false share {fdr_proxy}");
}

#[test]
fn exact_test_level_matches_its_distribution() {
    // under the null, P(p <= 0.05) at 5 vs 5 is exactly 8/252 (U <= 2 or >= 23)
    let mut rng = ChaCha8Rng::seed_from_u64(4000);
    let mut rej = 0;
    for _ in 0..20 * TRIALS {
        let a = sample(&mut rng, Dist::Normal, 5);
        let b = sample(&mut rng, Dist::Normal, 5);
        if mann_whitney(&a, &b).p <= 0.05 {
            rej += 1;
        }
    }
    let r = rej as f64 / (20 * TRIALS) as f64;
    println!(
        "null rejection rate 5 vs 5: {:.2}% (theory {:.2}%)",
        r * 100.0,
        800.0 / 252.0
    );
    assert!((r - 8.0 / 252.0).abs() < 0.004, "{r}");
}
