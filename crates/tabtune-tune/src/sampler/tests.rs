//! Samplers on known functions and against numbers computed once with Optuna 5.0.0.

// Reference values are pasted as Python printed them.
#![allow(clippy::unreadable_literal)]

use std::collections::{BTreeMap, BTreeSet};

use super::parzen::{ParzenEstimator, ParzenParams};
use super::tpe::split_trials;
use super::*;
use crate::model::{Choice, Direction, Distribution, FrozenTrial, ParamValue, TrialState};
use crate::space::SearchSpace;

fn space(text: &str) -> SearchSpace {
    SearchSpace::from_toml_str(text, "test.toml").expect("valid space")
}

fn trial(number: u64, proposal: &Proposal, state: TrialState, value: Option<f64>) -> FrozenTrial {
    let mut t = FrozenTrial::new(number as i64, number);
    for (name, d, v) in proposal {
        t.params.insert(name.clone(), v.clone());
        t.distributions.insert(name.clone(), d.clone());
    }
    t.state = state;
    t.value = value;
    t
}

/// Runs `n` sequential trials of `f` and returns them.
fn run(
    sampler: &dyn Sampler,
    space: &SearchSpace,
    n: u64,
    direction: Direction,
    f: impl Fn(&BTreeMap<String, ParamValue>) -> f64,
) -> Vec<FrozenTrial> {
    let mut trials = Vec::new();
    for number in 0..n {
        let p = sampler
            .sample(space, &trials, direction, number)
            .expect("a proposal");
        let mut t = trial(number, &p, TrialState::Complete, None);
        space
            .check_params(&t.params)
            .expect("proposal fits the space");
        t.value = Some(f(&t.params));
        trials.push(t);
    }
    trials
}

fn float(params: &BTreeMap<String, ParamValue>, name: &str) -> f64 {
    params[name].as_f64().expect("numeric")
}

const QUADRATIC: &str = r#"
[params.x0]
type = "float"
low = -5.0
high = 5.0
[params.x1]
type = "float"
low = -5.0
high = 5.0
[params.x2]
type = "float"
low = -5.0
high = 5.0
[params.x3]
type = "float"
low = -5.0
high = 5.0
[params.x4]
type = "float"
low = -5.0
high = 5.0
"#;

fn quadratic(p: &BTreeMap<String, ParamValue>) -> f64 {
    (0..5)
        .map(|i| (float(p, &format!("x{i}")) - 1.5).powi(2))
        .sum()
}

fn best(trials: &[FrozenTrial]) -> f64 {
    trials
        .iter()
        .filter_map(|t| t.value)
        .fold(f64::INFINITY, f64::min)
}

#[test]
fn tpe_beats_random_on_a_5d_quadratic() {
    let s = space(QUADRATIC);
    for name in ["tpe", "tpe-multivariate"] {
        let mut wins = 0;
        let (mut sum_tpe, mut sum_random) = (0.0, 0.0);
        for seed in 0..5 {
            let tpe = sampler_from_name(name, seed, &s).expect("tpe");
            let random = sampler_from_name("random", seed, &s).expect("random");
            let b_tpe = best(&run(tpe.as_ref(), &s, 80, Direction::Minimize, quadratic));
            let b_random = best(&run(
                random.as_ref(),
                &s,
                80,
                Direction::Minimize,
                quadratic,
            ));
            wins += usize::from(b_tpe < b_random);
            sum_tpe += b_tpe;
            sum_random += b_random;
        }
        assert!(wins >= 4, "{name} won {wins} of 5 seeds");
        assert!(
            sum_tpe < 0.5 * sum_random,
            "{name}: mean best {} vs random {}",
            sum_tpe / 5.0,
            sum_random / 5.0
        );
    }
}

