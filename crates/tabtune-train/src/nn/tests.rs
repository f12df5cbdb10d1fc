//! Population training equals separate runs; checkpoints; bad input; CV and bundles end to end.

use tabtune_models::metrics::Control;
use tabtune_models::nn::{Embedding, NetKind, NeuralModel, NeuralParams, Norm};

use super::device::DeviceChoice;
use super::population::{
    DataBlock, EpochMetrics, Member, MemberResult, PopulationData, StopReason, train_population,
};

const N: usize = 240;
const F: usize = 5;

/// Three classes from a noisy linear rule on five features; `shift` makes another block.
fn data_block(seed: u64, shift: f32) -> DataBlock {
    let mut rng = tabtune_features::rng::SplitMix64::new(seed);
    let mut x = Vec::with_capacity(N * F);
    let mut y = Vec::with_capacity(N);
    for _ in 0..N {
        let row: Vec<f32> = (0..F)
            .map(|_| (tabtune_models::nn::uniform(&mut rng) as f32 - 0.5) * 4.0 + shift)
            .collect();
        let noise = (tabtune_models::nn::uniform(&mut rng) as f32 - 0.5) * 0.6;
        let score = row[0] + 0.5 * row[1] - row[2] + noise;
        y.push(if score < -0.7 {
            0
        } else if score < 0.7 {
            1
        } else {
            2
        });
        x.extend(row);
    }
    DataBlock { x, y }
}

fn data(blocks: usize) -> PopulationData {
    PopulationData {
        feature_names: (0..F).map(|i| format!("f{i}")).collect(),
        n_classes: 3,
        n_rows: N,
        blocks: (0..blocks)
            .map(|b| data_block(7 + b as u64, b as f32 * 0.3))
            .collect(),
    }
}

fn small(kind: NetKind) -> NeuralParams {
    let mut p = NeuralParams::new(kind);
    p.depth = 2;
    p.width = 16;
    p.k = if kind == NetKind::Tabm { 4 } else { 1 };
    p.embedding = Embedding::None;
    p.epochs = 5;
    p.batch_size = 32;
    p.learning_rate = 3e-3;
    p.patience = 0;
    p
}

fn member(params: NeuralParams, block: usize, train: Vec<usize>, valid: Vec<usize>) -> Member {
    Member {
        params,
        block,
        train_rows: train,
        valid_rows: valid,
    }
}

fn cpu() -> DeviceChoice {
    DeviceChoice::cpu("test")
}

/// Trains `members` as ONE stack on the CPU (what a GPU runs; `train_population` on the CPU
/// splits members over threads, tested in `cpu_population_split_over_threads_equals_one_stack`).
fn train(
    d: &PopulationData,
    members: &[Member],
    hook: &mut dyn FnMut(usize, &EpochMetrics) -> Control,
) -> Vec<MemberResult> {
    super::population::train_population_with(d, members, &cpu(), hook, false, false)
        .expect("trains")
}

fn continue_all(_: usize, _: &EpochMetrics) -> Control {
    Control::Continue
}

/// Asserts two results agree within `tol` (weights, validation probabilities, history).
fn assert_close(a: &MemberResult, b: &MemberResult, tol: f32, what: &str) {
    assert_eq!(a.best_epoch, b.best_epoch, "{what}: best epoch");
    assert_eq!(a.epochs_run, b.epochs_run, "{what}: epochs run");
    assert_eq!(a.stop, b.stop, "{what}: stop reason");
    assert_eq!(a.model.tensors.len(), b.model.tensors.len());
    for (ta, tb) in a.model.tensors.iter().zip(&b.model.tensors) {
        assert_eq!((&ta.name, ta.dims), (&tb.name, tb.dims), "{what}");
        let worst = ta
            .values
            .iter()
            .zip(&tb.values)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst <= tol,
            "{what}: tensor {} differs by {worst}",
            ta.name
        );
    }
    for (x, y) in a.valid_proba.iter().zip(&b.valid_proba) {
        assert!(
            (x - y).abs() <= f64::from(tol),
            "{what}: probabilities {x} vs {y}"
        );
    }
    for (ha, hb) in a.history.iter().zip(&b.history) {
        assert!(
            (ha.train_loss - hb.train_loss).abs() <= 1e-4,
            "{what}: epoch {} train loss {} vs {}",
            ha.epoch,
            ha.train_loss,
            hb.train_loss
        );
    }
}

fn split(every: usize, fold: usize) -> (Vec<usize>, Vec<usize>) {
    (0..N).partition(|r| r % every != fold)
}

