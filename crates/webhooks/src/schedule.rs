//! Retry schedule of a delivery (webhooks.md §4): after the first attempt 5 s, 5 min, 30 min, 2 h,
//! 5 h, 10 h, 10 h, each with ±10 % jitter; 8 attempts in all, then `FAILED`.

use rand::Rng;
use std::time::Duration;

/// Delays before attempts 2 to 8, in seconds.
const DELAYS_SECS: [u64; 7] = [5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600];

/// Attempts a delivery gets in total.
pub const MAX_ATTEMPTS: u32 = DELAYS_SECS.len() as u32 + 1;

/// Jitter, in per mille either side of the nominal delay.
const JITTER_PER_MILLE: u64 = 100;

/// The delay before the next attempt, given how many attempts were made so far; `None` when all
/// [`MAX_ATTEMPTS`] are used. With no attempt made yet the first one is due at once (zero).
/// Jitter spreads retries of many deliveries that failed together, so they do not return in step.
pub fn next_delay<R: Rng + ?Sized>(attempts_made: u32, rng: &mut R) -> Option<Duration> {
    if attempts_made == 0 {
        return Some(Duration::ZERO);
    }
    let index = usize::try_from(attempts_made - 1).ok()?;
    let nominal_ms = DELAYS_SECS.get(index)? * 1000;
    let factor = rng.gen_range(1000 - JITTER_PER_MILLE..=1000 + JITTER_PER_MILLE);
    Some(Duration::from_millis(nominal_ms * factor / 1000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn every_retry_falls_within_ten_percent_of_its_nominal_delay() {
        let mut rng = StdRng::seed_from_u64(7);
        let nominal = [5u64, 300, 1800, 7200, 18000, 36000, 36000];
        for (i, secs) in nominal.iter().enumerate() {
            let attempts_made = i as u32 + 1;
            let lo = Duration::from_millis(secs * 900);
            let hi = Duration::from_millis(secs * 1100);
            for _ in 0..200 {
                let d = next_delay(attempts_made, &mut rng).unwrap();
                assert!(d >= lo && d <= hi, "attempt {attempts_made}: {d:?}");
            }
        }
    }

    #[test]
    fn jitter_actually_varies_the_delay() {
        let mut rng = StdRng::seed_from_u64(1);
        let samples: Vec<Duration> = (0..50).map(|_| next_delay(3, &mut rng).unwrap()).collect();
        assert!(samples.iter().any(|d| *d < Duration::from_secs(1800)));
        assert!(samples.iter().any(|d| *d > Duration::from_secs(1800)));
    }

    #[test]
    fn there_are_eight_attempts_in_all() {
        let mut rng = StdRng::seed_from_u64(3);
        assert_eq!(MAX_ATTEMPTS, 8);
        assert_eq!(next_delay(0, &mut rng), Some(Duration::ZERO));
        assert!(next_delay(7, &mut rng).is_some());
        assert_eq!(next_delay(8, &mut rng), None);
        assert_eq!(next_delay(u32::MAX, &mut rng), None);
    }

    #[test]
    fn the_whole_schedule_spans_about_27_hours() {
        let mut rng = StdRng::seed_from_u64(9);
        let total: Duration = (1..MAX_ATTEMPTS)
            .map(|n| next_delay(n, &mut rng).unwrap())
            .sum();
        let nominal = Duration::from_secs(5 + 300 + 1800 + 7200 + 18000 + 36000 + 36000);
        assert!(total >= nominal.mul_f64(0.9) && total <= nominal.mul_f64(1.1));
        assert!(
            nominal > Duration::from_secs(27 * 3600) && nominal < Duration::from_secs(28 * 3600)
        );
    }
}
