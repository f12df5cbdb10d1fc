//! Batched classification trees: every tree of many forests (a member = one parameter set on
//! one fold's training rows) grown together, level by level, over one shared binned matrix, on
//! the CPU (the kernels' references) or on a GPU (`wgpu`, `cuda` features).
//!
//! The kernels are the depth-wise ones of batched boosting with class counts in place of
//! gradient pairs ([`tabtune_kernels::reference::forest`]): a bootstrapped row is one entry
//! per draw, so each histogram holds the bootstrap-weighted class counts as exact integers, and
//! a split is ranked by its Gini or entropy score. Each tree draws its bootstrap and each node
//! its features exactly as [`ForestModel::fit`] does, and splits are chosen by the same scan:
//! a member's forest equals the one the engine trains alone on the same bins.

use tabtune_features::rng::SplitMix64;
use tabtune_kernels::layout::{
    BinMatrix, ClassProblem, ClassResult, ClassRules, NONE, SearchTask, pack_split,
};
use tabtune_kernels::reference::forest as kref;
use tabtune_kernels::reference::tree::goes_left;

use super::grow::{
    TreeSettings, child_key, decrease, leaf, node_features, root_key, rules, splittable,
};
use super::model::{
    ClassNode, ClassTree, ForestModel, assemble, bootstrap, oob_accuracy, tree_seed, tree_settings,
};
use super::params::{ForestKind, ForestParams, ForestValid};
use crate::error::{ModelError, Result};
use crate::gbdt::batched::{BatchData, BatchDevice, BatchOptions, member_error};

/// One member: a forest's (or a decision tree's) parameters and its training rows (indices into
/// the batch's matrix, in the order the engine would see them).
#[derive(Clone, Debug, PartialEq)]
pub struct ForestMember {
    /// Hyperparameters.
    pub params: ForestParams,
    /// Training rows.
    pub train: Vec<u32>,
}

/// A member's result.
#[derive(Clone, Debug, PartialEq)]
pub struct ForestFit {
    /// The model (an ordinary forest model: saved, bundled and predicted as any other).
    pub model: ForestModel,
    /// Where it trained: `cpu`, `wgpu` or `cuda:N`, or `cpu (fallback: REASON)`.
    pub device: String,
}

/// The CPU's cap on the fit's memory when none is given.
const CPU_MEMORY: u64 = 8 << 30;
/// The share of the memory cap histogram slots may take.
const HIST_SHARE: u64 = 4;

/// What a level asks of a device, in this order: apply `records` (`[tree, node, packed split,
/// left child]`) and move the entries of split nodes to their children; zero the slots of
/// `builds` (`[tree, node, slot]`) and build their histograms (features of mask row `slot`
/// of `masks`); search `tasks` (each task's class counts in `counts`); then clear the build
/// slots again.
pub(crate) trait ClassBackend {
    fn level(
        &mut self,
        records: &[[u32; 4]],
        builds: &[[u32; 3]],
        masks: &[u32],
        tasks: &[SearchTask],
        counts: &[i32],
    ) -> Result<Vec<ClassResult>>;
}

/// The CPU backend: the kernels' references on host arrays.
struct CpuClass {
    p: ClassProblem,
    bins: BinMatrix,
    rules: Vec<ClassRules>,
    table: Vec<f32>,
    node_of: Vec<u32>,
    splits: Vec<u32>,
    build_slot: Vec<u32>,
    hist: Vec<i32>,
}

impl ClassBackend for CpuClass {
    fn level(
        &mut self,
        records: &[[u32; 4]],
        builds: &[[u32; 3]],
        masks: &[u32],
        tasks: &[SearchTask],
        counts: &[i32],
    ) -> Result<Vec<ClassResult>> {
        let cap = self.p.cap;
        if !records.is_empty() {
            kref::apply(cap, records, &mut self.splits);
            kref::partition(&self.p, &self.bins, &self.splits, &mut self.node_of);
        }
        let width = self.bins.total_bins * self.p.n_classes;
        let slots: Vec<u32> = builds.iter().map(|b| b[2]).collect();
        kref::zero_slots(&slots, width, &mut self.hist);
        kref::set_build_slots(cap, builds, &mut self.build_slot);
        kref::histograms(
            &self.p,
            &self.bins,
            &self.node_of,
            &self.build_slot,
            masks,
            &mut self.hist,
        );
        let out = kref::search(
            &self.p,
            &self.bins,
            tasks,
            masks,
            counts,
            &self.rules,
            &self.table,
            &self.hist,
        );
        let clear: Vec<[u32; 3]> = builds.iter().map(|b| [b[0], b[1], NONE]).collect();
        kref::set_build_slots(cap, &clear, &mut self.build_slot);
        Ok(out)
    }
}