#[test]
fn population_equals_separate_runs() {
    let d = data(1);
    let (tr, va) = split(5, 0);
    let mut members = Vec::new();
    for (i, (lr, wd, dropout, smoothing, clip)) in [
        (3e-3, 1e-4, 0.0, 0.0, 0.0),
        (1e-2, 1e-2, 0.2, 0.1, 0.5),
        (5e-4, 0.0, 0.1, 0.05, 1.0),
    ]
    .into_iter()
    .enumerate()
    {
        let mut p = small(NetKind::Mlp);
        p.learning_rate = lr;
        p.weight_decay = wd;
        p.dropout = dropout;
        p.label_smoothing = smoothing;
        p.clip_norm = clip;
        p.seed = 100 + i as u64;
        members.push(member(p, 0, tr.clone(), va.clone()));
    }
    let together = train(&d, &members, &mut continue_all);
    for (i, m) in members.iter().enumerate() {
        let alone = train(&d, std::slice::from_ref(m), &mut continue_all);
        assert_close(&together[i], &alone[0], 1e-4, &format!("member {i}"));
    }
    // Different seeds and learning rates give different models.
    assert_ne!(together[0].model.tensors, together[1].model.tensors);
}

#[test]
fn population_of_folds_with_own_rows_and_data_equals_separate_fold_runs() {
    // Members = folds: each its own training-row mask (of different sizes, so members run out
    // of batches at different steps) and its own data block (its own preprocessor).
    let d = data(3);
    let mut members = Vec::new();
    for fold in 0..3 {
        let every = 3 + fold;
        let (tr, va) = split(every, fold);
        let mut p = small(NetKind::Mlp);
        p.dropout = 0.1;
        p.seed = 5;
        members.push(member(p, fold, tr, va));
    }
    let together = train(&d, &members, &mut continue_all);
    for (i, m) in members.iter().enumerate() {
        let alone = train(&d, std::slice::from_ref(m), &mut continue_all);
        assert_close(&together[i], &alone[0], 1e-4, &format!("fold {i}"));
    }
}

#[test]
fn population_of_different_widths_equals_separate_runs() {
    // TabM with periodic embeddings, layer norm and residual connections: padded units must
    // stay exactly zero and the norm statistics must use each member's own width.
    let d = data(1);
    let (tr, va) = split(4, 1);
    let members: Vec<Member> = [8usize, 16, 12]
        .into_iter()
        .enumerate()
        .map(|(i, width)| {
            let mut p = small(NetKind::Tabm);
            p.width = width;
            p.embedding = Embedding::Periodic;
            p.n_frequencies = 4;
            p.embedding_dim = 4;
            p.norm = Norm::Layer;
            p.residual = true;
            p.dropout = 0.1;
            p.seed = 11 + i as u64;
            p.epochs = 3;
            member(p, 0, tr.clone(), va.clone())
        })
        .collect();
    let together = train(&d, &members, &mut continue_all);
    for (i, m) in members.iter().enumerate() {
        let alone = train(&d, std::slice::from_ref(m), &mut continue_all);
        assert_close(&together[i], &alone[0], 1e-4, &format!("width member {i}"));
        let first = together[i]
            .model
            .tensors
            .iter()
            .find(|t| t.name == "layers.0.weight")
            .expect("first layer");
        assert_eq!(
            first.dims[1], m.params.width,
            "unpadded to the member's width"
        );
    }
}

#[test]
fn population_with_dropout_masks_computed_on_the_device_equals_masks_drawn_on_the_host() {
    // The GPU path computes each step's dropout masks on the device; on flex both paths run,
    // and the masks (hence the training) must be bit-identical, alone and in a population of
    // different widths, TabM and MLP rates (one member without dropout).
    let d = data(1);
    let (tr, va) = split(4, 2);
    let members: Vec<Member> = [(16usize, 0.2), (8, 0.0), (12, 0.35)]
        .into_iter()
        .enumerate()
        .map(|(i, (width, dropout))| {
            let mut p = small(NetKind::Tabm);
            p.width = width;
            p.dropout = dropout;
            p.seed = 40 + i as u64;
            p.epochs = 3;
            member(p, 0, tr.clone(), va.clone())
        })
        .collect();
    let with = |members: &[Member], on_device: bool| {
        super::population::train_population_with(
            &d,
            members,
            &cpu(),
            &mut continue_all,
            on_device,
            false,
        )
        .expect("trains")
    };
    let host = with(&members, false);
    let device = with(&members, true);
    for i in 0..members.len() {
        assert_close(
            &device[i],
            &host[i],
            0.0,
            &format!("device-dropout member {i}"),
        );
        let alone = with(std::slice::from_ref(&members[i]), true);
        assert_close(
            &device[i],
            &alone[0],
            1e-4,
            &format!("device-dropout alone {i}"),
        );
    }
    // Dropout changes training: the same member without it ends elsewhere.
    let mut undropped = members[0].clone();
    undropped.params.dropout = 0.0;
    let plain = with(std::slice::from_ref(&undropped), true);
    assert_ne!(plain[0].model.tensors, device[0].model.tensors);
}

