//! The kernels on a device (CubeCL: the `wgpu` and `cuda` runtimes).
//!
//! [`Gpu`] owns a compute client, the lookup tables and the memory accounting; [`Buffer`] is a
//! typed device array that knows its length; [`DeviceData`] holds a [`Problem`] and its
//! [`BinMatrix`] on the device. Every kernel has a method here taking buffers in the layout of
//! [`crate::layout`], checking their lengths.

mod forest;
mod kernels;

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cubecl::prelude::*;
use cubecl::server::Handle;
pub use cubecl::{CubeElement, Runtime};
pub use forest::ClassData;

use crate::error::{KernelError, Result};
use crate::layout::{
    BinMatrix, LEVEL_RESULT_WORDS, LEVEL_TASK_WORDS, Problem, SEARCH_RESULT_WORDS,
    SEARCH_TASK_WORDS, SPLIT_RECORD_WORDS, SUM_QUERY_WORDS, TREE_ROUND_WORDS,
};
use crate::reference::math::Tables;

/// Units per cube (work group).
const CUBE: u32 = 256;

/// The largest number of bins of one feature.
pub const MAX_BINS: usize = 256;

/// The runtime of the `wgpu` feature.
#[cfg(feature = "wgpu")]
pub type Wgpu = cubecl::wgpu::WgpuRuntime;

/// The runtime of the `cuda` feature.
#[cfg(feature = "cuda")]
pub type Cuda = cubecl::cuda::CudaRuntime;

/// A typed array on the device. Its handle is never shared with a buffer of another length, so
/// kernels always see the length it was made with.
pub struct Buffer<T> {
    handle: Handle,
    len: usize,
    bytes: u64,
    live: Arc<AtomicU64>,
    _t: PhantomData<T>,
}

impl<T> Buffer<T> {
    /// Elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<T> Drop for Buffer<T> {
    fn drop(&mut self) {
        self.live.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl<T> std::fmt::Debug for Buffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Buffer({} × {})", self.len, std::any::type_name::<T>())
    }
}

/// A device with the kernels' lookup tables on it.
pub struct Gpu<R: Runtime> {
    client: ComputeClient<R>,
    name: String,
    limit: Option<u64>,
    max_buffer: u64,
    live: Arc<AtomicU64>,
    exp_table: Buffer<f32>,
    ln_pow2: Buffer<f32>,
    ln_mantissa: Buffer<f32>,
}

#[cfg(feature = "wgpu")]
impl Gpu<Wgpu> {
    /// The default wgpu adapter (any kind: lavapipe included). An error when none exists.
    pub fn wgpu() -> Result<Self> {
        let device = cubecl::wgpu::WgpuDevice::DefaultDevice;
        // wgpu panics when no adapter exists; turn that into an error.
        let client = std::panic::catch_unwind(|| Wgpu::client(&device)).map_err(|_| {
            KernelError::NoDevice {
                kind: "wgpu".into(),
                reason: "no wgpu adapter (no Vulkan/Metal/DX12/GL driver found)".into(),
            }
        })?;
        let name = format!("wgpu ({})", Wgpu::name(&client));
        Self::new(client, name)
    }
}

#[cfg(feature = "cuda")]
impl Gpu<Cuda> {
    /// CUDA device `index`. An error without a driver or device.
    #[allow(unsafe_code)]
    pub fn cuda(index: usize) -> Result<Self> {
        let kind = format!("cuda:{index}");
        // SAFETY: `is_culib_present` only tries to dlopen libcuda; it touches no CUDA state.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(KernelError::NoDevice {
                kind,
                reason: "libcuda (the NVIDIA driver) not found".into(),
            });
        }
        let count =
            cudarc::driver::CudaContext::device_count().map_err(|e| KernelError::NoDevice {
                kind: kind.clone(),
                reason: format!("CUDA driver present but unusable: {e}"),
            })?;
        if index >= count.max(0) as usize {
            return Err(KernelError::NoDevice {
                kind,
                reason: format!("{count} CUDA device(s) present"),
            });
        }
        let device = cubecl::cuda::CudaDevice { index };
        let client = std::panic::catch_unwind(|| Cuda::client(&device)).map_err(|_| {
            KernelError::NoDevice {
                kind: kind.clone(),
                reason: "the CUDA runtime failed to start".into(),
            }
        })?;
        Self::new(client, kind)
    }
}

