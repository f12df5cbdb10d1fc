//! Dropout masks from a counter-based hash, so the same masks come from the CPU (drawn on the
//! host, cheap there) and from a GPU (computed on the device, where uploading P members' masks
//! every step cost more than the step itself: 50 MB per step for P = 64 default MLPs).
//!
//! Each member draws one [`DropoutKey`] per hidden layer per step from its own generator, so a
//! member's masks are the same alone or in a population. A unit's number is
//! [`hash`]`(key, counter)` with `counter = (ensemble member · rows + row) · own width + unit`
//! (the member's own width, not the stack's, for the same reason). The hash uses only integer
//! operations that are exact on every backend and on the host: xor, right shifts, masks, and
//! multiply-with-carry steps `x ← (x mod 2¹⁶) · m + ⌊x / 2¹⁶⌋` whose values stay below 2³¹
//! (no overflow, no division: cubecl computes an integer remainder through f32, which is
//! inexact near 2³¹). Four rounds feed the counter's low and high bits and the key back in;
//! the low 16 bits are the unit's number, and a unit is dropped when it is below
//! [`threshold`]`(rate)`; kept units are scaled by `1 / (1 − rate)`.

use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use tabtune_features::rng::SplitMix64;

/// Bits of the counter fed as its low part.
const LOW_BITS: u32 = 15;

/// The multiply-with-carry multipliers of the four rounds (below 2¹⁵, so a step stays below
/// 2³¹) and the right shifts after rounds 2 to 4.
const MULTIPLIERS: [i32; 4] = [18_000, 30_903, 18_030, 29_908];
const SHIFTS: [i32; 3] = [15, 13, 16];

/// The numbers are in `[0, RANGE)`.
const RANGE: i32 = 1 << 16;

/// One member's key for one layer at one step (three 31-bit numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DropoutKey([i32; 3]);

impl DropoutKey {
    /// The next key from a member's dropout generator.
    pub fn draw(rng: &mut SplitMix64) -> Self {
        let bits = |z: u64| (z & 0x7FFF_FFFF) as i32;
        let (z1, z2) = (rng.next_u64(), rng.next_u64());
        Self([bits(z1), bits(z1 >> 33), bits(z2)])
    }
}

/// Split of a counter into the low and high parts the rounds feed back.
fn parts(counter: u64) -> (i32, i32) {
    (
        (counter & ((1 << LOW_BITS) - 1)) as i32,
        i32::try_from(counter >> LOW_BITS).expect("a dropout counter fits in 46 bits"),
    )
}

/// One multiply-with-carry step: `(x mod 2¹⁶) · m + ⌊x / 2¹⁶⌋`, below 2³¹ for `x` below 2³¹.
/// (Never overflows, so the wrapping operations change nothing; they keep overflow checks out
/// of the host mask's loop, which the compiler then vectorises.)
#[allow(clippy::inline_always)] // inlined into `MemberMask`'s vectorised loop
#[inline(always)]
fn mwc(x: i32, m: i32) -> i32 {
    (x & 0xFFFF).wrapping_mul(m).wrapping_add(x >> 16)
}

/// The number in `[0, 2¹⁶)` of one unit (the CPU reference of [`DeviceCounters::mask`]).
pub fn hash(key: DropoutKey, counter: u64) -> i32 {
    let (lo, hi) = parts(counter);
    hash_parts(key, lo, hi)
}

/// [`hash`] of a counter split by [`parts`].
#[allow(clippy::inline_always)] // inlined into `MemberMask`'s vectorised loop
#[inline(always)]
fn hash_parts(key: DropoutKey, lo: i32, hi: i32) -> i32 {
    let [a, b, d] = key.0;
    let x = mwc(lo ^ a, MULTIPLIERS[0]);
    let x = mwc(x ^ hi ^ b, MULTIPLIERS[1]);
    let x = x ^ (x >> SHIFTS[0]);
    let x = mwc(x ^ lo ^ d, MULTIPLIERS[2]);
    let x = x ^ (x >> SHIFTS[1]);
    let x = mwc(x ^ hi ^ a, MULTIPLIERS[3]);
    let x = x ^ (x >> SHIFTS[2]);
    x & (RANGE - 1)
}

/// Numbers below this are dropped at `rate`.
pub fn threshold(rate: f64) -> i32 {
    (rate * f64::from(RANGE)).round() as i32
}

/// The shape of a stack's dropout masks, `[P, k, rows, width]`, and each member's own width.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DropoutLayout {
    /// The TabM ensemble size (1 for an MLP).
    pub k: usize,
    /// Rows per batch.
    pub rows: usize,
    /// The stack's width.
    pub width: usize,
    /// Each member's own width (≤ `width`).
    pub own: Vec<usize>,
}

