//! Pruners on hand-made histories, decided by Optuna's rules; the signed-rank test against
//! scipy 1.17.1.

use serde_json::Value;

use super::hyperband::crc32;
use super::*;
use crate::model::{Direction, FrozenTrial, TrialState};

fn complete(number: u64, steps: &[(u64, f64)], value: f64) -> FrozenTrial {
    let mut t = FrozenTrial::new(number as i64, number);
    t.state = TrialState::Complete;
    t.value = Some(value);
    t.intermediate = steps.iter().copied().collect();
    t
}

fn running(number: u64, steps: &[(u64, f64)]) -> FrozenTrial {
    let mut t = FrozenTrial::new(number as i64, number);
    t.intermediate = steps.iter().copied().collect();
    t
}

fn view(trials: &[FrozenTrial], direction: Direction) -> StudyView<'_> {
    StudyView {
        name: "s",
        direction,
        trials,
    }
}

/// Five complete trials whose value at steps 0..=4 is `k` (k = 1..=5).
fn five() -> Vec<FrozenTrial> {
    (1..=5)
        .map(|k| {
            let steps: Vec<(u64, f64)> = (0..5).map(|s| (s, k as f64)).collect();
            complete(k - 1, &steps, k as f64)
        })
        .collect()
}

fn prunes(p: &dyn Pruner, trial: &FrozenTrial, trials: &[FrozenTrial], d: Direction) -> bool {
    p.prune(trial, &view(trials, d)).prune
}

#[test]
fn median_prunes_worse_than_the_median_at_the_step() {
    let p = pruner_from_name("median").expect("median");
    let done = five();
    let min = Direction::Minimize;
    // Median at step 2 is 3: the trial's best so far decides.
    assert!(prunes(
        p.as_ref(),
        &running(9, &[(0, 3.6), (1, 3.5), (2, 3.7)]),
        &done,
        min
    ));
    assert!(!prunes(
        p.as_ref(),
        &running(9, &[(0, 2.9), (1, 3.5), (2, 3.7)]),
        &done,
        min
    ));
    assert!(
        !prunes(p.as_ref(), &running(9, &[(2, 3.0)]), &done, min),
        "equal is not worse"
    );
    // Fewer complete trials than n_startup_trials (5): never.
    assert!(!prunes(
        p.as_ref(),
        &running(9, &[(2, 9.0)]),
        &done[..4],
        min
    ));
    // Only NaN reported: pruned.
    assert!(prunes(
        p.as_ref(),
        &running(9, &[(2, f64::NAN)]),
        &done,
        min
    ));
    // No complete trial reported this step: kept.
    assert!(!prunes(p.as_ref(), &running(9, &[(7, 9.0)]), &done, min));
    // Maximising flips the comparison.
    assert!(prunes(
        p.as_ref(),
        &running(9, &[(2, 2.9)]),
        &done,
        Direction::Maximize
    ));
    assert!(!prunes(
        p.as_ref(),
        &running(9, &[(2, 3.1)]),
        &done,
        Direction::Maximize
    ));
    assert_eq!(p.name(), "median");
}

#[test]
fn percentile_warmup_interval_and_min_trials() {
    let done = five();
    let max = Direction::Maximize;
    // Maximising at the 25th percentile compares with numpy's 75th: 4.
    let p = pruner_from_name("percentile:25").expect("percentile");
    assert!(prunes(p.as_ref(), &running(9, &[(1, 3.9)]), &done, max));
    assert!(!prunes(p.as_ref(), &running(9, &[(1, 4.0)]), &done, max));
    // Linear interpolation: the 40th percentile of 1..=5 minimising is 2.6.
    let p = pruner_from_name("percentile:40").expect("percentile");
    assert!(prunes(
        p.as_ref(),
        &running(9, &[(1, 2.7)]),
        &done,
        Direction::Minimize
    ));
    assert!(!prunes(
        p.as_ref(),
        &running(9, &[(1, 2.6)]),
        &done,
        Direction::Minimize
    ));
    // Warm-up: steps before 3 are never judged.
    let p = pruner_from_name("median:n_warmup_steps=3").expect("median");
    assert!(!prunes(
        p.as_ref(),
        &running(9, &[(2, 9.0)]),
        &done,
        Direction::Minimize
    ));
    assert!(prunes(
        p.as_ref(),
        &running(9, &[(3, 9.0)]),
        &done,
        Direction::Minimize
    ));
    // Interval 2 from warm-up 0: judged at the first report in [0, 2), [2, 4), ...
    let p = pruner_from_name("median:interval_steps=2").expect("median");
    assert!(!prunes(
        p.as_ref(),
        &running(9, &[(2, 9.0), (3, 9.0)]),
        &done,
        Direction::Minimize
    ));
    assert!(prunes(
        p.as_ref(),
        &running(9, &[(1, 9.0), (3, 9.0)]),
        &done,
        Direction::Minimize
    ));
    // n_min_trials: six trials must have reported the step.
    let p = pruner_from_name("median:n_min_trials=6").expect("median");
    assert!(!prunes(
        p.as_ref(),
        &running(9, &[(2, 9.0)]),
        &done,
        Direction::Minimize
    ));
    // Startup 0 still needs one complete trial.
    let p = pruner_from_name("median:n_startup_trials=0").expect("median");
    assert!(!prunes(
        p.as_ref(),
        &running(9, &[(2, 9.0)]),
        &[],
        Direction::Minimize
    ));
}