impl<R: Runtime> Gpu<R> {
    /// A device from a client: uploads the lookup tables.
    pub fn new(client: ComputeClient<R>, name: String) -> Result<Self> {
        let max_buffer = client.properties().memory.max_page_size;
        let live = Arc::new(AtomicU64::new(0));
        let tables = Tables::new();
        let upload =
            |what: &str, data: &[f32]| upload_raw(&client, &live, None, max_buffer, what, data);
        let exp_table = upload("the exp table", &tables.exp_neg)?;
        let ln_pow2 = upload("the ln table", &tables.ln_pow2)?;
        let ln_mantissa = upload("the ln table", &tables.ln_mantissa)?;
        Ok(Self {
            client,
            name,
            limit: None,
            max_buffer,
            live,
            exp_table,
            ln_pow2,
            ln_mantissa,
        })
    }

    /// Caps the device memory this `Gpu` allocates (all live buffers together); allocations
    /// beyond it fail with [`KernelError::OutOfMemory`].
    #[must_use]
    pub fn with_memory_limit(mut self, bytes: u64) -> Self {
        self.limit = Some(bytes);
        self
    }

    /// The device's name for logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes held by live buffers.
    pub fn allocated(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }

    /// The largest single buffer the device takes.
    pub fn max_buffer(&self) -> u64 {
        self.max_buffer
    }

    /// Copies `data` to a new device buffer (`what` names it in errors).
    pub fn upload<T: CubeElement>(&self, what: &str, data: &[T]) -> Result<Buffer<T>> {
        upload_raw(
            &self.client,
            &self.live,
            self.limit,
            self.max_buffer,
            what,
            data,
        )
    }

    /// A new buffer of `len` zeros.
    pub fn zeros<T: CubeElement + Default>(&self, what: &str, len: usize) -> Result<Buffer<T>> {
        self.upload(what, &vec![T::default(); len])
    }

    /// Replaces a buffer's contents with `data` of the same length.
    pub fn write<T: CubeElement>(&self, buffer: &mut Buffer<T>, data: &[T]) -> Result<()> {
        if data.len() != buffer.len {
            return Err(KernelError::Invalid(format!(
                "writing {} values into a buffer of {}",
                data.len(),
                buffer.len
            )));
        }
        *buffer = self.upload("a rewritten buffer", data)?;
        Ok(())
    }

    /// Copies a buffer back to the host.
    pub fn read<T: CubeElement>(&self, buffer: &Buffer<T>) -> Result<Vec<T>> {
        if buffer.len == 0 {
            return Ok(Vec::new());
        }
        let bytes =
            self.client
                .read_one(buffer.handle.clone())
                .map_err(|e| KernelError::Device {
                    what: "reading a buffer".into(),
                    message: e.to_string(),
                })?;
        Ok(T::from_bytes(&bytes)[..buffer.len].to_vec())
    }

    /// Waits for the queued kernels; reports a device error.
    pub fn sync(&self) -> Result<()> {
        cubecl::future::block_on(self.client.sync()).map_err(|e| KernelError::Device {
            what: "running kernels".into(),
            message: e.to_string(),
        })
    }

    /// The lookup tables' buffers `(exp, ln 2^e, ln mantissa)`.
    fn tables(&self) -> (ArrayArg<R>, ArrayArg<R>, ArrayArg<R>) {
        (
            arg(&self.exp_table),
            arg(&self.ln_pow2),
            arg(&self.ln_mantissa),
        )
    }

    fn count(&self, units: usize) -> (CubeCount, CubeDim) {
        let dim = CubeDim::new_1d(CUBE);
        (
            cubecl::calculate_cube_count_elemwise(&self.client, units, dim),
            dim,
        )
    }
}