impl DropoutLayout {
    fn counter(&self, m: usize, kk: usize, r: usize, u: usize) -> u64 {
        ((kk * self.rows + r) * self.own[m] + u) as u64
    }

    fn dims(&self) -> [usize; 4] {
        [self.own.len(), self.k, self.rows, self.width]
    }

    /// One layer's multipliers on the host: per member `Some((key, rate))` (or `None`: all 1),
    /// flattened `[P, k, rows, width]`.
    pub fn host_mask(&self, keys: &[Option<(DropoutKey, f64)>]) -> Vec<f32> {
        let [p, k, rows, width] = self.dims();
        let mut values = vec![1f32; p * k * rows * width];
        if values.is_empty() {
            return values;
        }
        for (m, key) in keys.iter().enumerate() {
            let Some((key, rate)) = *key else { continue };
            let cut = threshold(rate);
            let keep = (1.0 / (1.0 - rate)) as f32;
            let member = &mut values[m * k * rows * width..(m + 1) * k * rows * width];
            // Compiled for the CPU's widest vectors (chosen at run time): a CPU step's masks
            // took a quarter of an MLP step's time as scalar code.
            pulp::Arch::new().dispatch(MemberMask {
                out: member,
                key,
                cut,
                keep,
                width,
                own: self.own[m],
            });
        }
        values
    }
}

/// One member's host mask, `[k, rows, width]`, as a SIMD operation (see [`hash_parts`]).
struct MemberMask<'a> {
    out: &'a mut [f32],
    key: DropoutKey,
    cut: i32,
    keep: f32,
    width: usize,
    own: usize,
}

impl pulp::WithSimd for MemberMask<'_> {
    type Output = ();

    #[allow(clippy::inline_always)] // inlined into pulp's target-feature function: vectorised
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let Self {
            out,
            key,
            cut,
            keep,
            width,
            own,
        } = self;
        // Row `i` of the `k · rows` rows starts at counter `i · own` (see `counter`).
        for (i, row) in out.chunks_exact_mut(width).enumerate() {
            fill_row(row, (i * own) as u64, key, cut, keep);
        }
    }
}

/// One row of a host mask: unit `u` gets [`hash`]`(key, base + u)`, dropped below `cut`.
#[allow(clippy::inline_always)] // inlined into `MemberMask`'s vectorised loop
#[inline(always)]
fn fill_row(row: &mut [f32], base: u64, key: DropoutKey, cut: i32, keep: f32) {
    let unit = |number: i32| if number < cut { 0.0 } else { keep };
    match i32::try_from(base + row.len() as u64) {
        // Every counter of the row fits in 31 bits: 32-bit lanes without overflow checks,
        // which the compiler vectorises (the usual case).
        Ok(_) => {
            let base = base as i32;
            for (u, v) in (0..row.len() as i32).zip(row.iter_mut()) {
                let counter = base.wrapping_add(u);
                *v = unit(hash_parts(
                    key,
                    counter & ((1 << LOW_BITS) - 1),
                    counter >> LOW_BITS,
                ));
            }
        }
        Err(_) => {
            for (u, v) in row.iter_mut().enumerate() {
                *v = unit(hash(key, base + u as u64));
            }
        }
    }
}

/// The counters' parts, resident on a device, for computing masks there.
#[derive(Clone, Debug)]
pub struct DeviceCounters<B: Backend> {
    layout: DropoutLayout,
    lo: Tensor<B, 4, Int>,
    hi: Tensor<B, 4, Int>,
}

impl<B: Backend> DeviceCounters<B> {
    /// Uploads the counters of `layout` (once per training run).
    pub fn new(layout: DropoutLayout, device: &B::Device) -> Self {
        let dims = layout.dims();
        let [p, k, rows, width] = dims;
        let mut lo = Vec::with_capacity(p * k * rows * width);
        let mut hi = Vec::with_capacity(lo.capacity());
        for m in 0..p {
            for kk in 0..k {
                for r in 0..rows {
                    for u in 0..width {
                        let (l, h) = parts(layout.counter(m, kk, r, u));
                        lo.push(l);
                        hi.push(h);
                    }
                }
            }
        }
        Self {
            lo: Tensor::from_data(TensorData::new(lo, dims), device),
            hi: Tensor::from_data(TensorData::new(hi, dims), device),
            layout,
        }
    }