/// The tensor `name` of a result.
fn tensor<'a>(r: &'a MemberResult, name: &str) -> &'a [f32] {
    &r.model
        .tensors
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no tensor {name}"))
        .values
}

#[test]
fn population_with_piecewise_embeddings_equals_separate_runs_and_bins_see_training_rows_only() {
    // Folds with their own rows and data blocks, of different widths, MLP and TabM: each
    // member's bin edges come from its own training rows.
    let mut d = data(3);
    // Validation rows far outside the training range: edges computed on them would show.
    for (b, block) in d.blocks.iter_mut().enumerate() {
        for r in (0..N).filter(|r| r % (3 + b) == b) {
            block.x[r * F] = 1000.0 + r as f32;
        }
    }
    for kind in [NetKind::Mlp, NetKind::Tabm] {
        let members: Vec<Member> = (0..3)
            .map(|fold| {
                let (tr, va) = split(3 + fold, fold);
                let mut p = small(kind);
                p.embedding = Embedding::Piecewise;
                p.n_bins = 6;
                p.embedding_dim = 4;
                p.width = [16, 8, 12][fold];
                p.dropout = 0.1;
                p.seed = 40 + fold as u64;
                p.epochs = 3;
                member(p, fold, tr, va)
            })
            .collect();
        let together = train(&d, &members, &mut continue_all);
        for (i, m) in members.iter().enumerate() {
            let alone = train(&d, std::slice::from_ref(m), &mut continue_all);
            assert_close(
                &together[i],
                &alone[0],
                1e-4,
                &format!("{kind:?} member {i}"),
            );
            let edges = tensor(&together[i], "embedding.edges");
            assert_eq!(edges.len(), F * 7);
            let x = &d.blocks[m.block].x;
            for j in 0..F {
                let mut column: Vec<f32> = m.train_rows.iter().map(|&r| x[r * F + j]).collect();
                let want = tabtune_models::nn::quantile_edges(&mut column, 6);
                assert_eq!(&edges[j * 7..(j + 1) * 7], want.as_slice(), "feature {j}");
            }
            assert!(
                edges[6] < 100.0,
                "the last edge of f0 ignores validation rows"
            );
        }
        let h = &together[0].history;
        assert!(
            h[2].train_loss < h[0].train_loss,
            "{kind:?} learns with piecewise embeddings: {h:?}"
        );
    }
}