/// The fixed layout of a batch and the bytes it needs (per-entry state and node tables).
struct Layout {
    problem: ClassProblem,
    rules: Vec<ClassRules>,
    table: Vec<f32>,
    /// Per tree: its member, its index in the member's forest, its root class counts.
    trees: Vec<(usize, usize, Vec<i32>)>,
    fixed_bytes: u64,
}

fn check_members(data: &BatchData, members: &[ForestMember]) -> Result<Vec<ForestValid>> {
    if members.is_empty() {
        return Err(ModelError::Data("a batch needs at least one member".into()));
    }
    if data.has_missing() {
        return Err(ModelError::Data(
            "the batch's data has missing values (NaN): decision trees and forests need \
             complete rows (impute them first)"
                .into(),
        ));
    }
    let n_rows = data.n_rows();
    members
        .iter()
        .enumerate()
        .map(|(m, member)| {
            let p = member.params.check().map_err(|e| member_error(m, e))?;
            if p.max_bins != data.max_bins() {
                return Err(ModelError::param(
                    &format!("member {m}: max_bins"),
                    p.max_bins,
                    &format!("the batch's binning ({} bins)", data.max_bins()),
                ));
            }
            if member.train.is_empty() {
                return Err(ModelError::Data(format!(
                    "member {m} has no training rows (an empty fold?)"
                )));
            }
            if let Some(&r) = member.train.iter().find(|&&r| r as usize >= n_rows) {
                return Err(ModelError::Data(format!(
                    "member {m}: row {r} is outside the batch's {n_rows} rows"
                )));
            }
            Ok(p)
        })
        .collect()
}

fn layout(data: &BatchData, members: &[ForestMember], params: &[ForestValid]) -> Layout {
    let labels = data.labels();
    let k = data.n_classes();
    let (mut tree_of, mut row_of) = (Vec::new(), Vec::new());
    let (mut trees, mut rules_of) = (Vec::new(), Vec::new());
    let (mut cap, mut max_entries) = (1usize, 0usize);
    for (m, (member, p)) in members.iter().zip(params).enumerate() {
        let n = member.train.len();
        let bagged = p.kind == ForestKind::RandomForest && p.bootstrap;
        let settings = tree_settings(p, data.n_features());
        for t in 0..p.n_trees {
            let g = trees.len() as u32;
            let mut rng = SplitMix64::new(tree_seed(p.seed, t));
            let weight = bootstrap(n, bagged, &mut rng);
            let mut counts = vec![0i32; k];
            let mut distinct = 0usize;
            let before = tree_of.len();
            for (i, &w) in weight.iter().enumerate() {
                if w == 0 {
                    continue;
                }
                distinct += 1;
                let row = member.train[i];
                counts[labels[row as usize] as usize] += w;
                for _ in 0..w {
                    tree_of.push(g);
                    row_of.push(row);
                }
            }
            max_entries = max_entries.max(tree_of.len() - before);
            // Rows drawn more than once are alike, so a tree has at most one leaf per distinct
            // row (and a depth limit bounds it too).
            let mut nodes = 2 * distinct - 1;
            if p.max_depth > 0 && p.max_depth < 31 {
                nodes = nodes.min((1usize << (p.max_depth + 1)) - 1);
            }
            cap = cap.max(nodes);
            trees.push((m, t, counts));
            rules_of.push(rules(&settings));
        }
    }
    let n_trees = trees.len() as u64;
    let entries = tree_of.len() as u64;
    let fixed_bytes = entries * 3 * 4 + n_trees * cap as u64 * 3 * 4 + (max_entries as u64 + 1) * 4;
    Layout {
        problem: ClassProblem {
            n_classes: k,
            cap,
            tree_of,
            row_of,
            labels: labels.to_vec(),
        },
        rules: rules_of,
        table: kref::xlogx_table(max_entries),
        trees,
        fixed_bytes,
    }
}