/// The launch argument of a buffer.
#[allow(unsafe_code)]
fn arg<R: Runtime, T>(b: &Buffer<T>) -> ArrayArg<R> {
    // SAFETY: a `Buffer` is only made by `upload_raw`, whose handle holds at least `len`
    // elements of `T` (one element for an empty buffer, whose length 0 no kernel indexes);
    // the handle is never resized. Kernels are launched in checked mode.
    unsafe { ArrayArg::from_raw_parts(b.handle.clone(), b.len) }
}

/// The launch argument of a buffer seen as `u32` words (same bytes; `T` is 32 bits wide).
#[allow(unsafe_code)]
fn arg_words<R: Runtime, T>(b: &Buffer<T>) -> ArrayArg<R> {
    debug_assert_eq!(std::mem::size_of::<T>(), 4);
    // SAFETY: as in `arg`; `T` is 32 bits wide, so the handle holds `len` words.
    unsafe { ArrayArg::from_raw_parts(b.handle.clone(), b.len) }
}

fn upload_raw<R: Runtime, T: CubeElement>(
    client: &ComputeClient<R>,
    live: &Arc<AtomicU64>,
    limit: Option<u64>,
    max_buffer: u64,
    what: &str,
    data: &[T],
) -> Result<Buffer<T>> {
    let bytes = std::mem::size_of_val(data) as u64;
    if bytes > max_buffer {
        return Err(KernelError::OutOfMemory {
            what: what.to_owned(),
            bytes,
            limit: Some(max_buffer),
        });
    }
    let held = live.load(Ordering::Relaxed);
    if let Some(l) = limit
        && held + bytes > l
    {
        return Err(KernelError::OutOfMemory {
            what: format!("{what} (with {held} bytes already held)"),
            bytes,
            limit: Some(l),
        });
    }
    // An empty buffer still gets one element: devices refuse zero-sized bindings.
    let one = [T::from_bytes(&[0u8; 16])[0]];
    let source: &[T] = if data.is_empty() { &one } else { data };
    let handle = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        client.create_from_slice(T::as_bytes(source))
    }))
    .map_err(|_| KernelError::OutOfMemory {
        what: what.to_owned(),
        bytes,
        limit: None,
    })?;
    live.fetch_add(bytes, Ordering::Relaxed);
    Ok(Buffer {
        handle,
        len: data.len(),
        bytes,
        live: Arc::clone(live),
        _t: PhantomData,
    })
}

fn expect_len<T>(b: &Buffer<T>, len: usize, what: &str) -> Result<()> {
    if b.len == len {
        Ok(())
    } else {
        Err(KernelError::Invalid(format!(
            "{what}: {} elements, expected {len}",
            b.len
        )))
    }
}

/// A [`Problem`] and its [`BinMatrix`] on a device.
pub struct DeviceData {
    /// Outputs per member.
    pub n_outputs: u32,
    /// Classes.
    pub n_classes: u32,
    /// Node slots per tree.
    pub cap: u32,
    /// Members.
    pub n_members: usize,
    /// Training entries.
    pub n_entries: usize,
    /// Validation entries.
    pub n_valid: usize,
    /// Features.
    pub n_features: usize,
    /// Bins per histogram slot.
    pub total_bins: u32,
    /// Words per packed row.
    pub words_per_row: u32,
    member_of: Buffer<u32>,
    row_of: Buffer<u32>,
    row_off: Buffer<u32>,
    seed: Buffer<u32>,
    class_weight: Buffer<f32>,
    valid_member_of: Buffer<u32>,
    valid_row_of: Buffer<u32>,
    labels: Buffer<u32>,
    data: Buffer<u32>,
    n_bins: Buffer<u32>,
    offsets: Buffer<u32>,
}

impl DeviceData {
    /// Trees per round.
    pub fn n_trees(&self) -> usize {
        self.n_members * self.n_outputs as usize
    }

    /// Per-entry, per-output array length.
    pub fn entry_len(&self) -> usize {
        self.n_entries * self.n_outputs as usize
    }

