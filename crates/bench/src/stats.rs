//! Small numeric helpers shared by the send-pipeline benchmarks: sliding-window counts,
//! nearest-rank percentiles over integers, and keyed deterministic random numbers.

/// The most events inside any half-open window `[t, t + window)`; `times` must be sorted.
pub fn max_in_window(times: &[i64], window: i64) -> usize {
    let mut best = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end] - times[start] >= window {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

/// How many events are the `(limit + 1)`-th inside some window `[t, t + window)` that starts at an
/// earlier event: 0 exactly when no window holds more than `limit`. `times` must be sorted.
pub fn over_limit(times: &[i64], window: i64, limit: usize) -> usize {
    (limit..times.len())
        .filter(|&i| times[i] - times[i - limit] < window)
        .count()
}

/// The `q`-th percentile (0–100) by nearest rank; `sorted` must be sorted. 0 when empty.
pub fn percentile(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// SplitMix64: a fast, well-mixed 64-bit hash step.
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A deterministic number in `[0, 1)` for a sequence of keys: the same keys always give the same
/// number, whatever order other draws happen in.
pub fn keyed_unit(keys: &[u64]) -> f64 {
    let h = keys
        .iter()
        .fold(0x5EED_u64, |acc, k| splitmix64(acc ^ splitmix64(*k)));
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_half_open() {
        // 0 and 1000 are a full second apart: never in the same window.
        assert_eq!(max_in_window(&[0, 500, 1000], 1000), 2);
        assert_eq!(max_in_window(&[0, 1, 2, 999], 1000), 4);
        assert_eq!(max_in_window(&[], 1000), 0);
        assert_eq!(over_limit(&[0, 1, 2, 999], 1000, 3), 1);
        assert_eq!(over_limit(&[0, 1, 2, 1000], 1000, 3), 0);
    }

    #[test]
    fn integer_percentiles_by_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn keyed_draws_are_stable_and_spread() {
        assert_eq!(keyed_unit(&[1, 2, 3]), keyed_unit(&[1, 2, 3]));
        assert_ne!(keyed_unit(&[1, 2, 3]), keyed_unit(&[1, 2, 4]));
        let mean: f64 = (0..10_000).map(|i| keyed_unit(&[7, i])).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
    }
}