/// Grows every tree of every member together on `options.device`; returns one fit per member,
/// in order. Out of memory (over `options.memory_limit` or the device's) is an error naming
/// the buffer and its size, or with `cpu_fallback` a fit on the CPU that says so.
pub fn fit_forests_batched(
    data: &BatchData,
    members: &[ForestMember],
    options: &BatchOptions,
) -> Result<Vec<ForestFit>> {
    let params = check_members(data, members)?;
    let lay = layout(data, members, &params);
    let nf = data.n_features();
    let k = data.n_classes();
    let slot_bytes = (data.bins().total_bins * k * 4 + nf * 4) as u64;
    let device = options.device.to_string();
    let (mut backend, n_slots, device) = match make_backend(options, &lay, data, slot_bytes) {
        Ok((b, s)) => (b, s, device),
        Err(ModelError::Kernel(e))
            if options.cpu_fallback && options.device != BatchDevice::Cpu =>
        {
            let reason = format!("{device}: {e}");
            let cpu = BatchOptions {
                device: BatchDevice::Cpu,
                memory_limit: None,
                cpu_fallback: false,
            };
            let (b, s) = make_backend(&cpu, &lay, data, slot_bytes)?;
            (b, s, format!("cpu (fallback: {reason})"))
        }
        Err(e) => return Err(e),
    };
    let settings: Vec<TreeSettings> = params.iter().map(|p| tree_settings(p, nf)).collect();
    let mappers = data.mappers();
    // Per tree: its nodes; pending nodes of the current level: (tree, node, depth, key, counts).
    let mut nodes: Vec<Vec<ClassNode>> = lay.trees.iter().map(|(_, _, c)| vec![leaf(c)]).collect();
    let mut pending: Vec<(usize, u32, usize, u64, Vec<i32>)> = lay
        .trees
        .iter()
        .enumerate()
        .map(|(g, (m, t, c))| {
            let key = root_key(tree_seed(params[*m].seed, *t));
            (g, 0, 0, key, c.clone())
        })
        .collect();
    let mut records: Vec<[u32; 4]> = Vec::new();
    loop {
        pending.retain(|(g, _, depth, _, counts)| {
            splittable(&settings[lay.trees[*g].0], counts, *depth)
        });
        if pending.is_empty() {
            break;
        }
        let mut next = Vec::new();
        for chunk in pending.chunks(n_slots) {
            let mut builds = Vec::with_capacity(chunk.len());
            let mut tasks = Vec::with_capacity(chunk.len());
            let mut masks = vec![0u32; n_slots * nf];
            let mut counts = Vec::with_capacity(chunk.len() * k);
            for (slot, (g, node, _, key, c)) in chunk.iter().enumerate() {
                let s = &settings[lay.trees[*g].0];
                for f in node_features(*key, nf, s.features_per_split) {
                    masks[slot * nf + f] = 1;
                }
                builds.push([*g as u32, *node, slot as u32]);
                tasks.push(SearchTask {
                    tree: *g as u32,
                    node: *node,
                    slot: slot as u32,
                    mask_row: slot as u32,
                });
                counts.extend_from_slice(c);
            }
            let applied = std::mem::take(&mut records);
            let results = backend.level(&applied, &builds, &masks, &tasks, &counts)?;
            for ((g, node, depth, key, c), r) in chunk.iter().zip(results) {
                if r.feature == NONE {
                    continue;
                }
                let criterion = settings[lay.trees[*g].0].criterion;
                let dec = decrease(criterion, c, &r.left);
                if dec <= 1e-12 {
                    continue;
                }
                let right: Vec<i32> = c.iter().zip(&r.left).map(|(a, b)| a - b).collect();
                let tree = &mut nodes[*g];
                let left_node = tree.len() as u32;
                tree.push(leaf(&r.left));
                tree.push(leaf(&right));
                let f = r.feature as usize;
                tree[*node as usize] = ClassNode::Split {
                    feature: r.feature,
                    threshold: mappers[f].threshold(r.bin as usize),
                    bin: r.bin as u8,
                    missing_left: r.missing_left,
                    left: left_node,
                    right: left_node + 1,
                    decrease: dec as f32,
                };
                records.push([
                    *g as u32,
                    *node,
                    pack_split(r.feature, r.bin, r.missing_left),
                    left_node,
                ]);
                next.push((*g, left_node, depth + 1, child_key(*key, true), r.left));
                next.push((*g, left_node + 1, depth + 1, child_key(*key, false), right));
            }
        }
        pending = next;
    }
    // Per member: its trees in order, its model.
    let mut per_member: Vec<Vec<ClassTree>> = vec![Vec::new(); members.len()];
    for ((m, _, _), tree) in lay.trees.iter().zip(nodes) {
        per_member[*m].push(ClassTree { nodes: tree });
    }
    let bins = data.bins();
    let labels = data.labels();
    Ok(members
        .iter()
        .zip(&params)
        .zip(per_member)
        .map(|((member, p), trees)| {
            let bagged = p.kind == ForestKind::RandomForest && p.bootstrap;
            let oob = bagged.then(|| {
                let y: Vec<u32> = member.train.iter().map(|&r| labels[r as usize]).collect();
                oob_accuracy(p.seed, &trees, &y, k, |tree, i| {
                    let row = member.train[i] as usize;
                    tree.leaf_by_bins(|f, bin, missing_left| {
                        goes_left(bins.bin(row, f), bin, missing_left)
                    })
                    .to_vec()
                })
            });
            ForestFit {
                model: assemble(p, data.feature_names(), k, trees, oob),
                device: device.clone(),
            }
        })
        .collect())
}