#[test]
fn maximising_works_the_same_way() {
    let s = space(QUADRATIC);
    let tpe = sampler_from_name("tpe", 3, &s).expect("tpe");
    let random = sampler_from_name("random", 3, &s).expect("random");
    let neg = |p: &BTreeMap<String, ParamValue>| -quadratic(p);
    let top = |ts: &[FrozenTrial]| {
        ts.iter()
            .filter_map(|t| t.value)
            .fold(f64::NEG_INFINITY, f64::max)
    };
    let t = top(&run(tpe.as_ref(), &s, 80, Direction::Maximize, neg));
    let r = top(&run(random.as_ref(), &s, 80, Direction::Maximize, neg));
    assert!(t > r, "tpe {t} random {r}");
}

/// Distributions, observations `[dim][i]`, points `[dim][j]`, Optuna's log densities.
type Case = (Vec<Distribution>, Vec<Vec<f64>>, Vec<Vec<f64>>, Vec<f64>);

#[test]
fn parzen_estimator_matches_optuna() {
    // optuna 5.0.0: _ParzenEstimator(observations, search_space, _ParzenEstimatorParameters(
    // prior_weight=1.0, consider_magic_clip=True, consider_endpoints=False,
    // weights=default_weights, multivariate=...)).log_pdf(points)
    let f = |low: f64, high: f64, log: bool, step: Option<f64>| Distribution::Float {
        low,
        high,
        log,
        step,
    };
    let i = |low: i64, high: i64, log: bool, step: i64| Distribution::Int {
        low,
        high,
        log,
        step,
    };
    let c = |n: &[&str]| Distribution::Categorical {
        choices: n.iter().map(|s| Choice::Str((*s).to_owned())).collect(),
    };
    let cases: Vec<Case> = vec![
        (
            vec![f(0.0, 10.0, false, None)],
            vec![vec![1.0, 2.0, 2.5, 7.0]],
            vec![vec![0.0, 1.5, 5.0, 9.9]],
            vec![
                -2.0369247096410836,
                -1.7562639501990913,
                -2.5068175487146735,
                -3.0715280516496306,
            ],
        ),
        (
            vec![f(1e-3, 1.0, true, None)],
            vec![vec![0.01, 0.02, 0.5]],
            vec![vec![0.001, 0.05, 0.9]],
            vec![-2.418910525682324, -1.8272424299466057, -2.2064169028923324],
        ),
        (
            vec![i(0, 20, false, 2)],
            vec![vec![4.0, 4.0, 10.0, 18.0]],
            vec![vec![0.0, 4.0, 6.0, 20.0]],
            vec![
                -2.481238145413875,
                -2.0916365016025544,
                -2.102420007901498,
                -2.82463039262879,
            ],
        ),
        (
            vec![i(8, 256, true, 1)],
            vec![vec![16.0, 31.0, 200.0]],
            vec![vec![8.0, 30.0, 256.0]],
            vec![-3.4495240420252586, -4.514069346045014, -7.097260120725825],
        ),
        (
            vec![c(&["a", "b", "c"])],
            vec![vec![0.0, 0.0, 2.0]],
            vec![vec![0.0, 1.0, 2.0]],
            vec![
                -0.7419373447293773,
                -1.6582280766035324,
                -1.0986122886681098,
            ],
        ),
        (
            vec![f(-1.0, 1.0, false, None)],
            vec![vec![]],
            vec![vec![-1.0, 0.0, 0.7]],
            vec![
                -0.7771693800689957,
                -0.6521693800689957,
                -0.7134193800689957,
            ],
        ),
        (
            vec![f(0.0, 1.0, false, None), i(1, 9, false, 1), c(&["a", "b"])],
            vec![
                vec![0.1, 0.4, 0.8],
                vec![2.0, 5.0, 9.0],
                vec![0.0, 1.0, 1.0],
            ],
            vec![
                vec![0.2, 0.5, 0.9],
                vec![1.0, 5.0, 8.0],
                vec![0.0, 1.0, 0.0],
            ],
            vec![-2.3688697068570463, -2.514153354612919, -3.6160164414998466],
        ),
    ];
    let params = ParzenParams {
        prior_weight: 1.0,
        consider_magic_clip: true,
        consider_endpoints: false,
    };
    for (dists, obs, points, expected) in cases {
        let refs: Vec<&Distribution> = dists.iter().collect();
        let pe = ParzenEstimator::new(&obs, &refs, &default_weights(obs[0].len()), &params);
        let got = pe.log_pdf(&points);
        for (g, e) in got.iter().zip(&expected) {
            assert!((g - e).abs() < 1e-9, "{dists:?}: {got:?} vs {expected:?}");
        }
    }
}