    /// One layer's multipliers, computed on the device; equal to
    /// [`DropoutLayout::host_mask`] with the same keys.
    pub fn mask(&self, keys: &[Option<(DropoutKey, f64)>]) -> Tensor<B, 4> {
        let p = self.layout.own.len();
        let device = self.lo.device();
        let mut parts = [vec![0i32; p], vec![0i32; p], vec![0i32; p]];
        // Without a key the threshold is 0 (nothing is dropped) and the multiplier 1.
        let mut cut = vec![0i32; p];
        let mut keep = vec![1f32; p];
        for (m, key) in keys.iter().enumerate() {
            let Some((key, rate)) = *key else { continue };
            for (part, value) in parts.iter_mut().zip(key.0) {
                part[m] = value;
            }
            cut[m] = threshold(rate);
            keep[m] = (1.0 / (1.0 - rate)) as f32;
        }
        let member = |values: Vec<i32>| {
            Tensor::<B, 4, Int>::from_data(TensorData::new(values, [p, 1, 1, 1]), &device)
        };
        let dims = self.lo.dims();
        let [a, b, d] = parts.map(|values| member(values).expand(dims));
        let mwc = |x: Tensor<B, 4, Int>, m: i32| {
            x.clone().bitwise_and_scalar(0xFFFF.elem()).mul_scalar(m)
                + x.bitwise_right_shift_scalar(16.elem())
        };
        let shift = |x: Tensor<B, 4, Int>, by: i32| {
            x.clone()
                .bitwise_xor(x.bitwise_right_shift_scalar(by.elem()))
        };
        let x = mwc(self.lo.clone().bitwise_xor(a.clone()), MULTIPLIERS[0]);
        let x = mwc(
            x.bitwise_xor(self.hi.clone()).bitwise_xor(b),
            MULTIPLIERS[1],
        );
        let x = shift(x, SHIFTS[0]);
        let x = mwc(
            x.bitwise_xor(self.lo.clone()).bitwise_xor(d),
            MULTIPLIERS[2],
        );
        let x = shift(x, SHIFTS[1]);
        let x = mwc(
            x.bitwise_xor(self.hi.clone()).bitwise_xor(a),
            MULTIPLIERS[3],
        );
        let x = shift(x, SHIFTS[2]).bitwise_and_scalar((RANGE - 1).elem());
        // 1 where x ≥ cut (kept), else 0: x and cut are integers.
        let kept = (x - member(cut)).add_scalar(1).clamp(0, 1).float();
        kept * Tensor::<B, 4>::from_data(TensorData::new(keep, [p, 1, 1, 1]), &device)
    }
}

/// Where a stack's dropout masks come from: drawn on the host (the CPU, where that is
/// cheaper) or computed on the device (a GPU, where uploading them cost more than the step).
/// Both give the same masks.
#[derive(Clone, Debug)]
pub enum DropoutMasks<B: Backend> {
    /// Drawn on the host and uploaded.
    Host(DropoutLayout),
    /// Computed by device kernels from resident counters.
    Device(DeviceCounters<B>),
}

impl<B: Backend> DropoutMasks<B> {
    /// Masks of `layout`, computed on `device` when `on_device` (counters uploaded once).
    pub fn new(layout: DropoutLayout, on_device: bool, device: &B::Device) -> Self {
        if on_device {
            Self::Device(DeviceCounters::new(layout, device))
        } else {
            Self::Host(layout)
        }
    }