/// The backend of `options.device` and its number of histogram slots.
fn make_backend(
    options: &BatchOptions,
    lay: &Layout,
    data: &BatchData,
    slot_bytes: u64,
) -> Result<(Box<dyn ClassBackend>, usize)> {
    let limit = options.memory_limit.unwrap_or(match options.device {
        BatchDevice::Cpu => CPU_MEMORY,
        _ => u64::MAX,
    });
    let max_nodes = lay.trees.len().max(1);
    let slots_for = |limit: u64| -> Result<usize> {
        let room = limit.saturating_sub(lay.fixed_bytes);
        let slots = ((room / HIST_SHARE).min(1 << 30) / slot_bytes) as usize;
        if slots == 0 {
            return Err(ModelError::Kernel(
                tabtune_kernels::KernelError::OutOfMemory {
                    what: format!(
                        "the forest batch's per-row state and node tables ({} trees, {} \
                         entries) and one histogram slot of {} bins",
                        lay.trees.len(),
                        lay.problem.n_entries(),
                        data.bins().total_bins
                    ),
                    bytes: lay.fixed_bytes + slot_bytes,
                    limit: Some(limit),
                },
            ));
        }
        // More slots than a level can use help nothing: a level has at most a node per
        // distinct row of every tree.
        Ok(slots
            .min(max_nodes.max(lay.problem.n_entries()))
            .min(1 << 16))
    };
    let bins = data.bins();
    match options.device {
        BatchDevice::Cpu => {
            let n_slots = slots_for(limit)?;
            let nodes = lay.trees.len() * lay.problem.cap;
            Ok((
                Box::new(CpuClass {
                    p: lay.problem.clone(),
                    bins: bins.clone(),
                    rules: lay.rules.clone(),
                    table: lay.table.clone(),
                    node_of: vec![0; lay.problem.n_entries()],
                    splits: vec![0; 2 * nodes],
                    build_slot: vec![NONE; nodes],
                    hist: vec![0; n_slots * bins.total_bins * data.n_classes()],
                }),
                n_slots,
            ))
        }
        #[cfg(feature = "wgpu")]
        BatchDevice::Wgpu => {
            let gpu = tabtune_kernels::gpu::Gpu::wgpu()?;
            gpu_backend(gpu, options, lay, bins, slots_for)
        }
        #[cfg(feature = "cuda")]
        BatchDevice::Cuda(index) => {
            let gpu = tabtune_kernels::gpu::Gpu::cuda(index)?;
            gpu_backend(gpu, options, lay, bins, slots_for)
        }
        #[allow(unreachable_patterns)]
        other => Err(ModelError::Data(format!(
            "batched forest fit on {other:?}: this build has no such backend (cargo features \
             `wgpu` / `cuda`)"
        ))),
    }
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn gpu_backend<R: tabtune_kernels::gpu::Runtime>(
    gpu: tabtune_kernels::gpu::Gpu<R>,
    options: &BatchOptions,
    lay: &Layout,
    bins: &BinMatrix,
    slots_for: impl Fn(u64) -> Result<usize>,
) -> Result<(Box<dyn ClassBackend>, usize)> {
    // A device's own limit is its largest buffer; the histograms are one buffer.
    let limit = options
        .memory_limit
        .unwrap_or(gpu.max_buffer().saturating_mul(HIST_SHARE));
    let gpu = match options.memory_limit {
        Some(l) => gpu.with_memory_limit(l),
        None => gpu,
    };
    let n_slots = slots_for(limit)?;
    let backend = gpu_class::GpuClass::new(gpu, lay, bins, n_slots)?;
    Ok((Box::new(backend), n_slots))
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod gpu_class {
    use tabtune_kernels::gpu::{Buffer, ClassData, Gpu, Runtime};
    use tabtune_kernels::layout::{
        BinMatrix, CLASS_RESULT_HEAD, ClassResult, ClassRules, NONE, SearchTask, flatten,
    };

    use super::{ClassBackend, Layout};
    use crate::error::Result;

    /// The batched forest's state on a device: entries' nodes, split tables and histograms
    /// stay there; a level uploads its small lists and reads back only search results.
    pub(super) struct GpuClass<R: Runtime> {
        gpu: Gpu<R>,
        d: ClassData,
        n_slots: usize,
        node_of: Buffer<u32>,
        splits: Buffer<u32>,
        build_slot: Buffer<u32>,
        hist: Buffer<i32>,
        masks: Buffer<u32>,
        rules: Buffer<u32>,
        table: Buffer<f32>,
        scratch: (Buffer<i32>, Buffer<u32>),
    }

    impl<R: Runtime> GpuClass<R> {
        pub(super) fn new(
            gpu: Gpu<R>,
            lay: &Layout,
            bins: &BinMatrix,
            n_slots: usize,
        ) -> Result<Self> {
            let d = gpu.upload_class_problem(&lay.problem, bins)?;
            let nodes = lay.trees.len() * lay.problem.cap;
            let rules: Vec<u32> = lay.rules.iter().flat_map(ClassRules::words).collect();
            let what = format!(
                "the forest batch's histograms ({n_slots} slots of {} bins × {} classes)",
                bins.total_bins, lay.problem.n_classes
            );
            Ok(Self {
                hist: gpu.zeros(&what, n_slots * d.slot_width())?,
                node_of: gpu.zeros("the entries' nodes", d.n_entries)?,
                splits: gpu.zeros("the split tables", 2 * nodes)?,
                build_slot: gpu.upload("the build slots", &vec![NONE; nodes])?,
                masks: gpu.zeros("the feature masks", n_slots * d.n_features)?,
                rules: gpu.upload("the trees' split rules", &rules)?,
                table: gpu.upload("the entropy table", &lay.table)?,
                scratch: (
                    gpu.zeros("the split scans' left counts", 1)?,
                    gpu.zeros("the split candidates", 1)?,
                ),
                n_slots,
                d,
                gpu,
            })
        }
    }

    impl<R: Runtime> ClassBackend for GpuClass<R> {
        fn level(
            &mut self,
            records: &[[u32; 4]],
            builds: &[[u32; 3]],
            masks: &[u32],
            tasks: &[SearchTask],
            counts: &[i32],
        ) -> Result<Vec<ClassResult>> {
            let g = &self.gpu;
            if !records.is_empty() {
                let words: Vec<u32> = records.iter().flatten().copied().collect();
                let rec = g.upload("the level's splits", &words)?;
                g.class_apply(&self.d, &rec, &mut self.splits)?;
                g.class_partition(&self.d, &self.splits, &mut self.node_of)?;
            }
            if tasks.is_empty() {
                g.sync()?;
                return Ok(Vec::new());
            }
            let slots: Vec<u32> = builds.iter().map(|b| b[2]).collect();
            let slots = g.upload("the level's slots", &slots)?;
            g.class_zero_slots(&self.d, &slots, &mut self.hist)?;
            let triples: Vec<u32> = builds.iter().flatten().copied().collect();
            let triples = g.upload("the level's build slots", &triples)?;
            g.class_set_build_slots(&self.d, &triples, &mut self.build_slot)?;
            debug_assert_eq!(masks.len(), self.n_slots * self.d.n_features);
            g.write(&mut self.masks, masks)?;
            g.class_histograms(
                &self.d,
                &self.node_of,
                &self.build_slot,
                &self.masks,
                &mut self.hist,
            )?;
            let task_words = flatten(tasks, SearchTask::words);
            let tasks_buf = g.upload("the level's search tasks", &task_words)?;
            let counts_buf = g.upload("the level's class counts", counts)?;
            let k = self.d.n_classes as usize;
            let mut results = g.zeros(
                "the level's search results",
                tasks.len() * (CLASS_RESULT_HEAD + k),
            )?;
            g.class_search(
                &self.d,
                &tasks_buf,
                &self.masks,
                &counts_buf,
                &self.rules,
                &self.table,
                &self.hist,
                &mut self.scratch,
                &mut results,
            )?;
            let words = g.read(&results)?;
            let clear: Vec<u32> = builds.iter().flat_map(|b| [b[0], b[1], NONE]).collect();
            let clear = g.upload("the level's build slots", &clear)?;
            g.class_set_build_slots(&self.d, &clear, &mut self.build_slot)?;
            Ok(ClassResult::from_words(&words, k))
        }
    }
}
