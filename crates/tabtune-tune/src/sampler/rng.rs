//! The samplers' seeded streams: tabtune-features' SplitMix64 (the one seeded generator of the
//! workspace, whose sequence is fixed forever) started from a state mixed from the sampler's
//! seed, the trial number and a stream id, so that a seed and a trial number give the same
//! proposal on every machine and every tabtune version.

pub(crate) use tabtune_features::rng::SplitMix64 as Rng;
use tabtune_features::rng::mix;

/// The generator of one sampler seed, trial number and stream (a parameter index or a
/// purpose), independent of every other triple.
pub(crate) fn for_trial(seed: u64, number: u64, stream: u64) -> Rng {
    let s = mix(seed ^ 0x5EED_0000_0000_0000)
        ^ mix(number.wrapping_add(0x9E37_79B9_7F4A_7C15))
        ^ mix(stream.wrapping_mul(0xD6E8_FEB8_6659_FD93).wrapping_add(1));
    Rng::new(mix(s))
}

#[cfg(test)]
mod tests {
    use super::for_trial;

    #[test]
    fn streams_differ_and_repeat() {
        let a: Vec<u64> = (0..4).map(|_| for_trial(1, 2, 3).next_u64()).collect();
        assert!(
            a.windows(2).all(|w| w[0] == w[1]),
            "same triple, same stream"
        );
        let b = for_trial(1, 2, 4).next_u64();
        let c = for_trial(1, 3, 3).next_u64();
        let d = for_trial(2, 2, 3).next_u64();
        assert!(a[0] != b && a[0] != c && a[0] != d && b != c);
        let mut r = for_trial(0, 0, 0);
        let mean = (0..10_000).map(|_| r.uniform()).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
    }
}