#[test]
fn gamma_and_weights_are_optunas() {
    assert_eq!(
        [0, 1, 10, 11, 100, 249, 250, 1000].map(default_gamma),
        [0, 1, 1, 2, 10, 25, 25, 25]
    );
    let w = default_weights(30);
    // numpy.linspace(1/30, 1, 5) then 25 ones.
    let expected = [
        0.033_333_333_333_333_33,
        0.275,
        0.516_666_666_666_666_7,
        0.758_333_333_333_333_3,
        1.0,
        1.0,
    ];
    for (a, b) in w.iter().zip(expected) {
        assert!((a - b).abs() < 1e-12, "{w:?}");
    }
    assert_eq!(w.len(), 30);
    assert_eq!(default_weights(24), [1.0; 24]);
    assert!(default_weights(0).is_empty());
}

#[test]
fn split_puts_pruned_and_running_trials_where_optuna_does() {
    let p: Proposal = Vec::new();
    let mut ts = [
        trial(0, &p, TrialState::Complete, Some(3.0)),
        trial(1, &p, TrialState::Complete, Some(1.0)),
        trial(2, &p, TrialState::Pruned, None),
        trial(3, &p, TrialState::Pruned, None),
        trial(4, &p, TrialState::Pruned, None),
        trial(5, &p, TrialState::Running, None),
        trial(6, &p, TrialState::Pruned, None),
    ];
    // 2 reached step 5 with 0.4, 3 reached step 9 with 0.9, 4 reached step 9 with 0.2,
    // 6 reported nothing.
    ts[2].intermediate.insert(5, 0.4);
    ts[3].intermediate.insert(9, 0.9);
    ts[4].intermediate.insert(9, 0.2);
    let finished: Vec<&FrozenTrial> = ts
        .iter()
        .filter(|t| t.state != TrialState::Running)
        .collect();
    let running: Vec<&FrozenTrial> = ts
        .iter()
        .filter(|t| t.state == TrialState::Running)
        .collect();
    let numbers = |v: Vec<&FrozenTrial>| v.iter().map(|t| t.number).collect::<Vec<_>>();
    let (below, above) = split_trials(&finished, &running, Direction::Minimize, 4);
    // Complete by value (1, 0), then pruned: furthest step first, then the better value (4, 3).
    assert_eq!(numbers(below), [0, 1, 3, 4]);
    assert_eq!(numbers(above), [2, 5, 6]);
    let (below, _) = split_trials(&finished, &running, Direction::Maximize, 3);
    // Maximising: 0 (3.0) then 1, then trial 3 (0.9 beats 0.2 at step 9).
    assert_eq!(numbers(below), [0, 1, 3]);
}