    /// Per-validation-entry, per-output array length.
    pub fn valid_len(&self) -> usize {
        self.n_valid * self.n_outputs as usize
    }

    /// Per-tree, per-node table length.
    pub fn node_len(&self) -> usize {
        self.n_trees() * self.cap as usize
    }
}

impl<R: Runtime> Gpu<R> {
    /// Uploads a problem and its bin matrix.
    pub fn upload_problem(&self, p: &Problem, bins: &BinMatrix) -> Result<DeviceData> {
        if bins.n_bins.iter().any(|&b| b as usize > MAX_BINS) {
            return Err(KernelError::Invalid(format!(
                "a feature has more than {MAX_BINS} bins"
            )));
        }
        let bad_row = p
            .row_of
            .iter()
            .chain(&p.valid_row_of)
            .find(|&&r| r as usize >= bins.n_rows);
        if let Some(r) = bad_row {
            return Err(KernelError::Invalid(format!(
                "row {r} is outside the bin matrix of {} rows",
                bins.n_rows
            )));
        }
        Ok(DeviceData {
            n_outputs: p.n_outputs as u32,
            n_classes: p.n_classes as u32,
            cap: p.cap as u32,
            n_members: p.n_members(),
            n_entries: p.n_entries(),
            n_valid: p.n_valid(),
            n_features: bins.n_features,
            total_bins: bins.total_bins as u32,
            words_per_row: bins.words_per_row as u32,
            member_of: self.upload("the entries' members", &p.member_of)?,
            row_of: self.upload("the entries' rows", &p.row_of)?,
            row_off: self.upload("the members' first entries", &p.row_off)?,
            seed: self.upload("the members' seeds", &p.seed)?,
            class_weight: self.upload("the class weights", &p.class_weight)?,
            valid_member_of: self.upload("the validation entries' members", &p.valid_member_of)?,
            valid_row_of: self.upload("the validation entries' rows", &p.valid_row_of)?,
            labels: self.upload("the labels", &p.labels)?,
            data: self.upload("the bin matrix", &bins.data)?,
            n_bins: self.upload("the bin counts", &bins.n_bins)?,
            offsets: self.upload("the bin offsets", &bins.offsets)?,
        })
    }

    /// Sets every word of a 32-bit buffer to `value`.
    pub fn fill<T>(&self, buffer: &mut Buffer<T>, value: u32) -> Result<()> {
        if buffer.len == 0 {
            return Ok(());
        }
        let (count, dim) = self.count(buffer.len);
        kernels::fill::launch::<R>(&self.client, count, dim, arg_words(buffer), value);
        Ok(())
    }

    /// Kernel `gradients` (see [`crate::reference::grad::gradients`]).
    pub fn gradients(
        &self,
        d: &DeviceData,
        active: &Buffer<u32>,
        scores: &Buffer<f32>,
        grad: &mut Buffer<f32>,
        hess: &mut Buffer<f32>,
        max_bits: &mut Buffer<u32>,
    ) -> Result<()> {
        expect_len(active, d.n_members, "active")?;
        for (b, what) in [(scores, "scores"), (&*grad, "grad"), (&*hess, "hess")] {
            expect_len(b, d.entry_len(), what)?;
        }
        expect_len(max_bits, 2 * d.n_trees(), "max_bits")?;
        if d.n_entries == 0 {
            return Ok(());
        }
        let (count, dim) = self.count(d.n_entries);
        let (exp, _, _) = self.tables();
        kernels::gradients::launch::<R>(
            &self.client,
            count,
            dim,
            arg(&d.member_of),
            arg(&d.row_of),
            arg(&d.labels),
            arg(&d.class_weight),
            arg(active),
            exp,
            arg(scores),
            arg(grad),
            arg(hess),
            arg(max_bits),
            d.n_outputs,
            d.n_classes,
        );
        Ok(())
    }

