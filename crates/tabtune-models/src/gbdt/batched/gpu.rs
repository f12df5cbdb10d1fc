//! The GPU backend of the batched fit: the same steps as the CPU backend, on `tabtune-kernels`'
//! device kernels. Per-row state (scores, gradients, rows' nodes) and histograms stay on the
//! device; a step uploads its small task lists and reads back only search results.

use tabtune_kernels::gpu::{Buffer, DeviceData, Gpu, Runtime};
use tabtune_kernels::layout::{
    BinMatrix, LEVEL_RESULT_WORDS, LevelResult, LevelTask, NONE, Problem, SEARCH_RESULT_WORDS,
    SearchResult, SearchTask, SplitRecord, SumQuery, TreeRound, flatten, tree_round_words,
};

use super::backend::{Backend, Step, StepOut};
use crate::error::Result;

/// The batched fit's state on a device.
pub(crate) struct GpuBackend<R: Runtime> {
    gpu: Gpu<R>,
    d: DeviceData,
    cap: usize,
    n_trees: usize,
    n_members: usize,
    active: Buffer<u32>,
    in_bag: Buffer<u32>,
    in_bag_all: bool,
    scores: Buffer<f32>,
    valid_scores: Buffer<f32>,
    grad: Buffer<f32>,
    hess: Buffer<f32>,
    gq: Buffer<i32>,
    hq: Buffer<i32>,
    node_of: Buffer<u32>,
    splits: Buffer<u32>,
    node_stats: Buffer<i32>,
    build_slot: Buffer<u32>,
    values: Buffer<f32>,
    hist: Buffer<i32>,
    max_bits: Buffer<u32>,
    rounds: Buffer<u32>,
    acc: Buffer<u32>,
    candidates: Buffer<u32>,
    level_scores: Buffer<f32>,
    level_candidates: Buffer<u32>,
}

impl<R: Runtime> GpuBackend<R> {
    /// Uploads the problem, the bins and the initial scores; allocates `slots` histogram
    /// slots. Every allocation past the device's memory (or the cap of `gpu`) is an error
    /// naming the buffer and its size.
    pub fn new(
        gpu: Gpu<R>,
        p: &Problem,
        bins: &BinMatrix,
        slots: usize,
        scores: &[f32],
        valid_scores: &[f32],
    ) -> Result<Self> {
        let d = gpu.upload_problem(p, bins)?;
        let n = d.entry_len();
        let nodes = d.node_len();
        let n_members = p.n_members();
        let hist_len = slots * bins.total_bins * 3;
        let what = format!(
            "the batch's histograms ({slots} slots of {} bins)",
            bins.total_bins
        );
        Ok(Self {
            hist: gpu.zeros(&what, hist_len)?,
            active: gpu.zeros("the members' active flags", n_members)?,
            in_bag: gpu.upload("the in-bag flags", &vec![1u32; p.n_entries()])?,
            in_bag_all: true,
            scores: gpu.upload("the training scores", scores)?,
            valid_scores: gpu.upload("the validation scores", valid_scores)?,
            grad: gpu.zeros("the gradients", n)?,
            hess: gpu.zeros("the hessians", n)?,
            gq: gpu.zeros("the quantized gradients", n)?,
            hq: gpu.zeros("the quantized hessians", n)?,
            node_of: gpu.zeros("the rows' nodes", n)?,
            splits: gpu.zeros("the split tables", 2 * nodes)?,
            node_stats: gpu.zeros("the node sums", 3 * nodes)?,
            build_slot: gpu.upload("the build slots", &vec![NONE; nodes])?,
            values: gpu.zeros("the leaf values", nodes)?,
            max_bits: gpu.zeros("the gradient maxima", 2 * p.n_trees())?,
            rounds: gpu.zeros(
                "the trees' round settings",
                p.n_trees() * tabtune_kernels::layout::TREE_ROUND_WORDS,
            )?,
            acc: gpu.zeros("the metric sums", 3 * n_members)?,
            candidates: gpu.zeros("the split candidates", 1)?,
            level_scores: gpu.zeros("the level scores", 1)?,
            level_candidates: gpu.zeros("the level candidates", 1)?,
            cap: p.cap,
            n_trees: p.n_trees(),
            n_members,
            d,
            gpu,
        })
    }
}

impl<R: Runtime> Backend for GpuBackend<R> {
    fn begin_round(&mut self, active: &[u32], in_bag: Option<&[u32]>) -> Result<Vec<u32>> {
        let g = &self.gpu;
        g.write(&mut self.active, active)?;
        match in_bag {
            Some(b) => {
                g.write(&mut self.in_bag, b)?;
                self.in_bag_all = false;
            }
            None if !self.in_bag_all => {
                g.fill(&mut self.in_bag, 1)?;
                self.in_bag_all = true;
            }
            None => {}
        }
        g.fill(&mut self.node_of, 0)?;
        g.fill(&mut self.splits, 0)?;
        g.fill(&mut self.node_stats, 0)?;
        g.fill(&mut self.max_bits, 0)?;
        g.gradients(
            &self.d,
            &self.active,
            &self.scores,
            &mut self.grad,
            &mut self.hess,
            &mut self.max_bits,
        )?;
        Ok(g.read(&self.max_bits)?)
    }

