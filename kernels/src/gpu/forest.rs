//! The classification-tree kernels on a device (see [`crate::reference::forest`]).

use super::{Buffer, Gpu, MAX_BINS, Runtime, arg, expect_len, kernels};
use crate::error::{KernelError, Result};
use crate::layout::{
    BinMatrix, CLASS_RESULT_HEAD, CLASS_RULES_WORDS, ClassProblem, SEARCH_TASK_WORDS,
};

/// A [`ClassProblem`] and its [`BinMatrix`] on a device.
pub struct ClassData {
    /// Classes.
    pub n_classes: u32,
    /// Node slots per tree.
    pub cap: u32,
    /// Entries.
    pub n_entries: usize,
    /// Features.
    pub n_features: usize,
    /// Bins of a slot.
    pub total_bins: u32,
    words_per_row: u32,
    tree_of: Buffer<u32>,
    row_of: Buffer<u32>,
    labels: Buffer<u32>,
    data: Buffer<u32>,
    n_bins: Buffer<u32>,
    offsets: Buffer<u32>,
}

impl ClassData {
    /// Words of one histogram slot.
    pub fn slot_width(&self) -> usize {
        self.total_bins as usize * self.n_classes as usize
    }
}

impl<R: Runtime> Gpu<R> {
    /// Uploads a classification problem and its bin matrix.
    pub fn upload_class_problem(&self, p: &ClassProblem, bins: &BinMatrix) -> Result<ClassData> {
        if bins.n_bins.iter().any(|&b| b as usize > MAX_BINS) {
            return Err(KernelError::Invalid(format!(
                "a feature has more than {MAX_BINS} bins"
            )));
        }
        if let Some(r) = p.row_of.iter().find(|&&r| r as usize >= bins.n_rows) {
            return Err(KernelError::Invalid(format!(
                "row {r} is outside the bin matrix of {} rows",
                bins.n_rows
            )));
        }
        if let Some(y) = p.labels.iter().find(|&&y| y as usize >= p.n_classes) {
            return Err(KernelError::Invalid(format!(
                "label {y} is not one of the {} classes",
                p.n_classes
            )));
        }
        Ok(ClassData {
            n_classes: p.n_classes as u32,
            cap: p.cap as u32,
            n_entries: p.n_entries(),
            n_features: bins.n_features,
            total_bins: bins.total_bins as u32,
            words_per_row: bins.words_per_row as u32,
            tree_of: self.upload("the entries' trees", &p.tree_of)?,
            row_of: self.upload("the entries' rows", &p.row_of)?,
            labels: self.upload("the labels", &p.labels)?,
            data: self.upload("the bin matrix", &bins.data)?,
            n_bins: self.upload("the bin counts", &bins.n_bins)?,
            offsets: self.upload("the bin offsets", &bins.offsets)?,
        })
    }

    /// Kernel `class_histograms` (see [`crate::reference::forest::histograms`]).
    pub fn class_histograms(
        &self,
        d: &ClassData,
        node_of: &Buffer<u32>,
        build_slot: &Buffer<u32>,
        masks: &Buffer<u32>,
        hist: &mut Buffer<i32>,
    ) -> Result<()> {
        expect_len(node_of, d.n_entries, "node_of")?;
        if !hist.len.is_multiple_of(d.slot_width()) {
            return Err(KernelError::Invalid(format!(
                "hist: {} elements, not whole slots of {} words",
                hist.len,
                d.slot_width()
            )));
        }
        if masks.len < (hist.len / d.slot_width()) * d.n_features {
            return Err(KernelError::Invalid(format!(
                "masks: {} elements, expected a row of {} per slot",
                masks.len, d.n_features
            )));
        }
        if d.n_entries == 0 {
            return Ok(());
        }
        let (count, dim) = self.count(d.n_entries);
        kernels::class_histograms::launch::<R>(
            &self.client,
            count,
            dim,
            arg(&d.tree_of),
            arg(&d.row_of),
            arg(&d.labels),
            arg(node_of),
            arg(build_slot),
            arg(masks),
            arg(&d.data),
            arg(&d.offsets),
            arg(hist),
            d.n_classes,
            d.cap,
            d.words_per_row,
            d.total_bins,
        );
        Ok(())
    }