    /// Kernel `quantize` (see [`crate::reference::grad::quantize_all`]).
    pub fn quantize(
        &self,
        d: &DeviceData,
        active: &Buffer<u32>,
        rounds: &Buffer<u32>,
        round: u32,
        grad: &Buffer<f32>,
        hess: &Buffer<f32>,
        gq: &mut Buffer<i32>,
        hq: &mut Buffer<i32>,
    ) -> Result<()> {
        expect_len(active, d.n_members, "active")?;
        expect_len(rounds, d.n_trees() * TREE_ROUND_WORDS, "rounds")?;
        for (len, what) in [
            (grad.len, "grad"),
            (hess.len, "hess"),
            (gq.len, "gq"),
            (hq.len, "hq"),
        ] {
            if len != d.entry_len() {
                return Err(KernelError::Invalid(format!(
                    "{what}: {len} elements, expected {}",
                    d.entry_len()
                )));
            }
        }
        if d.n_entries == 0 {
            return Ok(());
        }
        let (count, dim) = self.count(d.n_entries);
        kernels::quantize_all::launch::<R>(
            &self.client,
            count,
            dim,
            arg(&d.member_of),
            arg(&d.row_off),
            arg(&d.seed),
            arg(active),
            arg(rounds),
            arg(grad),
            arg(hess),
            arg(gq),
            arg(hq),
            round,
            d.n_outputs,
        );
        Ok(())
    }

    /// Kernel `root_sums` (see [`crate::reference::grad::root_sums`]).
    pub fn root_sums(
        &self,
        d: &DeviceData,
        active: &Buffer<u32>,
        in_bag: &Buffer<u32>,
        gq: &Buffer<i32>,
        hq: &Buffer<i32>,
        node_stats: &mut Buffer<i32>,
    ) -> Result<()> {
        expect_len(active, d.n_members, "active")?;
        expect_len(in_bag, d.n_entries, "in_bag")?;
        expect_len(gq, d.entry_len(), "gq")?;
        expect_len(hq, d.entry_len(), "hq")?;
        expect_len(node_stats, 3 * d.node_len(), "node_stats")?;
        if d.n_entries == 0 {
            return Ok(());
        }
        let (count, dim) = self.count(d.n_entries);
        kernels::root_sums::launch::<R>(
            &self.client,
            count,
            dim,
            arg(&d.member_of),
            arg(active),
            arg(in_bag),
            arg(gq),
            arg(hq),
            arg(node_stats),
            d.n_outputs,
            d.cap,
        );
        Ok(())
    }

    /// Kernel `metrics` (see [`crate::reference::grad::metrics`]).
    pub fn metrics(
        &self,
        d: &DeviceData,
        active: &Buffer<u32>,
        valid_scores: &Buffer<f32>,
        acc: &mut Buffer<u32>,
    ) -> Result<()> {
        expect_len(active, d.n_members, "active")?;
        expect_len(valid_scores, d.valid_len(), "valid_scores")?;
        expect_len(acc, 3 * d.n_members, "acc")?;
        if d.n_valid == 0 {
            return Ok(());
        }
        let (count, dim) = self.count(d.n_valid);
        let (exp, ln_pow2, ln_mantissa) = self.tables();
        kernels::metrics::launch::<R>(
            &self.client,
            count,
            dim,
            arg(&d.valid_member_of),
            arg(&d.valid_row_of),
            arg(&d.labels),
            arg(active),
            exp,
            ln_pow2,
            ln_mantissa,
            arg(valid_scores),
            arg(acc),
            d.n_outputs,
        );
        Ok(())
    }

