//! Arrival schedules of the open loop: when request `i` is *meant* to start,
//! as an offset from the start of the phase. Constant rates, linear ramps and
//! steps; the count of arrivals in a phase follows from the schedule alone.

use std::time::Duration;

/// An arrival-rate profile over a fixed duration.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// `rate_per_s` for `duration`.
    Constant { rate_per_s: f64, duration: Duration },
    /// Linear ramp from `from_per_s` to `to_per_s` over `duration`.
    Ramp {
        from_per_s: f64,
        to_per_s: f64,
        duration: Duration,
    },
    /// Consecutive constant steps: (step duration, rate).
    Steps(Vec<(Duration, f64)>),
}

impl Schedule {
    /// Constant rate or, with `ramp_to`, a ramp.
    pub fn from_rates(rate_per_s: f64, ramp_to_per_s: Option<f64>, duration: Duration) -> Self {
        match ramp_to_per_s {
            Some(to) if (to - rate_per_s).abs() > f64::EPSILON => Schedule::Ramp {
                from_per_s: rate_per_s,
                to_per_s: to,
                duration,
            },
            _ => Schedule::Constant {
                rate_per_s,
                duration,
            },
        }
    }

    /// Steps fitted to a phase of `duration`: cut at its end, the last
    /// rate held to its end; no steps is `rate_per_s` constant.
    pub fn from_steps(rate_per_s: f64, steps: &[(Duration, f64)], duration: Duration) -> Self {
        if steps.is_empty() {
            return Schedule::Constant {
                rate_per_s,
                duration,
            };
        }
        let mut out = Vec::new();
        let mut left = duration;
        for (d, r) in steps {
            if left.is_zero() {
                break;
            }
            let d = (*d).min(left);
            out.push((d, *r));
            left -= d;
        }
        if !left.is_zero() {
            let last = steps.last().map(|s| s.1).unwrap_or(rate_per_s);
            out.push((left, last));
        }
        Schedule::Steps(out)
    }

    /// Total length of the schedule.
    pub fn duration(&self) -> Duration {
        match self {
            Schedule::Constant { duration, .. } | Schedule::Ramp { duration, .. } => *duration,
            Schedule::Steps(steps) => steps.iter().map(|(d, _)| *d).sum(),
        }
    }

    /// Arrivals over the whole schedule (the integral of the rate, floored).
    pub fn total(&self) -> u64 {
        match self {
            Schedule::Constant {
                rate_per_s,
                duration,
            } => (rate_per_s * duration.as_secs_f64() + 1e-9).floor() as u64,
            Schedule::Ramp {
                from_per_s,
                to_per_s,
                duration,
            } => ((from_per_s + to_per_s) / 2.0 * duration.as_secs_f64() + 1e-9).floor() as u64,
            Schedule::Steps(steps) => steps
                .iter()
                .map(|(d, r)| (r * d.as_secs_f64() + 1e-9).floor() as u64)
                .sum(),
        }
    }

    /// Intended start of arrival `i` (0-based), from the start of the phase.
    pub fn offset(&self, i: u64) -> Duration {
        let i = i as f64;
        match self {
            Schedule::Constant { rate_per_s, .. } => Duration::from_secs_f64(i / rate_per_s),
            Schedule::Ramp {
                from_per_s,
                to_per_s,
                duration,
            } => {
                // N(t) = r0 t + a t^2 / 2 with a = (r1 - r0) / D; solve N(t) = i.
                let (r0, d) = (*from_per_s, duration.as_secs_f64());
                let a = (to_per_s - r0) / d;
                let t = (-r0 + (r0 * r0 + 2.0 * a * i).max(0.0).sqrt()) / a;
                Duration::from_secs_f64(t.clamp(0.0, d))
            }
            Schedule::Steps(steps) => {
                let mut base = Duration::ZERO;
                let mut left = i;
                for (d, r) in steps {
                    let n = (r * d.as_secs_f64() + 1e-9).floor();
                    if left < n {
                        return base + Duration::from_secs_f64(left / r);
                    }
                    left -= n;
                    base += *d;
                }
                base
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_rate_counts_and_spacing() {
        let s = Schedule::Constant {
            rate_per_s: 2000.0,
            duration: Duration::from_secs(10),
        };
        assert_eq!(s.total(), 20_000);
        assert_eq!(s.offset(0), Duration::ZERO);
        assert_eq!(s.offset(2000), Duration::from_secs(1));
        assert_eq!(s.offset(1), Duration::from_micros(500));
    }

    #[test]
    fn ramp_is_monotonic_and_ends_at_the_duration() {
        let s = Schedule::from_rates(100.0, Some(300.0), Duration::from_secs(10));
        assert_eq!(s.total(), 2000);
        let mut last = Duration::ZERO;
        for i in 0..s.total() {
            let t = s.offset(i);
            assert!(t >= last);
            last = t;
        }
        assert!(last <= Duration::from_secs(10));
        // In the first second the rate is about 100-120/s: ~110 arrivals.
        let first_s = (0..s.total())
            .filter(|i| s.offset(*i) < Duration::from_secs(1))
            .count();
        assert!((108..=112).contains(&first_s), "{first_s}");
        // Down-ramps too.
        let d = Schedule::from_rates(300.0, Some(100.0), Duration::from_secs(10));
        assert_eq!(d.total(), 2000);
        assert!(d.offset(1999) <= Duration::from_secs(10));
    }

    #[test]
    fn steps_fit_the_phase() {
        let s = |d: u64| Duration::from_secs(d);
        let steps = [(s(2), 100.0), (s(3), 400.0)];
        // Longer phase: the last rate holds.
        assert_eq!(
            Schedule::from_steps(1.0, &steps, s(10)),
            Schedule::Steps(vec![(s(2), 100.0), (s(3), 400.0), (s(5), 400.0)])
        );
        // Shorter phase: cut.
        assert_eq!(
            Schedule::from_steps(1.0, &steps, s(3)),
            Schedule::Steps(vec![(s(2), 100.0), (s(1), 400.0)])
        );
        assert_eq!(Schedule::from_steps(7.0, &[], s(3)).total(), 21);
        assert_eq!(
            Schedule::from_steps(1.0, &steps, s(10)).total(),
            200 + 1200 + 2000
        );
    }

    #[test]
    fn steps_chain() {
        let s = Schedule::Steps(vec![
            (Duration::from_secs(1), 10.0),
            (Duration::from_secs(2), 100.0),
        ]);
        assert_eq!(s.total(), 210);
        assert_eq!(s.offset(10), Duration::from_secs(1));
        assert_eq!(s.offset(110), Duration::from_secs(2));
        assert_eq!(s.duration(), Duration::from_secs(3));
    }
}