fn with_rung(number: u64, rung: u32, value: f64) -> FrozenTrial {
    let mut t = running(number, &[]);
    t.system_attrs
        .insert(format!("completed_rung_{rung}"), Value::from(value));
    t
}

#[test]
fn successive_halving_promotes_the_top_quarter() {
    let p = pruner_from_name("asha:min_resource=1").expect("asha");
    let min = Direction::Minimize;
    let others: Vec<FrozenTrial> = [0.5, 0.6, 0.7, 0.8]
        .iter()
        .enumerate()
        .map(|(i, v)| with_rung(i as u64, 0, *v))
        .collect();
    // Five values at rung 0 (step 1): only the best one (5 / 4 - 1 = index 0) goes on.
    let v = p.prune(&running(9, &[(1, 0.55)]), &view(&others, min));
    assert!(v.prune);
    assert_eq!(
        v.system_attrs,
        vec![("completed_rung_0".to_owned(), Value::from(0.55))]
    );
    let v = p.prune(&running(9, &[(1, 0.4)]), &view(&others, min));
    assert!(!v.prune);
    assert_eq!(v.system_attrs.len(), 1);
    // Before the rung's step nothing is judged or recorded.
    assert_eq!(
        p.prune(&running(9, &[(0, 9.0)]), &view(&others, min)),
        Verdict::keep()
    );
    // The first trial at a rung is promoted; a report at step 4 passes rungs 0 and 1 at once.
    let v = p.prune(&running(9, &[(4, 1.0)]), &view(&[], min));
    assert!(!v.prune);
    let keys: Vec<&str> = v.system_attrs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["completed_rung_0", "completed_rung_1"]);
    // A trial that already completed rung 0 is judged at rung 1 (step 4).
    let mut t = with_rung(9, 0, 0.1);
    t.intermediate.insert(2, 0.1);
    assert_eq!(p.prune(&t, &view(&others, min)), Verdict::keep());
    // Maximising: the top quarter is the largest values.
    assert!(
        !p.prune(
            &running(9, &[(1, 0.85)]),
            &view(&others, Direction::Maximize)
        )
        .prune
    );
    assert!(
        p.prune(
            &running(9, &[(1, 0.75)]),
            &view(&others, Direction::Maximize)
        )
        .prune
    );
    // Bootstrap: with fewer than 3 values at the rung, prune.
    let p = pruner_from_name("asha:min_resource=1,bootstrap_count=2").expect("asha");
    assert!(
        p.prune(&running(9, &[(1, 0.1)]), &view(&others[..1], min))
            .prune
    );
    // A NaN reaching a rung is pruned.
    assert!(
        p.prune(&running(9, &[(1, f64::NAN)]), &view(&others, min))
            .prune
    );
}

#[test]
fn successive_halving_estimates_min_resource_from_complete_trials() {
    let p = pruner_from_name("asha").expect("asha");
    let min = Direction::Minimize;
    assert_eq!(
        p.prune(&running(9, &[(5, 1.0)]), &view(&[], min)),
        Verdict::keep()
    );
    // Longest complete trial ran to step 399: min_resource = 399 / 100 = 3, rung 0 at step 3.
    let done = vec![complete(0, &[(399, 0.1)], 0.1)];
    assert_eq!(
        p.prune(&running(9, &[(2, 1.0)]), &view(&done, min)),
        Verdict::keep()
    );
    let v = p.prune(&running(9, &[(3, 1.0)]), &view(&done, min));
    assert_eq!(v.system_attrs.len(), 1, "rung 0 reached at step 3");
}