    /// Kernel `class_search` (see [`crate::reference::forest::search`]): `counts` holds each
    /// task's class counts, `rules` each tree's [`ClassRules`](crate::layout::ClassRules)
    /// words, `table` the entropy table; scratch buffers grow as needed.
    pub fn class_search(
        &self,
        d: &ClassData,
        tasks: &Buffer<u32>,
        masks: &Buffer<u32>,
        counts: &Buffer<i32>,
        rules: &Buffer<u32>,
        table: &Buffer<f32>,
        hist: &Buffer<i32>,
        scratch: &mut (Buffer<i32>, Buffer<u32>),
        results: &mut Buffer<u32>,
    ) -> Result<()> {
        let n_tasks = tasks.len / SEARCH_TASK_WORDS;
        let k = d.n_classes as usize;
        expect_len(counts, n_tasks * k, "counts")?;
        expect_len(results, n_tasks * (CLASS_RESULT_HEAD + k), "results")?;
        if !rules.len.is_multiple_of(CLASS_RULES_WORDS) {
            return Err(KernelError::Invalid(format!(
                "rules: {} words, not whole rules of {CLASS_RULES_WORDS}",
                rules.len
            )));
        }
        if n_tasks == 0 {
            return Ok(());
        }
        let units = n_tasks * d.n_features;
        self.ensure(&mut scratch.0, units * k, "the split scans' left counts")?;
        self.ensure(&mut scratch.1, units * 4, "the split candidates")?;
        let (count, dim) = self.count(units);
        kernels::class_search_features::launch::<R>(
            &self.client,
            count,
            dim,
            arg(tasks),
            arg(masks),
            arg(counts),
            arg(rules),
            arg(table),
            arg(hist),
            arg(&d.n_bins),
            arg(&d.offsets),
            arg(&scratch.0),
            arg(&scratch.1),
            d.total_bins,
            d.n_classes,
        );
        let (count, dim) = self.count(n_tasks);
        kernels::class_search_reduce::launch::<R>(
            &self.client,
            count,
            dim,
            arg(tasks),
            arg(&scratch.1),
            arg(hist),
            arg(&d.offsets),
            arg(results),
            d.total_bins,
            d.n_classes,
        );
        Ok(())
    }

    /// Kernel `class_apply` (see [`crate::reference::forest::apply`]): records of 4 words.
    pub fn class_apply(
        &self,
        d: &ClassData,
        records: &Buffer<u32>,
        splits: &mut Buffer<u32>,
    ) -> Result<()> {
        let units = records.len / 4;
        if units == 0 {
            return Ok(());
        }
        let (count, dim) = self.count(units);
        kernels::class_apply::launch::<R>(
            &self.client,
            count,
            dim,
            arg(records),
            arg(splits),
            d.cap,
        );
        Ok(())
    }

    /// Kernel `class_partition` (see [`crate::reference::forest::partition`]).
    pub fn class_partition(
        &self,
        d: &ClassData,
        splits: &Buffer<u32>,
        node_of: &mut Buffer<u32>,
    ) -> Result<()> {
        expect_len(node_of, d.n_entries, "node_of")?;
        if d.n_entries == 0 {
            return Ok(());
        }
        let (count, dim) = self.count(d.n_entries);
        kernels::class_partition::launch::<R>(
            &self.client,
            count,
            dim,
            arg(&d.tree_of),
            arg(&d.row_of),
            arg(splits),
            arg(&d.data),
            arg(node_of),
            d.cap,
            d.words_per_row,
        );
        Ok(())
    }

    /// Kernel `zero_slots` on classification histograms.
    pub fn class_zero_slots(
        &self,
        d: &ClassData,
        slots: &Buffer<u32>,
        hist: &mut Buffer<i32>,
    ) -> Result<()> {
        self.launch_zero_slots(slots, hist, d.slot_width() as u32);
        Ok(())
    }

    /// Kernel `set_build_slots` on a classification problem's node table.
    pub fn class_set_build_slots(
        &self,
        d: &ClassData,
        triples: &Buffer<u32>,
        build_slot: &mut Buffer<u32>,
    ) -> Result<()> {
        self.launch_set_build_slots(triples, build_slot, d.cap);
        Ok(())
    }
}