    fn quantize(&mut self, rounds: &[TreeRound], round: u32) -> Result<Vec<[i32; 3]>> {
        let g = &self.gpu;
        g.write(&mut self.rounds, &tree_round_words(rounds))?;
        g.quantize(
            &self.d,
            &self.active,
            &self.rounds,
            round,
            &self.grad,
            &self.hess,
            &mut self.gq,
            &mut self.hq,
        )?;
        g.root_sums(
            &self.d,
            &self.active,
            &self.in_bag,
            &self.gq,
            &self.hq,
            &mut self.node_stats,
        )?;
        let stats = g.read(&self.node_stats)?;
        Ok((0..self.n_trees)
            .map(|t| {
                let i = 3 * t * self.cap;
                [stats[i], stats[i + 1], stats[i + 2]]
            })
            .collect())
    }

    fn step(&mut self, step: &Step) -> Result<StepOut> {
        let g = &self.gpu;
        let d = &self.d;
        if !step.records.is_empty() {
            let records = g.upload("the splits", &flatten(&step.records, SplitRecord::words))?;
            g.apply_splits(d, &records, &mut self.splits, &mut self.node_stats)?;
            g.partition(d, &self.active, &self.splits, &mut self.node_of)?;
        }
        if !step.builds.is_empty() {
            let triples = g.upload("the histogram builds", &step.builds.concat())?;
            let slots: Vec<u32> = step.builds.iter().map(|b| b[2]).collect();
            let slots = g.upload("the histogram slots", &slots)?;
            g.set_build_slots(d, &triples, &mut self.build_slot)?;
            g.zero_slots(d, &slots, &mut self.hist)?;
            g.build_histograms(
                d,
                &self.active,
                &self.in_bag,
                &self.node_of,
                &self.gq,
                &self.hq,
                &self.build_slot,
                &mut self.hist,
            )?;
            let clear: Vec<u32> = step
                .builds
                .iter()
                .flat_map(|b| [b[0], b[1], NONE])
                .collect();
            let clear = g.upload("the histogram builds", &clear)?;
            g.set_build_slots(d, &clear, &mut self.build_slot)?;
        }
        if !step.subtracts.is_empty() {
            let pairs = g.upload("the histogram subtractions", &step.subtracts.concat())?;
            g.subtract(d, &pairs, &mut self.hist)?;
        }
        let mut out = StepOut::default();
        let needs_masks = !step.search.is_empty() || !step.level.is_empty();
        let masks = if needs_masks {
            Some(g.upload("the feature masks", &step.masks)?)
        } else {
            None
        };
        if let Some(masks) = masks.as_ref().filter(|_| !step.search.is_empty()) {
            let tasks = g.upload(
                "the split searches",
                &flatten(&step.search, SearchTask::words),
            )?;
            let mut results =
                g.zeros::<u32>("the split results", step.search.len() * SEARCH_RESULT_WORDS)?;
            g.search(
                d,
                &tasks,
                masks,
                &self.rounds,
                &self.node_stats,
                &self.hist,
                &mut self.candidates,
                &mut results,
            )?;
            out.search = g
                .read(&results)?
                .chunks_exact(SEARCH_RESULT_WORDS)
                .map(SearchResult::from_words)
                .collect();
        }
        if let Some(masks) = masks.as_ref().filter(|_| !step.level.is_empty()) {
            let tasks = g.upload(
                "the level searches",
                &flatten(&step.level, LevelTask::words),
            )?;
            let level = g.upload("the level nodes", &step.level_nodes)?;
            let mut results =
                g.zeros::<u32>("the level results", step.level.len() * LEVEL_RESULT_WORDS)?;
            g.level_search(
                d,
                &tasks,
                &level,
                masks,
                &self.rounds,
                &self.node_stats,
                &self.hist,
                &mut self.level_scores,
                &mut self.level_candidates,
                &mut results,
            )?;
            out.level = g
                .read(&results)?
                .chunks_exact(LEVEL_RESULT_WORDS)
                .map(LevelResult::from_words)
                .collect();
        }
        if !step.sums.is_empty() {
            let queries = g.upload("the split sums", &flatten(&step.sums, SumQuery::words))?;
            let mut sums = g.zeros::<i32>("the split sums", 3 * step.sums.len())?;
            g.split_sums(d, &queries, &self.hist, &mut sums)?;
            out.sums = g
                .read(&sums)?
                .chunks_exact(3)
                .map(|s| [s[0], s[1], s[2]])
                .collect();
        }
        Ok(out)
    }

    fn finish_round(&mut self, pairs: &[u32]) -> Result<(Vec<f32>, Vec<u32>)> {
        let g = &self.gpu;
        let d = &self.d;
        let leaves = g.upload("the leaves", pairs)?;
        g.leaf_values(d, &leaves, &self.rounds, &self.node_stats, &mut self.values)?;
        g.update_scores(
            d,
            &self.active,
            &self.node_of,
            &self.values,
            &mut self.scores,
        )?;
        g.update_valid(
            d,
            &self.active,
            &self.splits,
            &self.values,
            &mut self.valid_scores,
        )?;
        g.fill(&mut self.acc, 0)?;
        g.metrics(d, &self.active, &self.valid_scores, &mut self.acc)?;
        let values = g.read(&self.values)?;
        let acc = g.read(&self.acc)?;
        debug_assert_eq!(acc.len(), 3 * self.n_members);
        Ok((
            pairs
                .chunks_exact(2)
                .map(|p| values[p[0] as usize * self.cap + p[1] as usize])
                .collect(),
            acc,
        ))
    }
}