#[test]
fn hyperband_splits_trials_into_optunas_brackets() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    // min 1, max 27, reduction 3: 4 brackets with budgets 27, 12, 6, 4 (Optuna's formula);
    // bracket of trial k of study "s" from Python's binascii.crc32(b"s_k") % 49.
    let expected = [2, 1, 3, 3, 3, 2, 1, 1, 0, 0, 0, 0, 2, 0, 3, 0, 2, 0, 1, 0];
    let p = pruner_from_name("hyperband:max_resource=27").expect("hyperband");
    let min = Direction::Minimize;
    for (k, bracket) in expected.iter().enumerate() {
        // Bracket b runs successive halving with min_early_stopping_rate b: its first rung is
        // at step 3^b, so a report just below it is never judged, one at it always records.
        let first_rung = 3u64.pow(*bracket);
        let below = p.prune(
            &running(k as u64, &[(first_rung - 1, 1.0)]),
            &view(&[], min),
        );
        assert!(below.system_attrs.is_empty(), "trial {k}");
        let at = p.prune(&running(k as u64, &[(first_rung, 1.0)]), &view(&[], min));
        assert_eq!(at.system_attrs.len(), 1, "trial {k} in bracket {bracket}");
    }
    // Only trials of the same bracket compete: trial 2 (bracket 3) ignores trial 0's rung value.
    let rival = with_rung(0, 0, 0.0);
    assert!(
        !p.prune(
            &running(2, &[(27, 1.0)]),
            &view(std::slice::from_ref(&rival), min)
        )
        .prune
    );
    // Trial 5 shares bracket 2 with trial 0, so the better rival there prunes it
    // (two values, 2 / 3 - 1 < 0: only the best is promoted).
    assert!(
        p.prune(&running(5, &[(9, 1.0)]), &view(&[rival], min))
            .prune
    );
    // max_resource auto: nothing complete, nothing judged.
    let auto = pruner_from_name("hyperband").expect("hyperband");
    assert_eq!(
        auto.prune(&running(0, &[(100, 1.0)]), &view(&[], min)),
        Verdict::keep()
    );
}

#[test]
fn signed_rank_test_matches_scipy() {
    // scipy.stats.wilcoxon(d, alternative=..., zero_method="zsplit").pvalue, scipy 1.17.1.
    let g = Alternative::Greater;
    let l = Alternative::Less;
    let cases: &[(&[f64], Alternative, f64)] = &[
        (&[1.5, -0.3, 2.2, 0.7, 1.1, -0.2, 0.9, 1.8], g, 0.019_531_25),
        (&[1.5, -0.3, 2.2, 0.7, 1.1, -0.2, 0.9, 1.8], l, 0.988_281_25),
        (&[0.1, 0.2, 0.3], g, 0.125),
        (&[0.0, 0.0, 0.5, 0.4, -0.1], g, 0.25),
        (&[0.5, 0.5, -0.5, 1.0, 2.0, 0.5], g, 0.078_125),
        (&[0.0, 0.0, 0.0], l, 1.0),
        (
            &[-0.4, -1.2, -0.8, -0.1, 0.3, -2.0, -0.5, -0.9, -1.1, -0.7],
            l,
            0.002_929_687_5,
        ),
    ];
    for (d, alt, p) in cases {
        let got = wilcoxon_signed_rank(d, *alt);
        assert!((got - p).abs() < 1e-12, "{d:?} {alt:?}: {got} vs {p}");
    }
    // n = 60 with ties: the normal approximation.
    let d = [
        0.426, 0.168, 0.94, 0.405, -0.236, 0.662, 1.604, 1.247, -0.404, -0.965, -0.323, 0.341,
        -2.025, 0.081, -0.946, -0.432, -0.244, -0.016, 0.712, 1.343, 0.171, 1.666, -0.365, 0.652,
        1.203, 0.394, -0.443, -0.622, -0.158, 0.52, -0.71, 0.091, 0.141, 0.841, 0.515, 0.655,
        -0.354, 0.17, 1.084, 1.793, -0.959, 1.814, 1.646, 1.081, 0.564, -0.014, 1.758, 2.26, 2.102,
        1.615, 0.657, -0.908, 0.296, 0.956, -0.988, 0.695, 0.73, 0.996, -0.884, -0.362,
    ];
    let got = wilcoxon_signed_rank(&d, g);
    assert!((got - 0.001_695_257_338_017_649_6).abs() < 1e-12, "{got}");
    assert!(wilcoxon_signed_rank(&[], g).is_nan());
}