    /// Kernel `build_histograms` (see [`crate::reference::hist::build`]).
    pub fn build_histograms(
        &self,
        d: &DeviceData,
        active: &Buffer<u32>,
        in_bag: &Buffer<u32>,
        node_of: &Buffer<u32>,
        gq: &Buffer<i32>,
        hq: &Buffer<i32>,
        build_slot: &Buffer<u32>,
        hist: &mut Buffer<i32>,
    ) -> Result<()> {
        expect_len(active, d.n_members, "active")?;
        expect_len(in_bag, d.n_entries, "in_bag")?;
        expect_len(node_of, d.entry_len(), "node_of")?;
        expect_len(gq, d.entry_len(), "gq")?;
        expect_len(hq, d.entry_len(), "hq")?;
        expect_len(build_slot, d.node_len(), "build_slot")?;
        if !hist.len.is_multiple_of(3 * d.total_bins as usize) {
            return Err(KernelError::Invalid(format!(
                "hist: {} elements, not whole slots of {} bins",
                hist.len, d.total_bins
            )));
        }
        if d.entry_len() == 0 {
            return Ok(());
        }
        let (count, dim) = self.count(d.entry_len());
        kernels::build_histograms::launch::<R>(
            &self.client,
            count,
            dim,
            arg(&d.member_of),
            arg(&d.row_of),
            arg(active),
            arg(in_bag),
            arg(node_of),
            arg(gq),
            arg(hq),
            arg(build_slot),
            arg(&d.data),
            arg(&d.offsets),
            arg(hist),
            d.n_outputs,
            d.cap,
            d.words_per_row,
            d.total_bins,
        );
        Ok(())
    }

    /// Kernel `zero_slots` (see [`crate::reference::hist::zero_slots`]).
    pub fn zero_slots(
        &self,
        d: &DeviceData,
        slots: &Buffer<u32>,
        hist: &mut Buffer<i32>,
    ) -> Result<()> {
        self.launch_zero_slots(slots, hist, 3 * d.total_bins);
        Ok(())
    }

    /// Kernel `zero_slots` on slots of `width` words (boosting and classification histograms).
    fn launch_zero_slots(&self, slots: &Buffer<u32>, hist: &mut Buffer<i32>, width: u32) {
        let units = slots.len * width as usize;
        if units == 0 {
            return;
        }
        let (count, dim) = self.count(units);
        kernels::zero_slots::launch::<R>(&self.client, count, dim, arg(slots), arg(hist), width);
    }

    /// Kernel `set_build_slots` on node tables of `cap` nodes per tree.
    fn launch_set_build_slots(
        &self,
        triples: &Buffer<u32>,
        build_slot: &mut Buffer<u32>,
        cap: u32,
    ) {
        let units = triples.len / 3;
        if units == 0 {
            return;
        }
        let (count, dim) = self.count(units);
        kernels::set_build_slots::launch::<R>(
            &self.client,
            count,
            dim,
            arg(triples),
            arg(build_slot),
            cap,
        );
    }

    /// Kernel `subtract_histograms` (see [`crate::reference::hist::subtract`]).
    pub fn subtract(
        &self,
        d: &DeviceData,
        pairs: &Buffer<u32>,
        hist: &mut Buffer<i32>,
    ) -> Result<()> {
        let width = 3 * d.total_bins;
        let units = pairs.len / 2 * width as usize;
        if units == 0 {
            return Ok(());
        }
        let (count, dim) = self.count(units);
        kernels::subtract::launch::<R>(&self.client, count, dim, arg(pairs), arg(hist), width);
        Ok(())
    }

    /// Kernel `set_build_slots` (see [`crate::reference::hist::set_build_slots`]).
    pub fn set_build_slots(
        &self,
        d: &DeviceData,
        triples: &Buffer<u32>,
        build_slot: &mut Buffer<u32>,
    ) -> Result<()> {
        expect_len(build_slot, d.node_len(), "build_slot")?;
        self.launch_set_build_slots(triples, build_slot, d.cap);
        Ok(())
    }