#[test]
fn tpe_is_deterministic_ignores_its_own_trial_and_counts_running_ones_as_bad() {
    let s = space(QUADRATIC);
    let tpe = sampler_from_name("tpe", 11, &s).expect("tpe");
    let history = run(tpe.as_ref(), &s, 30, Direction::Minimize, quadratic);
    let a = tpe
        .sample(&s, &history, Direction::Minimize, 30)
        .expect("proposal");
    let b = tpe
        .sample(&s, &history, Direction::Minimize, 30)
        .expect("proposal");
    assert_eq!(a, b);
    let mut with_self = history.clone();
    with_self.push(trial(30, &a, TrialState::Running, None));
    assert_eq!(
        tpe.sample(&s, &with_self, Direction::Minimize, 30)
            .expect("proposal"),
        a
    );
    // Another worker is evaluating exactly `a`: constant liar steers trial 31 away from it.
    let mut busy = history.clone();
    busy.push(trial(30, &a, TrialState::Running, None));
    let without = tpe
        .sample(&s, &history, Direction::Minimize, 31)
        .expect("proposal");
    let with = tpe
        .sample(&s, &busy, Direction::Minimize, 31)
        .expect("proposal");
    assert_ne!(without, with, "a running trial changes the proposal");
}

#[test]
fn tpe_handles_log_step_int_and_categorical_parameters() {
    let s = space(
        r#"
[params.family]
type = "categorical"
choices = ["a", "b"]
[params.lr]
type = "float"
low = 1e-4
high = 1.0
log = true
[params.frac]
type = "float"
low = 0.1
high = 1.0
step = 0.1
[params.leaves]
type = "int"
low = 2
high = 512
log = true
when = { family = "a" }
[params.depth]
type = "int"
low = 2
high = 12
step = 2
when = { family = "b" }
"#,
    );
    // Best near lr = 0.01, frac = 0.7, family a with 64 leaves.
    let f = |p: &BTreeMap<String, ParamValue>| {
        let lr = (float(p, "lr").log10() + 2.0).powi(2);
        let frac = (float(p, "frac") - 0.7).powi(2) * 10.0;
        let fam = match p.get("leaves") {
            Some(v) => (v.as_f64().expect("int").log2() - 6.0).powi(2) * 0.1,
            None => 1.0,
        };
        lr + frac + fam
    };
    for name in ["tpe", "tpe-multivariate"] {
        let sampler = sampler_from_name(name, 5, &s).expect("tpe");
        let trials = run(sampler.as_ref(), &s, 60, Direction::Minimize, f);
        let late = &trials[40..];
        let family_a = late
            .iter()
            .filter(|t| t.params["family"] == ParamValue::Choice(Choice::Str("a".into())))
            .count();
        assert!(
            family_a >= 12,
            "{name}: {family_a} of 20 late trials in the better family"
        );
        assert!(best(&trials) < 0.3, "{name}: best {}", best(&trials));
    }
}

#[test]
fn random_draws_inside_the_space_and_follows_conditions() {
    let s = space(
        r#"
[params.c]
type = "categorical"
choices = ["x", "y", "z"]
[params.n]
type = "int"
low = 1
high = 9
step = 2
when = { c = ["x", "y"] }
"#,
    );
    let r = sampler_from_name("random", 1, &s).expect("random");
    let trials = run(r.as_ref(), &s, 300, Direction::Minimize, |_| 0.0);
    let mut counts = BTreeMap::new();
    for t in &trials {
        *counts.entry(t.params["c"].to_string()).or_insert(0) += 1;
        let has_n = t.params.contains_key("n");
        assert_eq!(has_n, t.params["c"].to_string() != "z");
    }
    for (c, n) in &counts {
        assert!((70..=130).contains(n), "{c}: {n} of 300");
    }
    let ns: BTreeSet<String> = trials
        .iter()
        .filter_map(|t| t.params.get("n"))
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        ns.into_iter().collect::<Vec<_>>(),
        ["1", "3", "5", "7", "9"]
    );
    assert_eq!(
        r.sample(&s, &[], Direction::Minimize, 7).expect("p"),
        r.sample(&s, &trials, Direction::Minimize, 7).expect("p"),
        "depends only on seed and number"
    );
}