#[test]
fn wilcoxon_prunes_a_trial_worse_on_every_fold() {
    let p = pruner_from_name("wilcoxon").expect("wilcoxon");
    let min = Direction::Minimize;
    let folds = |v: &[f64]| {
        v.iter()
            .enumerate()
            .map(|(i, x)| (i as u64, *x))
            .collect::<Vec<_>>()
    };
    let best = complete(0, &folds(&[0.30, 0.32, 0.31, 0.29, 0.33]), 0.31);
    let worse_done = complete(1, &folds(&[0.5, 0.5, 0.5, 0.5, 0.5]), 0.5);
    let done = vec![best, worse_done];
    // Five folds, all worse: exact p = 1/32 < 0.1.
    assert!(prunes(
        p.as_ref(),
        &running(2, &folds(&[0.40, 0.41, 0.45, 0.39, 0.42])),
        &done,
        min
    ));
    // Two folds, both worse: p = 1/4, kept; one fold: below n_startup_steps.
    assert!(!prunes(
        p.as_ref(),
        &running(2, &folds(&[0.40, 0.41])),
        &done,
        min
    ));
    assert!(!prunes(
        p.as_ref(),
        &running(2, &folds(&[0.90])),
        &done,
        min
    ));
    // Better on average: kept whatever the test says.
    assert!(!prunes(
        p.as_ref(),
        &running(2, &folds(&[0.20, 0.21, 0.25, 0.19, 0.22])),
        &done,
        min
    ));
    // A non-finite value, or no complete trial: kept.
    assert!(!prunes(
        p.as_ref(),
        &running(2, &folds(&[0.4, f64::INFINITY, 0.5])),
        &done,
        min
    ));
    assert!(!prunes(
        p.as_ref(),
        &running(2, &folds(&[0.4, 0.5, 0.6, 0.7, 0.8])),
        &[],
        min
    ));
    // Maximising (accuracy per fold): worse means lower.
    let acc_best = complete(0, &folds(&[0.90, 0.91, 0.92, 0.90, 0.93]), 0.912);
    let max = Direction::Maximize;
    assert!(prunes(
        p.as_ref(),
        &running(2, &folds(&[0.80, 0.82, 0.85, 0.81, 0.84])),
        &[acc_best],
        max
    ));
}

#[test]
fn pruner_specs_and_their_errors() {
    for (spec, name) in [
        ("none", "none"),
        ("median", "median"),
        ("median:n_startup_trials=3,n_warmup_steps=10", "median"),
        ("percentile:25", "percentile"),
        ("percentile:10,interval_steps=5", "percentile"),
        ("asha", "asha"),
        (
            "successive-halving:reduction_factor=3,min_resource=5",
            "asha",
        ),
        (
            "hyperband:min_resource=1,max_resource=300,reduction_factor=3",
            "hyperband",
        ),
        ("wilcoxon:p_threshold=0.05", "wilcoxon"),
    ] {
        assert_eq!(pruner_from_name(spec).expect(spec).name(), name);
    }
    for (spec, expected) in [
        ("optimistic", "unknown pruner `optimistic`"),
        ("median:warmup=3", "unknown setting `warmup`"),
        (
            "median:n_warmup_steps=-1",
            "n_warmup_steps = `-1` is not a non-negative integer",
        ),
        ("percentile", "give the percentile"),
        ("percentile:abc", "percentile `abc` is not a number"),
        ("percentile:150", "must be in [0, 100]"),
        ("median:interval_steps=0", "interval_steps: must be >= 1"),
        ("asha:reduction_factor=1", "reduction_factor: must be >= 2"),
        (
            "asha:min_resource=zero",
            "neither a positive integer nor auto",
        ),
        (
            "asha:bootstrap_count=2",
            "bootstrap_count: needs a fixed min_resource",
        ),
        (
            "hyperband:max_resource=0,min_resource=1",
            "max_resource: must be >= min_resource",
        ),
        ("wilcoxon:p_threshold=2", "p_threshold: must be in [0, 1]"),
        ("median:5", "`5` is not a setting"),
        ("none:x=1", "unknown setting `x`"),
    ] {
        let e = pruner_from_name(spec)
            .map(|_| ())
            .expect_err(spec)
            .to_string();
        assert!(e.contains(expected), "{spec}: {e}");
        assert!(
            e.contains(spec.split(':').next().unwrap_or(spec)),
            "{spec}: {e}"
        );
    }
}