    /// Kernel `search` (see [`crate::reference::split::search`]): per-(task, feature)
    /// candidates into `scratch` (grown as needed), the tasks' results into `results`.
    pub fn search(
        &self,
        d: &DeviceData,
        tasks: &Buffer<u32>,
        masks: &Buffer<u32>,
        rounds: &Buffer<u32>,
        node_stats: &Buffer<i32>,
        hist: &Buffer<i32>,
        scratch: &mut Buffer<u32>,
        results: &mut Buffer<u32>,
    ) -> Result<()> {
        let n_tasks = tasks.len / SEARCH_TASK_WORDS;
        expect_len(results, n_tasks * SEARCH_RESULT_WORDS, "results")?;
        if n_tasks == 0 {
            return Ok(());
        }
        let units = n_tasks * d.n_features;
        self.ensure(scratch, units * 8, "the split candidates")?;
        let (count, dim) = self.count(units);
        kernels::search_features::launch::<R>(
            &self.client,
            count,
            dim,
            arg(tasks),
            arg(masks),
            arg(rounds),
            arg(node_stats),
            arg(hist),
            arg(&d.n_bins),
            arg(&d.offsets),
            arg(scratch),
            d.cap,
            d.total_bins,
        );
        let (count, dim) = self.count(n_tasks);
        kernels::search_reduce::launch::<R>(
            &self.client,
            count,
            dim,
            arg(scratch),
            arg(results),
            d.n_features as u32,
        );
        Ok(())
    }

    /// Kernel `level_search` (see [`crate::reference::split::level_search`]).
    pub fn level_search(
        &self,
        d: &DeviceData,
        tasks: &Buffer<u32>,
        level: &Buffer<u32>,
        masks: &Buffer<u32>,
        rounds: &Buffer<u32>,
        node_stats: &Buffer<i32>,
        hist: &Buffer<i32>,
        scratch: &mut Buffer<f32>,
        candidates: &mut Buffer<u32>,
        results: &mut Buffer<u32>,
    ) -> Result<()> {
        let n_tasks = tasks.len / LEVEL_TASK_WORDS;
        expect_len(results, n_tasks * LEVEL_RESULT_WORDS, "results")?;
        if n_tasks == 0 {
            return Ok(());
        }
        let units = n_tasks * d.n_features;
        self.ensure(scratch, units * 2 * MAX_BINS, "the level scores")?;
        self.ensure(candidates, units * 8, "the level candidates")?;
        let (count, dim) = self.count(units);
        kernels::level_features::launch::<R>(
            &self.client,
            count,
            dim,
            arg(tasks),
            arg(level),
            arg(masks),
            arg(rounds),
            arg(node_stats),
            arg(hist),
            arg(&d.n_bins),
            arg(&d.offsets),
            arg(scratch),
            arg(candidates),
            d.cap,
            d.total_bins,
            MAX_BINS as u32,
        );
        let (count, dim) = self.count(n_tasks);
        kernels::level_reduce::launch::<R>(
            &self.client,
            count,
            dim,
            arg(candidates),
            arg(results),
            d.n_features as u32,
        );
        Ok(())
    }

    /// Kernel `split_sums` (see [`crate::reference::split::split_sums`]).
    pub fn split_sums(
        &self,
        d: &DeviceData,
        queries: &Buffer<u32>,
        hist: &Buffer<i32>,
        sums: &mut Buffer<i32>,
    ) -> Result<()> {
        let n = queries.len / SUM_QUERY_WORDS;
        expect_len(sums, 3 * n, "sums")?;
        if n == 0 {
            return Ok(());
        }
        let (count, dim) = self.count(n);
        kernels::split_sums::launch::<R>(
            &self.client,
            count,
            dim,
            arg(queries),
            arg(hist),
            arg(&d.offsets),
            arg(sums),
            d.total_bins,
        );
        Ok(())
    }

    /// Kernel `apply_splits` (see [`crate::reference::tree::apply_splits`]).
    pub fn apply_splits(
        &self,
        d: &DeviceData,
        records: &Buffer<u32>,
        splits: &mut Buffer<u32>,
        node_stats: &mut Buffer<i32>,
    ) -> Result<()> {
        expect_len(splits, 2 * d.node_len(), "splits")?;
        expect_len(node_stats, 3 * d.node_len(), "node_stats")?;
        let n = records.len / SPLIT_RECORD_WORDS;
        if n == 0 {
            return Ok(());
        }
        let (count, dim) = self.count(n);
        kernels::apply_splits::launch::<R>(
            &self.client,
            count,
            dim,
            arg(records),
            arg(splits),
            arg(node_stats),
            d.cap,
        );
        Ok(())
    }