    /// One layer's multipliers `[P, k, rows, width]` for the members' keys (see
    /// [`DropoutLayout::host_mask`]).
    pub fn mask(&self, keys: &[Option<(DropoutKey, f64)>], device: &B::Device) -> Tensor<B, 4> {
        match self {
            Self::Host(layout) => Tensor::from_data(
                TensorData::new(layout.host_mask(keys), layout.dims()),
                device,
            ),
            Self::Device(counters) => counters.mask(keys),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::backend::flex::FlexDevice;

    fn layout() -> DropoutLayout {
        DropoutLayout {
            k: 2,
            rows: 5,
            width: 7,
            own: vec![7, 4, 7],
        }
    }

    #[test]
    fn rounds_stay_below_i32_max() {
        for m in MULTIPLIERS {
            assert!(0xFFFF_i64 * i64::from(m) + (i64::from(i32::MAX) >> 16) < i64::from(i32::MAX));
            assert!(mwc(i32::MAX, m) >= 0);
        }
        assert_eq!(threshold(1.0), RANGE);
        assert_eq!(threshold(0.0), 0);
    }

    #[test]
    fn host_rows_equal_the_hash_of_each_counter() {
        let key = DropoutKey([123_456_789, 987_654_321, 55_555]);
        let cut = threshold(0.3);
        // The vectorised 31-bit path, a row across 2³¹ and one past it (the 64-bit path).
        for base in [0u64, 40_000, (1 << 31) - 100, (1 << 40) + 7] {
            let mut row = vec![-1f32; 300];
            fill_row(&mut row, base, key, cut, 2.0);
            for (u, v) in row.iter().enumerate() {
                let want = if hash(key, base + u as u64) < cut {
                    0.0
                } else {
                    2.0
                };
                assert_eq!(*v, want, "base {base} unit {u}");
            }
            assert!(row.contains(&0.0) && row.contains(&2.0));
        }
    }

    #[test]
    fn device_masks_equal_the_host_reference() {
        for layout in [
            layout(),
            // Counters past 2¹⁵, so the high part is fed too.
            DropoutLayout {
                k: 3,
                rows: 300,
                width: 100,
                own: vec![100, 64, 90],
            },
        ] {
            device_equals_host(layout);
        }
    }

    fn device_equals_host(layout: DropoutLayout) {
        let n = layout.k * layout.rows * layout.width;
        let mut rng = SplitMix64::new(7);
        let keys = vec![
            Some((DropoutKey::draw(&mut rng), 0.3)),
            None,
            Some((DropoutKey::draw(&mut rng), 0.1)),
        ];
        let host = layout.host_mask(&keys);
        let device = DeviceCounters::<Flex>::new(layout, &FlexDevice)
            .mask(&keys)
            .into_data()
            .into_vec::<f32>()
            .expect("f32");
        assert_eq!(host, device);
        // The member without a key keeps everything at 1.
        assert!(host[n..2 * n].iter().all(|&v| v == 1.0));
        assert!(host.contains(&0.0));
    }

    #[test]
    fn a_member_gets_the_same_mask_alone_or_in_a_wider_stack() {
        let mut rng = SplitMix64::new(11);
        let key = Some((DropoutKey::draw(&mut rng), 0.25));
        let alone = DropoutLayout {
            k: 1,
            rows: 3,
            width: 4,
            own: vec![4],
        }
        .host_mask(&[key]);
        let stacked = DropoutLayout {
            k: 1,
            rows: 3,
            width: 9,
            own: vec![9, 4],
        }
        .host_mask(&[None, key]);
        for r in 0..3 {
            assert_eq!(
                alone[r * 4..r * 4 + 4],
                stacked[(3 + r) * 9..(3 + r) * 9 + 4]
            );
        }
    }

    #[test]
    fn masks_drop_at_the_rate_without_pattern() {
        // 64 steps of a 256-row, 256-unit layer at rate 0.1: the dropped share, and no
        // dependence between neighbouring units, rows or steps.
        let (rows, width) = (256usize, 256usize);
        let layout = DropoutLayout {
            k: 1,
            rows,
            width,
            own: vec![width],
        };
        let mut rng = SplitMix64::new(3);
        let mut masks = Vec::new();
        for _ in 0..64 {
            let key = Some((DropoutKey::draw(&mut rng), 0.1));
            masks.push(
                layout
                    .host_mask(&[key])
                    .iter()
                    .map(|&v| f64::from(u8::from(v == 0.0)))
                    .collect::<Vec<f64>>(),
            );
        }
        let all: Vec<f64> = masks.iter().flatten().copied().collect();
        let rate = all.iter().sum::<f64>() / all.len() as f64;
        assert!((rate - 0.1).abs() < 0.002, "dropped share {rate}");
        let corr = |pairs: &[(f64, f64)]| {
            let n = pairs.len() as f64;
            let (mx, my) = pairs
                .iter()
                .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
            let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
            for (x, y) in pairs {
                sxy += (x - mx) * (y - my);
                sxx += (x - mx) * (x - mx);
                syy += (y - my) * (y - my);
            }
            sxy / (sxx * syy).sqrt()
        };
        let mut units = Vec::new();
        let mut row_pairs = Vec::new();
        let mut steps = Vec::new();
        for (s, mask) in masks.iter().enumerate() {
            for r in 0..rows {
                for u in 0..width {
                    let v = mask[r * width + u];
                    if u + 1 < width {
                        units.push((v, mask[r * width + u + 1]));
                    }
                    if r + 1 < rows {
                        row_pairs.push((v, mask[(r + 1) * width + u]));
                    }
                    if s + 1 < masks.len() {
                        steps.push((v, masks[s + 1][r * width + u]));
                    }
                }
            }
        }
        for (what, pairs) in [("units", units), ("rows", row_pairs), ("steps", steps)] {
            let c = corr(&pairs);
            assert!(c.abs() < 0.01, "correlation of neighbouring {what}: {c}");
        }
        // Every row drops some units and no unit is always dropped or always kept.
        let per_unit: Vec<f64> = (0..width)
            .map(|u| {
                masks
                    .iter()
                    .flat_map(|m| (0..rows).map(move |r| m[r * width + u]))
                    .sum::<f64>()
                    / (rows * masks.len()) as f64
            })
            .collect();
        assert!(
            per_unit.iter().all(|&r| (r - 0.1).abs() < 0.02),
            "{per_unit:?}"
        );
    }
}
