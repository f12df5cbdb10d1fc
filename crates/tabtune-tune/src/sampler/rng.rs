//! The samplers' seeded generator: SplitMix64, whose sequence is fixed forever, so that a seed
//! and a trial number give the same proposal on every machine and every tabtune version.

/// SplitMix64 (Steele, Lea, Flood 2014).
#[derive(Clone, Debug)]
pub(crate) struct Rng {
    state: u64,
}

/// Mixes a 64-bit value into a well-spread one (SplitMix64's finaliser).
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// The generator of one sampler seed, trial number and stream (a parameter index or a
    /// purpose), independent of every other triple.
    pub(crate) fn for_trial(seed: u64, number: u64, stream: u64) -> Self {
        let s = mix(seed ^ 0x5EED_0000_0000_0000)
            ^ mix(number.wrapping_add(0x9E37_79B9_7F4A_7C15))
            ^ mix(stream.wrapping_mul(0xD6E8_FEB8_6659_FD93).wrapping_add(1));
        Self { state: mix(s) }
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.state)
    }

    /// A uniform float in `[0, 1)` with 53 random bits.
    pub(crate) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform integer in `0..n` (Lemire's multiply-shift with rejection, unbiased).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        debug_assert!(n > 0, "below(0) has no values");
        let n = n as u64;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            let low = m as u64;
            if low >= n.wrapping_neg() % n {
                return (m >> 64) as usize;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn streams_differ_and_repeat() {
        let a: Vec<u64> = (0..4).map(|_| Rng::for_trial(1, 2, 3).next_u64()).collect();
        assert!(
            a.windows(2).all(|w| w[0] == w[1]),
            "same triple, same stream"
        );
        let b = Rng::for_trial(1, 2, 4).next_u64();
        let c = Rng::for_trial(1, 3, 3).next_u64();
        let d = Rng::for_trial(2, 2, 3).next_u64();
        assert!(a[0] != b && a[0] != c && a[0] != d && b != c);
        let mut r = Rng::for_trial(0, 0, 0);
        let mean = (0..10_000).map(|_| r.uniform()).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
    }
}