    /// Kernel `partition` (see [`crate::reference::tree::partition`]).
    pub fn partition(
        &self,
        d: &DeviceData,
        active: &Buffer<u32>,
        splits: &Buffer<u32>,
        node_of: &mut Buffer<u32>,
    ) -> Result<()> {
        expect_len(active, d.n_members, "active")?;
        expect_len(splits, 2 * d.node_len(), "splits")?;
        expect_len(node_of, d.entry_len(), "node_of")?;
        if d.entry_len() == 0 {
            return Ok(());
        }
        let (count, dim) = self.count(d.entry_len());
        kernels::partition_rows::launch::<R>(
            &self.client,
            count,
            dim,
            arg(&d.member_of),
            arg(&d.row_of),
            arg(active),
            arg(splits),
            arg(&d.data),
            arg(node_of),
            d.n_outputs,
            d.cap,
            d.words_per_row,
        );
        Ok(())
    }

    /// Kernel `leaf_values` (see [`crate::reference::tree::leaf_values`]).
    pub fn leaf_values(
        &self,
        d: &DeviceData,
        pairs: &Buffer<u32>,
        rounds: &Buffer<u32>,
        node_stats: &Buffer<i32>,
        values: &mut Buffer<f32>,
    ) -> Result<()> {
        expect_len(values, d.node_len(), "values")?;
        let n = pairs.len / 2;
        if n == 0 {
            return Ok(());
        }
        let (count, dim) = self.count(n);
        kernels::leaf_values::launch::<R>(
            &self.client,
            count,
            dim,
            arg(pairs),
            arg(rounds),
            arg(node_stats),
            arg(values),
            d.cap,
        );
        Ok(())
    }

    /// Kernel `update_scores` (see [`crate::reference::tree::update_scores`]).
    pub fn update_scores(
        &self,
        d: &DeviceData,
        active: &Buffer<u32>,
        node_of: &Buffer<u32>,
        values: &Buffer<f32>,
        scores: &mut Buffer<f32>,
    ) -> Result<()> {
        expect_len(node_of, d.entry_len(), "node_of")?;
        expect_len(scores, d.entry_len(), "scores")?;
        expect_len(values, d.node_len(), "values")?;
        if d.entry_len() == 0 {
            return Ok(());
        }
        let (count, dim) = self.count(d.entry_len());
        kernels::update_scores::launch::<R>(
            &self.client,
            count,
            dim,
            arg(&d.member_of),
            arg(active),
            arg(node_of),
            arg(values),
            arg(scores),
            d.n_outputs,
            d.cap,
        );
        Ok(())
    }

    /// Kernel `update_valid` (see [`crate::reference::tree::update_valid`]).
    pub fn update_valid(
        &self,
        d: &DeviceData,
        active: &Buffer<u32>,
        splits: &Buffer<u32>,
        values: &Buffer<f32>,
        valid_scores: &mut Buffer<f32>,
    ) -> Result<()> {
        expect_len(valid_scores, d.valid_len(), "valid_scores")?;
        expect_len(splits, 2 * d.node_len(), "splits")?;
        expect_len(values, d.node_len(), "values")?;
        if d.valid_len() == 0 {
            return Ok(());
        }
        let (count, dim) = self.count(d.valid_len());
        kernels::update_valid::launch::<R>(
            &self.client,
            count,
            dim,
            arg(&d.valid_member_of),
            arg(&d.valid_row_of),
            arg(active),
            arg(splits),
            arg(values),
            arg(&d.data),
            arg(valid_scores),
            d.n_outputs,
            d.cap,
            d.words_per_row,
        );
        Ok(())
    }

    /// Makes `buffer` hold at least `len` elements (contents undefined when it grows).
    pub fn ensure<T: CubeElement + Default>(
        &self,
        buffer: &mut Buffer<T>,
        len: usize,
        what: &str,
    ) -> Result<()> {
        if buffer.len < len {
            *buffer = self.zeros(what, len)?;
        }
        Ok(())
    }
}
