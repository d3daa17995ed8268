//! Properties of `lab::stats` on arbitrary finite input (proptest): nothing
//! panics, intervals contain the median and lie within [min, max], p-values
//! are probabilities, the comparison is antisymmetric, and writers accept
//! any figure name and label.

use lab::scenario::CompareOp as Op;
use lab::stats::compare::{compare, Outcome};
use lab::stats::rank::{cliffs_delta, mann_whitney};
use lab::stats::summary::summarize;
use lab::stats::verdict::{judge, Stat};
use lab::stats::{junit, openmetrics, Direction, Series, Settings};
use proptest::prelude::*;

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        -1e6..1e6f64,
        (0..5i32).prop_map(f64::from), // ties
        prop::num::f64::NORMAL,        // anything, up to +-f64::MAX
    ]
}

fn values(max: usize) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(finite(), 1..max)
}

proptest! {
    #[test]
    fn summary_is_ordered(v in values(40)) {
        let s = summarize(&Series::new("f", "u", Direction::None, &v), &Settings::default()).unwrap();
        prop_assert!(s.min <= s.median && s.median <= s.max);
        if let Some(iv) = s.ci {
            prop_assert!(s.min <= iv.lo && iv.lo <= iv.hi && iv.hi <= s.max, "{:?}", s);
            prop_assert!(iv.lo <= s.median && s.median <= iv.hi, "{:?}", s);
            prop_assert!(iv.confidence > 0.0 && iv.confidence < 1.0);
        }
        prop_assert!(s.mean.is_finite());
        if let Some(cv) = s.variation.cv() {
            prop_assert!(cv.is_finite() && cv >= 0.0, "{:?}", s);
        }
    }

    #[test]
    fn p_values_are_probabilities_and_symmetric(a in values(20), b in values(20)) {
        let t = mann_whitney(&a, &b);
        let r = mann_whitney(&b, &a);
        prop_assert!(t.p > 0.0 && t.p <= 1.0 + 1e-12, "{:?}", t);
        prop_assert!((t.p - r.p).abs() < 1e-9, "{:?} {:?}", t, r);
        prop_assert!((cliffs_delta(&a, &b) + cliffs_delta(&b, &a)).abs() < 1e-12);
    }

    #[test]
    fn comparisons_never_panic(a in values(12), b in values(12)) {
        let sa = Series::new("f", "u", Direction::Lower, &a);
        let sb = Series::new("f", "u", Direction::Lower, &b);
        let c = compare(&sa, &sb, &Settings::default()).unwrap();
        if a.len() < 2 || b.len() < 2 {
            prop_assert_eq!(c.outcome, Outcome::NoNoiseEstimate);
        }
        prop_assert!(!c.sentence.is_empty());
    }

    #[test]
    fn verdicts_never_panic(v in values(12), bound in finite()) {
        for stat in [Stat::Median, Stat::All, Stat::Ci] {
            for op in [Op::Ge, Op::Gt, Op::Le, Op::Lt, Op::Eq, Op::Ne] {
                judge("f", &v, stat, op, bound, &Settings::default()).unwrap();
            }
        }
    }

    #[test]
    fn writers_take_any_name(name in "\\PC{0,20}", phase in "\\PC{0,10}", v in values(5)) {
        let mut s = Series::new(&name, "u", Direction::None, &v);
        s.phase = Some(phase);
        let t = openmetrics::write(&name, std::slice::from_ref(&s), &Settings::default()).unwrap();
        prop_assert!(t.ends_with("# EOF\n"));
        prop_assert_eq!(t.lines().filter(|l| !l.starts_with('#')).count() >= v.len(), true);
        let x = junit::write(&name, &[junit::Case { name: name.clone(), outcome: junit::CaseOutcome::Fail, message: name.clone() }]);
        prop_assert!(x.contains("failures=\"1\""));
    }
}
