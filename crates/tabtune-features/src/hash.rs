//! A fast, non-cryptographic hasher (the multiply-rotate scheme of rustc's FxHasher) for the
//! duplicate and id checks on the load path, where SipHash's DoS resistance buys nothing and
//! costs a third of the time.

use std::hash::{BuildHasherDefault, Hasher};

/// FxHasher: `hash = (hash.rotl(5) ^ word) * K` per 64-bit word.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FxHasher {
    hash: u64,
}

const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    /// Mixes one word in.
    #[inline]
    pub(crate) fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(
                chunk.try_into().expect("chunks_exact gives 8 bytes"),
            ));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
        self.add(bytes.len() as u64);
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// `HashMap` / `HashSet` state using [`FxHasher`].
pub(crate) type FxBuildHasher = BuildHasherDefault<FxHasher>;

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasher, Hasher};

    use super::*;

    #[test]
    fn lengths_and_contents_both_matter() {
        let h = |b: &[u8]| FxBuildHasher::default().hash_one(b);
        assert_ne!(h(b"a"), h(b"a\0"));
        assert_ne!(h(b"ab"), h(b"ba"));
        assert_eq!(h(b"12345678abc"), h(b"12345678abc"));
        let mut a = FxHasher::default();
        a.write_u64(1);
        let mut b = FxHasher::default();
        b.write_u64(2);
        assert_ne!(a.finish(), b.finish());
    }
}