#[test]
fn grid_covers_every_point_once_then_stops() {
    let s = space(
        r#"
[params.family]
type = "categorical"
choices = ["leafwise", "depthwise"]
[params.leaves]
type = "int"
low = 8
high = 32
step = 8
when = { family = "leafwise" }
[params.depth]
type = "int"
low = 3
high = 4
when = { family = "depthwise" }
[params.lr]
type = "float"
low = 0.1
high = 0.3
step = 0.1
"#,
    );
    let g = sampler_from_name("grid", 0, &s).expect("grid");
    // (4 leaves + 2 depths) x 3 learning rates.
    assert_eq!(g.max_trials(&s), Some(18));
    let trials = run(g.as_ref(), &s, 18, Direction::Minimize, |_| 0.0);
    let distinct: BTreeSet<String> = trials.iter().map(|t| format!("{:?}", t.params)).collect();
    assert_eq!(distinct.len(), 18, "every point once");
    let e = g
        .sample(&s, &trials, Direction::Minimize, 18)
        .expect_err("exhausted")
        .to_string();
    assert!(e.contains("exhausted") && e.contains("18"), "{e}");
    // A running point is handed out again only when nothing else is left.
    let mut busy = trials[..17].to_vec();
    let mut last = trials[17].clone();
    last.state = TrialState::Running;
    busy.push(last.clone());
    let again = g
        .sample(&s, &busy, Direction::Minimize, 18)
        .expect("the running point");
    let again: BTreeMap<String, ParamValue> = again.into_iter().map(|(n, _, v)| (n, v)).collect();
    assert_eq!(again, last.params);

    let continuous = space("[params.lr]\ntype = \"float\"\nlow = 0.1\nhigh = 0.3\n");
    let e = sampler_from_name("grid", 0, &continuous)
        .map(|_| ())
        .expect_err("no step")
        .to_string();
    assert!(e.contains("`lr`") && e.contains("step"), "{e}");
}

#[test]
fn qmc_fills_the_square_evenly() {
    let s = space(
        "[params.a]\ntype = \"float\"\nlow = 0.0\nhigh = 1.0\n[params.b]\ntype = \"float\"\nlow = 0.0\nhigh = 1.0\n",
    );
    for seed in 0..3 {
        let q = sampler_from_name("qmc", seed, &s).expect("qmc");
        let trials = run(q.as_ref(), &s, 64, Direction::Minimize, |_| 0.0);
        // A (0, 6, 2)-net: each of the 8 x 8 cells holds exactly one of the first 64 points.
        let mut cells = BTreeSet::new();
        for t in &trials {
            let cell = (
                (float(&t.params, "a") * 8.0) as usize,
                (float(&t.params, "b") * 8.0) as usize,
            );
            assert!(cells.insert(cell), "seed {seed}: cell {cell:?} twice");
        }
    }
    let r = sampler_from_name("random", 0, &s).expect("random");
    let trials = run(r.as_ref(), &s, 64, Direction::Minimize, |_| 0.0);
    let cells: BTreeSet<(usize, usize)> = trials
        .iter()
        .map(|t| {
            (
                (float(&t.params, "a") * 8.0) as usize,
                (float(&t.params, "b") * 8.0) as usize,
            )
        })
        .collect();
    assert!(
        cells.len() < 64,
        "random points leave cells empty ({} of 64 filled)",
        cells.len()
    );
}

#[test]
fn unknown_samplers_are_named() {
    let s = space(QUADRATIC);
    let e = sampler_from_name("cmaes", 0, &s)
        .map(|_| ())
        .expect_err("unknown")
        .to_string();
    assert!(
        e.contains("`cmaes`") && e.contains("tpe-multivariate"),
        "{e}"
    );
    let stepped = space("[params.a]\ntype = \"float\"\nlow = 0.0\nhigh = 1.0\nstep = 0.5\n");
    for name in SAMPLER_NAMES {
        assert_eq!(
            sampler_from_name(name, 0, &stepped).expect("known").name(),
            *name
        );
    }
}