#[test]
fn population_with_batch_norm_equals_separate_runs_and_keeps_running_statistics() {
    // Folds of different sizes (their last batches differ, members run out at different
    // steps), different widths, residual connections: batch statistics per member.
    let d = data(3);
    for kind in [NetKind::Mlp, NetKind::Tabm] {
        let members: Vec<Member> = (0..3)
            .map(|fold| {
                let (tr, va) = split(3 + fold, fold);
                let mut p = small(kind);
                p.norm = Norm::Batch;
                p.residual = true;
                p.width = [16, 12, 8][fold];
                p.dropout = 0.1;
                p.seed = 60 + fold as u64;
                p.epochs = 3;
                member(p, fold, tr, va)
            })
            .collect();
        let together = train(&d, &members, &mut continue_all);
        for (i, m) in members.iter().enumerate() {
            let alone = train(&d, std::slice::from_ref(m), &mut continue_all);
            assert_close(
                &together[i],
                &alone[0],
                1e-4,
                &format!("{kind:?} member {i}"),
            );
            let k = if kind == NetKind::Tabm { 4 } else { 1 };
            let mean = tensor(&together[i], "layers.0.running_mean");
            let var = tensor(&together[i], "layers.0.running_var");
            assert_eq!(mean.len(), k * m.params.width);
            assert!(mean.iter().any(|v| v.abs() > 1e-3), "running mean moved");
            assert!(var.iter().all(|v| *v > 0.0) && var.iter().any(|v| (v - 1.0).abs() > 1e-3));
        }
        // Evaluation uses the running statistics: the saved model predicts what the trainer
        // measured on the validation rows.
        let r = &together[1];
        let valid = &members[1].valid_rows;
        let x = ndarray::Array2::from_shape_fn((valid.len(), F), |(row, c)| {
            d.blocks[1].x[valid[row] * F + c]
        });
        let dir =
            std::env::temp_dir().join(format!("tabtune-nn-bn-{}-{kind:?}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("model.json");
        r.model.save(&path).expect("save");
        let loaded = NeuralModel::load(&path).expect("load");
        std::fs::remove_dir_all(&dir).ok();
        let proba = loaded.predict_proba(x.view()).expect("predict");
        for (a, b) in proba.iter().zip(&r.valid_proba) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        let h = &r.history;
        assert!(h[2].train_loss < h[0].train_loss, "{kind:?} learns: {h:?}");
    }
}

#[test]
fn population_pruned_member_is_masked_out_and_the_others_are_unaffected() {
    let d = data(1);
    let (tr, va) = split(5, 2);
    let members: Vec<Member> = (0..3)
        .map(|i| {
            let mut p = small(NetKind::Mlp);
            p.seed = 20 + i;
            member(p, 0, tr.clone(), va.clone())
        })
        .collect();
    let mut seen = Vec::new();
    let mut prune_1 = |m: usize, e: &EpochMetrics| {
        seen.push((m, e.epoch));
        if m == 1 && e.epoch == 2 {
            Control::Stop
        } else {
            Control::Continue
        }
    };
    let together = train(&d, &members, &mut prune_1);
    assert_eq!(together[1].stop, StopReason::Pruned);
    assert_eq!(together[1].epochs_run, 2);
    assert!(
        !seen.contains(&(1, 3)),
        "a pruned member gets no more epochs"
    );
    assert_eq!(together[0].epochs_run, 5);
    for i in [0usize, 2] {
        let alone = train(&d, &members[i..=i], &mut continue_all);
        assert_close(&together[i], &alone[0], 1e-4, &format!("member {i}"));
    }
    let mut prune_at_2 = |_: usize, e: &EpochMetrics| {
        if e.epoch == 2 {
            Control::Stop
        } else {
            Control::Continue
        }
    };
    let alone = train(&d, &members[1..=1], &mut prune_at_2);
    assert_close(&together[1], &alone[0], 1e-4, "pruned member");
}

#[test]
fn cpu_population_split_over_threads_equals_one_stack() {
    // 7 members on at most 4 threads per core: with 2 cores, 7 threads of one member; with 1
    // core, 4 threads of 1-2 members. Member indices reach the hook as the caller numbered
    // them, each member's epochs in order, and a stop prunes only its member.
    let d = data(2);
    let members: Vec<Member> = (0..7)
        .map(|i| {
            let (tr, va) = split(7, i);
            let mut p = small(NetKind::Tabm);
            p.seed = 40 + i as u64;
            p.learning_rate = 1e-3 * (1.0 + i as f64);
            p.dropout = 0.1;
            member(p, i % 2, tr, va)
        })
        .collect();
    let mut seen: Vec<(usize, usize)> = Vec::new();
    let mut prune_3 = |m: usize, e: &EpochMetrics| {
        seen.push((m, e.epoch));
        if m == 3 && e.epoch == 2 {
            Control::Stop
        } else {
            Control::Continue
        }
    };
    let split = train_population(&d, &members, &cpu(), &mut prune_3).expect("trains");
    assert_eq!(split.len(), 7);
    for m in 0..7 {
        let epochs: Vec<usize> = seen.iter().filter(|s| s.0 == m).map(|s| s.1).collect();
        let expected: Vec<usize> = (1..=if m == 3 { 2 } else { 5 }).collect();
        assert_eq!(
            epochs, expected,
            "member {m}'s epochs reach the hook in order"
        );
    }
    assert_eq!(split[3].stop, StopReason::Pruned);
    let mut prune_3_stacked = |m: usize, e: &EpochMetrics| {
        if m == 3 && e.epoch == 2 {
            Control::Stop
        } else {
            Control::Continue
        }
    };
    let stacked = train(&d, &members, &mut prune_3_stacked);
    for (m, (a, b)) in split.iter().zip(&stacked).enumerate() {
        assert_close(a, b, 1e-4, &format!("member {m}"));
    }
}

#[test]
fn population_training_learns_and_keeps_the_best_epoch_checkpoint() {
    let d = data(1);
    let (tr, va) = split(4, 0);
    let mut p = small(NetKind::Mlp);
    p.epochs = 40;
    p.patience = 5;
    p.learning_rate = 1e-2;
    let result = train(&d, &[member(p, 0, tr, va.clone())], &mut continue_all)
        .pop()
        .expect("one");
    let accuracy = result.valid_accuracy.expect("validated");
    assert!(accuracy > 0.85, "validation accuracy {accuracy}");
    let best = &result.history[result.best_epoch - 1];
    assert_eq!(best.valid_logloss, result.valid_logloss);
    assert!(
        result
            .history
            .iter()
            .all(|h| h.valid_logloss >= result.valid_logloss)
    );
    if result.stop == StopReason::EarlyStopped {
        assert_eq!(result.epochs_run, result.best_epoch + 5);
    }
    // The checkpoint (best weights) saved and loaded predicts what training measured.
    let dir = std::env::temp_dir().join(format!("tabtune-nn-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("model.json");
    result.model.save(&path).expect("save");
    let loaded = NeuralModel::load(&path).expect("load");
    std::fs::remove_dir_all(&dir).ok();
    let x = ndarray::Array2::from_shape_fn((va.len(), F), |(r, c)| d.blocks[0].x[va[r] * F + c]);
    let proba = loaded.predict_proba(x.view()).expect("predict");
    for (a, b) in proba.iter().zip(&result.valid_proba) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}

#[test]
fn population_checkpoints_hand_the_best_epoch_weights_to_the_hook_and_write_atomically() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use tabtune_models::nn::CheckpointInfo;

    let d = data(1);
    let members: Vec<Member> = (0..2)
        .map(|i| {
            let (tr, va) = split(4, i);
            let mut p = small(NetKind::Mlp);
            p.epochs = 12;
            p.learning_rate = 2e-2;
            p.seed = 70 + i as u64;
            member(p, 0, tr, va)
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("tabtune-nn-epoch-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path_of = |m: usize| dir.join(format!("member-{m}.safetensors"));
    // A reader polls the checkpoint files while training rewrites them: every read finds no
    // file or a whole one (a file written in place could be caught half-written).
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (done, paths) = (Arc::clone(&done), [path_of(0), path_of(1)]);
        std::thread::spawn(move || {
            let mut whole = 0usize;
            while !done.load(Ordering::Relaxed) {
                for path in &paths {
                    match NeuralModel::load_checkpoint(path) {
                        Ok(_) => whole += 1,
                        Err(tabtune_models::ModelError::Io { source, .. })
                            if source.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => panic!("a reader saw a broken checkpoint: {e}"),
                    }
                }
            }
            whole
        })
    };
    let mut improvements = vec![Vec::new(); 2];
    let mut hook = |m: usize, e: &EpochMetrics| {
        if let Some(model) = &e.best_model {
            assert_eq!(model.best_epoch, e.epoch);
            improvements[m].push(e.epoch);
            let info = CheckpointInfo {
                epoch: e.epoch,
                valid_logloss: e.valid_logloss,
                valid_accuracy: e.valid_accuracy,
            };
            model.save_checkpoint(&path_of(m), &info).expect("write");
        }
        Control::Continue
    };
    let results =
        train_population(&d, &members, &cpu().with_checkpoints(), &mut hook).expect("trains");
    done.store(true, Ordering::Relaxed);
    let reads = reader
        .join()
        .expect("the reader saw only whole checkpoints");
    assert!(reads > 0, "the reader read some checkpoints");
    for (m, r) in results.iter().enumerate() {
        // Handed over exactly at the epochs that improved the validation log loss.
        let mut best = f64::INFINITY;
        let want: Vec<usize> = r
            .history
            .iter()
            .filter(|h| {
                let l = h.valid_logloss.expect("validated");
                let better = l < best;
                best = best.min(l);
                better
            })
            .map(|h| h.epoch)
            .collect();
        assert_eq!(improvements[m], want, "member {m}");
        assert!(want.len() > 1, "member {m} improved more than once");
        assert!(r.history.iter().all(|h| h.best_model.is_none()));
        // The file on disk is the best epoch's weights and scores.
        let (model, info) = NeuralModel::load_checkpoint(&path_of(m)).expect("loads");
        assert_eq!(
            model, r.model,
            "member {m}: the checkpoint is the best epoch's model"
        );
        assert_eq!(info.epoch, r.best_epoch);
        assert_eq!(info.valid_logloss, r.valid_logloss);
        let valid = &members[m].valid_rows;
        let x = ndarray::Array2::from_shape_fn((valid.len(), F), |(row, c)| {
            d.blocks[0].x[valid[row] * F + c]
        });
        let proba = model.predict_proba(x.view()).expect("predicts");
        for (a, b) in proba.iter().zip(&r.valid_proba) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
    let left: Vec<_> = std::fs::read_dir(&dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left.len(), 2, "no temporary files left: {left:?}");
    std::fs::remove_dir_all(&dir).ok();
    // Without the request, no weights are copied out.
    let mut saw = false;
    train_population(&d, &members[..1], &cpu(), &mut |_, e: &EpochMetrics| {
        saw |= e.best_model.is_some();
        Control::Continue
    })
    .expect("trains");
    assert!(!saw);
}

#[test]
fn piecewise_batch_norm_bundles_round_trip_with_identical_predictions() {
    use tabtune_features::PreprocessorSpec;
    use tabtune_models::bundle::{Bundle, BundleMeta, TrainingData};

    use crate::{Family, fit_all};

    let (dir, table, config) = obesity(200);
    let spec = PreprocessorSpec::from_config(&config);
    for family in [Family::Mlp, Family::Tabm] {
        let params = family
            .params(&[
                ("epochs".into(), "3".into()),
                ("width".into(), "32".into()),
                ("embedding".into(), "piecewise".into()),
                ("n_bins".into(), "8".into()),
                ("norm".into(), "batch".into()),
            ])
            .expect("params");
        let (pre, model) = fit_all(&table, &spec, &params).expect("fit");
        let bundle_dir = dir.join(format!("bundle-{}", family.name()));
        Bundle {
            meta: BundleMeta::new(
                family.name(),
                family.name(),
                &pre,
                serde_json::Value::Null,
                TrainingData {
                    file: "train.csv".into(),
                    sha256: "0".into(),
                    rows: table.n_rows(),
                },
            ),
            model: model.clone(),
            preprocessor: pre.clone(),
        }
        .save(&bundle_dir)
        .expect("save");
        let loaded = Bundle::load(&bundle_dir).expect("load");
        let m = pre.transform(&table).expect("transform");
        let a = model.predict_proba(m.values.view()).expect("predict");
        let b = loaded
            .model
            .predict_proba(m.values.view())
            .expect("predict");
        assert_eq!(a, b, "{}", family.name());
        // The edges and running statistics came back from the checksummed weights file.
        assert!(loaded.meta.files.contains_key("model.safetensors"));
        let tabtune_models::AnyModel::Neural(neural) = &loaded.model else {
            panic!("a neural model");
        };
        for name in [
            "embedding.edges",
            "layers.0.running_mean",
            "layers.0.running_var",
        ] {
            let t = neural.tensors.iter().find(|t| t.name == name).expect(name);
            assert!(t.values.iter().any(|v| *v != 0.0), "{name} was filled");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn population_rejects_bad_input_with_clear_errors() {
    let d = data(1);
    let (tr, va) = split(5, 0);
    let p = small(NetKind::Mlp);
    let err = |members: &[Member], d: &PopulationData| {
        train_population(d, members, &cpu(), &mut continue_all)
            .expect_err("invalid")
            .to_string()
    };
    let m = err(&[member(p.clone(), 0, Vec::new(), va.clone())], &d);
    assert!(
        m.contains("member 0") && m.contains("no training rows"),
        "{m}"
    );
    let mut deeper = p.clone();
    deeper.depth = 3;
    let m = err(
        &[
            member(p.clone(), 0, tr.clone(), va.clone()),
            member(deeper, 0, tr.clone(), va.clone()),
        ],
        &d,
    );
    assert!(m.contains("member 1") && m.contains("differs"), "{m}");
    let mut bad = p.clone();
    bad.learning_rate = 0.0;
    let m = err(&[member(bad, 0, tr.clone(), va.clone())], &d);
    assert!(m.contains("learning_rate"), "{m}");
    let m = err(&[member(p.clone(), 0, vec![N + 3], va.clone())], &d);
    assert!(m.contains(&format!("row {}", N + 3)), "{m}");
    assert!(err(&[], &d).contains("at least one member"));
    let mut x = ndarray::Array2::<f32>::zeros((4, 2));
    x[[3, 1]] = f32::NAN;
    let names = vec!["a".to_owned(), "b".to_owned()];
    let m = PopulationData::single(&names, 2, x.view(), &[0, 1, 0, 1])
        .expect_err("nan")
        .to_string();
    assert!(m.contains("row 3") && m.contains("`b`"), "{m}");
}

#[cfg(feature = "wgpu")]
#[test]
fn wgpu_trains_a_few_steps_like_the_cpu() {
    // Runs on whatever wgpu adapter exists (lavapipe on CI): a few steps, same result as flex.
    let choice = super::device::select(super::device::DeviceRequest::Wgpu)
        .expect("a wgpu adapter (CI installs mesa-vulkan-drivers for lavapipe)");
    let d = data(1);
    let (tr, va) = split(5, 0);
    let mut p = small(NetKind::Mlp);
    p.epochs = 2;
    p.dropout = 0.0;
    let members = [member(p, 0, tr, va)];
    let gpu = train_population(&d, &members, &choice, &mut continue_all).expect("wgpu trains");
    let cpu = train(&d, &members, &mut continue_all);
    assert_close(&gpu[0], &cpu[0], 1e-3, "wgpu vs cpu");
    // It learns: the second epoch's training loss is below the first's.
    let h = &gpu[0].history;
    assert!(h[1].train_loss < h[0].train_loss, "{h:?}");
}

#[cfg(feature = "cuda")]
fn cuda_members() -> (PopulationData, Vec<Member>, super::device::DeviceChoice) {
    let choice = super::device::select(super::device::DeviceRequest::Cuda(0)).expect("a CUDA GPU");
    let d = data(1);
    let (tr, va) = split(5, 0);
    let members: Vec<Member> = (0..4)
        .map(|i| {
            let mut p = small(NetKind::Mlp);
            p.epochs = 3;
            p.seed = i;
            member(p, 0, tr.clone(), va.clone())
        })
        .collect();
    (d, members, choice)
}

/// On the GPU the population property holds as on the CPU: P members stacked train like P
/// separate runs.
#[cfg(feature = "cuda")]
#[test]
#[ignore = "needs an NVIDIA GPU and driver (scripts/gpu-check.sh runs it)"]
fn cuda_population_equals_separate_cuda_runs() {
    let (d, members, choice) = cuda_members();
    let together = train_population(&d, &members, &choice, &mut continue_all).expect("cuda trains");
    for (i, m) in members.iter().enumerate() {
        let alone = train_population(&d, std::slice::from_ref(m), &choice, &mut continue_all)
            .expect("cuda trains one");
        assert_close(&together[i], &alone[0], 1e-3, &format!("cuda member {i}"));
    }
}

/// The dropout masks computed by CUDA kernels are bit-identical to the host reference (the
/// same exact integer hash), for a stack of members of different widths and rates.
#[cfg(feature = "cuda")]
#[test]
#[ignore = "needs an NVIDIA GPU and driver (scripts/gpu-check.sh runs it)"]
fn cuda_dropout_masks_equal_the_host_reference() {
    use tabtune_models::nn::{DeviceCounters, DropoutKey, DropoutLayout};
    super::device::select(super::device::DeviceRequest::Cuda(0)).expect("a CUDA GPU");
    // 4 · 300 · 100 counters: past 2¹⁵, so the high part is fed too.
    let layout = DropoutLayout {
        k: 4,
        rows: 300,
        width: 100,
        own: vec![100, 64, 90, 100],
    };
    let mut rng = tabtune_features::rng::SplitMix64::new(5);
    let keys: Vec<_> = [0.1, 0.0, 0.35, 0.5]
        .into_iter()
        .map(|rate| (rate > 0.0).then(|| (DropoutKey::draw(&mut rng), rate)))
        .collect();
    let device = burn::backend::cuda::CudaDevice { index: 0 };
    let gpu: Vec<f32> = DeviceCounters::<burn::backend::Cuda>::new(layout.clone(), &device)
        .mask(&keys)
        .into_data()
        .into_vec()
        .expect("f32");
    assert_eq!(gpu, layout.host_mask(&keys));
}

/// The GPU trains what the CPU trains. Reductions run in another order on the GPU, and AdamW
/// divides each gradient by its own running scale, so a weight whose gradient is near 0 can move
/// by up to a learning rate per step on one backend and not the other: an element-wise bound
/// does not hold (an H200 differed by 1.9e-3, an H100 by 6.9e-3 in one first-layer weight after
/// 3 epochs, with identical dropout masks). What must agree is the model: the same best epoch,
/// per-epoch training losses within 1e-3, validation probabilities within 1e-2, and every
/// tensor within 1% in relative L2 norm.
#[cfg(feature = "cuda")]
#[test]
#[ignore = "needs an NVIDIA GPU and driver (scripts/gpu-check.sh runs it)"]
fn cuda_trains_a_population_like_the_cpu() {
    let (d, members, choice) = cuda_members();
    let gpu = train_population(&d, &members, &choice, &mut continue_all).expect("cuda trains");
    let cpu = train(&d, &members, &mut continue_all);
    for i in 0..4 {
        let (g, c) = (&gpu[i], &cpu[i]);
        assert_eq!(g.best_epoch, c.best_epoch, "cuda member {i}: best epoch");
        let mut worst_loss = 0.0f64;
        for (hg, hc) in g.history.iter().zip(&c.history) {
            worst_loss = worst_loss.max((hg.train_loss - hc.train_loss).abs());
        }
        let worst_proba = g
            .valid_proba
            .iter()
            .zip(&c.valid_proba)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f64, f64::max);
        let mut worst_tensor = (0.0f64, String::new());
        for (tg, tc) in g.model.tensors.iter().zip(&c.model.tensors) {
            let (mut diff, mut norm) = (0.0f64, 0.0f64);
            for (a, b) in tg.values.iter().zip(&tc.values) {
                diff += f64::from(a - b).powi(2);
                norm += f64::from(*b).powi(2);
            }
            let relative = (diff / norm.max(1e-30)).sqrt();
            if relative > worst_tensor.0 {
                worst_tensor = (relative, tg.name.clone());
            }
        }
        eprintln!(
            "cuda member {i}: train loss {worst_loss:.2e}, probabilities {worst_proba:.2e}, \
             relative L2 {:.2e} ({})",
            worst_tensor.0, worst_tensor.1
        );
        assert!(
            worst_loss <= 1e-3,
            "cuda member {i}: train loss differs by {worst_loss}"
        );
        assert!(
            worst_proba <= 1e-2,
            "cuda member {i}: probabilities differ by {worst_proba}"
        );
        assert!(
            worst_tensor.0 <= 1e-2,
            "cuda member {i}: tensor {} differs by {} in relative L2",
            worst_tensor.1,
            worst_tensor.0
        );
    }
}

/// The synthetic obesity table (the class follows BMI) and its config.
fn obesity(
    rows: usize,
) -> (
    std::path::PathBuf,
    tabtune_features::Table,
    tabtune_features::Config,
) {
    use tabtune_features::io::{LoadOptions, load_table};
    let dir = std::env::temp_dir().join(format!(
        "tabtune-nn-cv-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("train.csv");
    std::fs::write(&path, tabtune_test::synthetic_obesity_csv(rows, 9)).expect("write");
    let config =
        tabtune_features::Config::load(&tabtune_test::engineered_config(&dir)).expect("config");
    let table = load_table(&path, &config.schema, &LoadOptions::default())
        .expect("valid")
        .table;
    (dir, table, config)
}

#[test]
fn neural_cross_validation_trains_the_folds_as_one_population_and_bundles_round_trip() {
    use tabtune_features::{KFold, PreprocessorSpec};
    use tabtune_models::AnyModel;
    use tabtune_models::bundle::{Bundle, BundleMeta, TrainingData};

    use crate::{Family, ModelParams, cross_validate_on, fit_all};

    let (dir, table, config) = obesity(350);
    let spec = PreprocessorSpec::from_config(&config);
    let params = Family::Mlp
        .params(&[
            ("epochs".into(), "30".into()),
            ("width".into(), "64".into()),
            ("learning_rate".into(), "0.005".into()),
        ])
        .expect("params");
    let kfold = KFold {
        folds: 5,
        repeats: 1,
        seed: 1,
        stratify: true,
    };
    let mut members_seen = std::collections::BTreeSet::new();
    let mut folds_seen = 0;
    let report = cross_validate_on(
        &table,
        &spec,
        &params,
        kfold,
        &cpu(),
        &mut |_| folds_seen += 1,
        &mut |m, _| {
            members_seen.insert(m);
            Control::Continue
        },
    )
    .expect("cv");
    assert_eq!(folds_seen, 5);
    assert_eq!(members_seen.len(), 5, "five folds, one population");
    assert_eq!(report.device, "cpu");
    assert!(
        report.accuracy_mean > 0.7,
        "accuracy {}",
        report.accuracy_mean
    );
    assert!(
        report
            .oof
            .rows()
            .into_iter()
            .all(|r| (r.sum() - 1.0).abs() < 1e-4)
    );

    let (pre, model) = fit_all(&table, &spec, &params).expect("fit");
    assert!(matches!(model, AnyModel::Neural(_)));
    let meta = BundleMeta::new(
        "mlp",
        "mlp",
        &pre,
        serde_json::Value::Null,
        TrainingData {
            file: "train.csv".into(),
            sha256: "0".into(),
            rows: table.n_rows(),
        },
    );
    let bundle_dir = dir.join("bundle");
    Bundle {
        meta,
        model: model.clone(),
        preprocessor: pre.clone(),
    }
    .save(&bundle_dir)
    .expect("save");
    assert!(bundle_dir.join("model.safetensors").exists());
    let loaded = Bundle::load(&bundle_dir).expect("load");
    assert!(loaded.meta.files.contains_key("model.safetensors"));
    let m = pre.transform(&table).expect("transform");
    let a = model.predict_proba(m.values.view()).expect("predict");
    let b = loaded
        .model
        .predict_proba(m.values.view())
        .expect("predict");
    assert_eq!(a, b);
    // Changed weights are refused.
    let weights = bundle_dir.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&weights, bytes).expect("write");
    let e = Bundle::load(&bundle_dir).expect_err("tampered").to_string();
    assert!(
        e.contains("model.safetensors") && e.contains("sha256"),
        "{e}"
    );
    let _ = ModelParams::Neural(tabtune_models::nn::NeuralParams::new(NetKind::Mlp));
    std::fs::remove_dir_all(&dir).ok();
}
