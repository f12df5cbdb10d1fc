//! Sequential forward or backward feature selection, run as a study: every candidate feature
//! set is one trial, so the search is stored, resumable and readable by Optuna. It keeps
//! between `min_share` and `max_share` of the features (10% .. 40% by default, as the
//! original research did).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Value, json};
use tabtune_features::io::write_bytes_atomic;
use tabtune_features::{Config, KFold, PreprocessorSpec, Table};
use tabtune_train::{Family, ModelParams, cross_validate};
use tabtune_tune::storage::redact;
use tabtune_tune::study::{Engine, Outcome, Study};
use tabtune_tune::{Direction, SearchSpace, TrialState, pruner_from_name, sampler_from_name};

use tabtune_track::registry::{open_registry, register_and_maybe_promote};
use tabtune_track::{MultiTracker, RunSpec, RunStatus};
use tabtune_train::CvReport;
use tabtune_train::nn::DeviceChoice;

use crate::data::{Input, kfold, load_training};
use crate::error::{PipelineError, Result};
use crate::export::{BundleInput, final_params, mean_rounds, write_bundle};
use crate::progress::{Progress, Task};
use crate::sweep::Registered;
use crate::sweep::attrs::{ATTR_FEATURES, ATTR_LOGLOSS_MEAN, ATTR_N_FEATURES};
use crate::sweep::storage::{DEFAULT_STORAGE, open_storage, sanitize, study_dir};
use crate::tracking::{Tracking, flat_params, flush};

/// Which way the search goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Strategy {
    /// From no feature, add the best one at a time.
    Forward,
    /// From every feature, drop the least useful one at a time.
    Backward,
}

impl Strategy {
    /// `forward` or `backward`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Forward => "forward",
            Self::Backward => "backward",
        }
    }
}

/// What a selection runs.
#[derive(Clone, Debug)]
pub struct SelectSettings {
    /// The training rows.
    pub input: Input,
    /// The tree family scoring each feature set.
    pub model: String,
    /// Its hyperparameters, as `NAME=VALUE` pairs.
    pub params: Vec<(String, String)>,
    /// Forward or backward.
    pub strategy: Strategy,
    /// Folds of each feature set's cross-validation.
    pub folds: usize,
    /// Keep at least this share of the features, in (0, 1].
    pub min_share: f64,
    /// Keep at most this share of the features, in (0, 1].
    pub max_share: f64,
    /// Study name; `None`: `<task>-select-<strategy>-<model>`. Rerunning resumes it.
    pub study: Option<String>,
    /// Study storage URL.
    pub storage: String,
    /// Seed of the splits and the model; `None`: the config's `cv.seed`.
    pub seed: Option<u64>,
    /// Where the chosen feature list goes; `None`: `reports/studies/<study>/features.json`.
    pub output: Option<PathBuf>,
    /// Where each candidate set's cross-validation is tracked (one run per set, experiment =
    /// the study): the local store, TensorBoard, and MLflow with a tracking URI.
    pub tracking: Tracking,
    /// Register the chosen set's model (fitted on every row into
    /// `checkpoints/<study>-selected`) under this name; `champion` moves to it only if it beats
    /// the current one on CV accuracy.
    pub register: Option<String>,
}

impl Default for SelectSettings {
    fn default() -> Self {
        Self {
            input: Input::default(),
            model: "gbdt-leafwise".to_owned(),
            params: Vec::new(),
            strategy: Strategy::Forward,
            folds: 3,
            min_share: 0.1,
            max_share: 0.4,
            study: None,
            storage: DEFAULT_STORAGE.to_owned(),
            seed: None,
            output: None,
            tracking: Tracking::default(),
            register: None,
        }
    }
}

/// What a selection found.
#[derive(Clone, Debug)]
pub struct SelectOutcome {
    /// The study.
    pub study: String,
    /// Its storage URL, password redacted.
    pub storage: String,
    /// The strategy.
    pub strategy: Strategy,
    /// The scoring family.
    pub model: String,
    /// The chosen features.
    pub features: Vec<String>,
    /// Features the pipeline has.
    pub n_total: usize,
    /// Fewest and most features allowed.
    pub range: (usize, usize),
    /// CV accuracy of the chosen set.
    pub accuracy: f64,
    /// CV accuracy with every feature.
    pub baseline_accuracy: f64,
    /// The best set of each size seen, `size -> (accuracy, set)`.
    pub by_size: BTreeMap<usize, (f64, Vec<String>)>,
    /// CV runs done by this invocation.
    pub evaluations: usize,
    /// Feature sets taken from earlier invocations.
    pub resumed: usize,
    /// Training rows.
    pub rows: usize,
    /// The written feature list.
    pub output: PathBuf,
    /// Runs tracked (one per feature set this invocation cross-validated).
    pub tracked_runs: usize,
    /// The chosen set's registered model, with `register`.
    pub registered: Option<Registered>,
    /// Wall seconds.
    pub seconds: f64,
}

/// Scores feature sets by cross-validation, one trial each, reusing the study's earlier
/// trials (a rerun resumes without recomputing).
struct Scorer<'a> {
    study: Study,
    table: &'a Table,
    spec: &'a PreprocessorSpec,
    params: &'a ModelParams,
    kfold: KFold,
    done: HashMap<Vec<String>, f64>,
    /// The CV reports of the sets this invocation scored (the chosen set's becomes the
    /// registered model's metrics).
    reports: HashMap<Vec<String>, CvReport>,
    evaluated: usize,
    bar: Box<dyn Task>,
    tracker: MultiTracker,
    /// Params every tracked run records: the family's, the strategy, the family.
    run_params: Value,
}

impl Scorer<'_> {
    fn score(&mut self, set: &[String]) -> Result<f64> {
        let mut key = set.to_vec();
        key.sort();
        if let Some(v) = self.done.get(&key) {
            return Ok(*v);
        }
        let mut h = self.study.ask()?;
        h.set_user_attr(ATTR_FEATURES, json!(set))?;
        h.set_user_attr(ATTR_N_FEATURES, json!(set.len()))?;
        let spec = self.spec.clone().with_features(set.to_vec());
        match cross_validate(self.table, &spec, self.params, self.kfold, &mut |_| {}) {
            Ok(report) => {
                h.set_user_attr(ATTR_LOGLOSS_MEAN, json!(report.logloss_mean))?;
                self.track(h.number(), set, &report);
                h.tell(Outcome::Complete(report.accuracy_mean))?;
                self.done.insert(key.clone(), report.accuracy_mean);
                self.reports.insert(key, report.clone());
                self.evaluated += 1;
                self.bar.inc(1);
                Ok(report.accuracy_mean)
            }
            Err(e) => {
                h.tell(Outcome::Fail(e.to_string()))?;
                Err(e.into())
            }
        }
    }
}

impl Scorer<'_> {
    /// One tracked run per candidate set: the set and its size as params, the CV means and
    /// per-fold metrics (step = fold).
    fn track(&self, number: u64, set: &[String], report: &CvReport) {
        if self.tracker.is_empty() {
            return;
        }
        let study = self.study.name();
        let spec = RunSpec::new(study, format!("trial-{number}-{}-features", set.len()))
            .trial(study, number)
            .params_json(&self.run_params)
            .param("features", set.join(","))
            .param("n_features", set.len())
            .tag("tabtune.command", "select");
        let mut run = self.tracker.start_run(&spec);
        for (step, fold) in report.folds.iter().enumerate() {
            run.log_metrics(
                step as u64,
                &[
                    ("fold_accuracy", fold.accuracy),
                    ("fold_logloss", fold.logloss),
                ],
            );
        }
        run.log_metrics(
            0,
            &[
                ("cv_accuracy_mean", report.accuracy_mean),
                ("cv_accuracy_std", report.accuracy_std),
                ("cv_logloss_mean", report.logloss_mean),
                ("n_features", set.len() as f64),
                ("seconds", report.seconds),
            ],
        );
        run.end(RunStatus::Finished);
    }
}

/// The best set of each size seen, as `(score, set)`.
type BySize = BTreeMap<usize, (f64, Vec<String>)>;

fn keep_best(by_size: &mut BySize, score: f64, set: &[String]) {
    let slot = by_size
        .entry(set.len())
        .or_insert((f64::NEG_INFINITY, Vec::new()));
    if score > slot.0 {
        *slot = (score, set.to_vec());
    }
}

/// Forward: from nothing, add the feature that helps most, up to `max_k` features.
fn forward(scorer: &mut Scorer<'_>, all: &[String], max_k: usize) -> Result<BySize> {
    let mut by_size = BySize::new();
    let mut current: Vec<String> = Vec::new();
    while current.len() < max_k {
        let mut best: Option<(f64, String)> = None;
        for f in all.iter().filter(|f| !current.contains(f)) {
            let mut set = current.clone();
            set.push(f.clone());
            let s = scorer.score(&set)?;
            if best.as_ref().is_none_or(|(b, _)| s > *b) {
                best = Some((s, f.clone()));
            }
        }
        let Some((s, f)) = best else { break };
        current.push(f);
        keep_best(&mut by_size, s, &current);
        tracing::info!(
            "{} features: accuracy {s:.5} (+{})",
            current.len(),
            current.last().map_or("", String::as_str)
        );
    }
    Ok(by_size)
}

/// Backward: from every feature, drop the one whose removal hurts least, down to `min_k`.
fn backward(scorer: &mut Scorer<'_>, all: &[String], min_k: usize) -> Result<BySize> {
    let mut by_size = BySize::new();
    let mut current: Vec<String> = all.to_vec();
    let s = scorer.score(&current)?;
    keep_best(&mut by_size, s, &current);
    while current.len() > min_k {
        let mut best: Option<(f64, usize)> = None;
        for i in 0..current.len() {
            let mut set = current.clone();
            set.remove(i);
            let s = scorer.score(&set)?;
            if best.as_ref().is_none_or(|(b, _)| s > *b) {
                best = Some((s, i));
            }
        }
        let Some((s, i)) = best else { break };
        let dropped = current.remove(i);
        keep_best(&mut by_size, s, &current);
        tracing::info!("{} features: accuracy {s:.5} (-{dropped})", current.len());
    }
    Ok(by_size)
}

/// CV evaluations a strategy needs (for the progress counter).
fn planned(n: usize, min_k: usize, max_k: usize, strategy: Strategy) -> u64 {
    let n = n as u64;
    match strategy {
        Strategy::Forward => (0..max_k as u64).map(|i| n - i).sum(),
        Strategy::Backward => 1 + (min_k as u64 + 1..=n).sum::<u64>(),
    }
}

impl SelectSettings {
    /// Checks the shares and the family.
    pub fn check(&self) -> Result<Family> {
        for (name, v) in [("min_share", self.min_share), ("max_share", self.max_share)] {
            if !(v > 0.0 && v <= 1.0) {
                return Err(PipelineError::setting(name, v, "in (0, 1]"));
            }
        }
        if self.min_share > self.max_share {
            return Err(PipelineError::setting(
                "min_share",
                self.min_share,
                format!("at most max_share ({})", self.max_share),
            ));
        }
        let family = Family::parse(&self.model)?;
        if family.is_neural() {
            return Err(PipelineError::setting(
                "model",
                family.name(),
                "a tree family (feature selection runs the tree families)",
            ));
        }
        Ok(family)
    }
}

/// Runs the selection and writes the chosen feature list (`{"features": [...], ...}`).
pub fn select(
    config: &Config,
    settings: &SelectSettings,
    progress: &dyn Progress,
) -> Result<SelectOutcome> {
    let start = Instant::now();
    let family = settings.check()?;
    let seed = settings.seed.unwrap_or(config.cv.seed);
    let mut overrides = vec![("seed".to_owned(), seed.to_string())];
    overrides.extend(settings.params.iter().cloned());
    let params = family.params(&overrides)?;
    let kfold = kfold(config, Some(settings.folds), Some(seed));
    let training = load_training(config, &settings.input, progress)?;
    let table = training.table_with(None)?;
    let spec = PreprocessorSpec::from_config(config);
    if let Some(labels) = table.target.as_deref() {
        kfold.split(labels, spec.schema().classes().len())?;
    }
    let all = spec.fit(&table)?.output;
    let n = all.len();
    let min_k = ((settings.min_share * n as f64).ceil() as usize).clamp(1, n);
    let max_k = ((settings.max_share * n as f64).floor() as usize).clamp(min_k, n);

    let strategy = settings.strategy.name();
    let study_name = settings
        .study
        .clone()
        .unwrap_or_else(|| format!("{}-select-{strategy}-{}", config.name, family.name()));
    let storage = open_storage(&settings.storage)?;
    let space = SearchSpace::new(
        Vec::new(),
        BTreeMap::from([
            ("family".to_owned(), json!(family.name())),
            ("strategy".to_owned(), json!(strategy)),
        ]),
        Some(Direction::Maximize),
        Some("accuracy".into()),
    )?;
    let engine = Engine::new(
        space.clone(),
        sampler_from_name("random", seed, &space)?,
        pruner_from_name("none")?,
    );
    let study = Study::open(storage, &study_name, Direction::Maximize, engine)?;
    // Earlier trials of the same study: a rerun picks up where it stopped.
    let mut done = HashMap::new();
    for t in study.trials()? {
        if t.state != TrialState::Complete {
            continue;
        }
        if let (Some(Value::Array(fs)), Some(v)) = (t.user_attrs.get(ATTR_FEATURES), t.value) {
            let mut key: Vec<String> = fs
                .iter()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect();
            key.sort();
            done.insert(key, v);
        }
    }
    let resumed = done.len();
    let mut run_params = flat_params(&params);
    run_params["family"] = json!(family.name());
    run_params["strategy"] = json!(strategy);
    let mut scorer = Scorer {
        study,
        table: &table,
        spec: &spec,
        params: &params,
        kfold,
        done,
        reports: HashMap::new(),
        evaluated: 0,
        tracker: settings.tracking.tracker(),
        run_params,
        bar: progress.counter(
            planned(n, min_k, max_k, settings.strategy),
            0,
            "feature sets",
        ),
    };
    let by_size = match settings.strategy {
        Strategy::Forward => forward(&mut scorer, &all, max_k),
        Strategy::Backward => backward(&mut scorer, &all, min_k),
    }?;
    // The best set within the allowed sizes; ties go to the smaller set.
    let (accuracy, chosen) = by_size
        .range(min_k..=max_k)
        .max_by(|a, b| a.1.0.total_cmp(&b.1.0).then(b.0.cmp(a.0)))
        .map(|(_, v)| v.clone())
        .ok_or(PipelineError::NoFeatureSet {
            min: min_k,
            max: max_k,
        })?;
    let baseline = scorer.score(&all)?;
    flush(&scorer.tracker);
    let registered = match &settings.register {
        Some(name) => Some(register_selected(
            &Selected {
                config,
                settings,
                family,
                params: &params,
                spec: &spec,
                table: &table,
                input: &training.path,
            },
            &mut scorer,
            &chosen,
            name,
            progress,
        )?),
        None => None,
    };
    let output = settings
        .output
        .clone()
        .unwrap_or_else(|| study_dir(&study_name).join("features.json"));
    let file = json!({"features": chosen, "accuracy": accuracy, "study": study_name, "model": family.name()});
    write_bytes_atomic(
        &output,
        serde_json::to_string_pretty(&file)
            .expect("JSON values always serialize")
            .as_bytes(),
    )?;
    Ok(SelectOutcome {
        study: study_name,
        storage: redact(&settings.storage),
        strategy: settings.strategy,
        model: family.name().to_owned(),
        features: chosen,
        n_total: n,
        range: (min_k, max_k),
        accuracy,
        baseline_accuracy: baseline,
        by_size,
        tracked_runs: if scorer.tracker.is_empty() {
            0
        } else {
            scorer.evaluated
        },
        registered,
        evaluations: scorer.evaluated,
        resumed,
        rows: table.n_rows(),
        output,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// What the chosen set's model is fitted from.
struct Selected<'a> {
    config: &'a Config,
    settings: &'a SelectSettings,
    family: Family,
    params: &'a ModelParams,
    spec: &'a PreprocessorSpec,
    table: &'a Table,
    input: &'a Path,
}

/// Fits the chosen set's model on every row into `checkpoints/<study>-selected` (for the
/// folds' mean rounds) and registers it as `name`, moving `champion` only if its CV accuracy
/// beats the current holder's.
fn register_selected(
    s: &Selected<'_>,
    scorer: &mut Scorer<'_>,
    chosen: &[String],
    name: &str,
    progress: &dyn Progress,
) -> Result<Registered> {
    let mut key = chosen.to_vec();
    key.sort();
    let spec = s.spec.clone().with_features(chosen.to_vec());
    // A set scored by an earlier invocation has no report here: cross-validate it once more.
    let report = match scorer.reports.get(&key) {
        Some(r) => r.clone(),
        None => cross_validate(s.table, &spec, s.params, scorer.kfold, &mut |_| {})?,
    };
    let metrics = BTreeMap::from([
        ("cv_accuracy_mean".to_owned(), report.accuracy_mean),
        ("cv_accuracy_std".to_owned(), report.accuracy_std),
        ("cv_logloss_mean".to_owned(), report.logloss_mean),
        ("cv_folds".to_owned(), report.folds.len() as f64),
        ("n_features".to_owned(), chosen.len() as f64),
    ]);
    let dir = PathBuf::from(format!(
        "checkpoints/{}-selected",
        sanitize(scorer.study.name())
    ));
    let bundle = write_bundle(
        &BundleInput {
            family: s.family,
            params: &final_params(s.params, mean_rounds(&report)),
            table: s.table,
            spec: &spec,
            input: s.input,
            metrics,
            device: &DeviceChoice::cpu("tree families run on the CPU"),
        },
        &dir,
        progress,
    )?;
    let registry = open_registry(s.settings.tracking.uri.as_deref())?;
    let (version, promotion) = register_and_maybe_promote(
        registry.as_ref(),
        name,
        &bundle,
        "cv_accuracy_mean",
        Direction::Maximize,
    )?;
    tracing::info!(
        "registered {} as {name} version {} ({}; task {})",
        bundle.display(),
        version.version,
        promotion.reason,
        s.config.name
    );
    Ok(Registered {
        name: name.to_owned(),
        bundle,
        version,
        promotion,
    })
}

/// Reads a feature list written by `select` (`{"features": [...]}`) or a plain JSON list.
pub fn read_features(path: &Path) -> Result<Vec<String>> {
    let bad = |reason: String| PipelineError::FeatureList {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| bad(format!("cannot read the feature list: {e}")))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let list = match &value {
        Value::Array(a) => a,
        Value::Object(o) => o
            .get("features")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("expected a `features` list".into()))?,
        _ => {
            return Err(bad(
                "expected a JSON list of feature names or {\"features\": [...]}".into(),
            ));
        }
    };
    list.iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| bad(format!("feature names are strings, found {v}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_lists_are_read_in_both_shapes_and_bad_ones_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a.json");
        std::fs::write(&a, r#"{"features": ["BMI", "Age"]}"#).expect("write");
        assert_eq!(read_features(&a).expect("valid"), ["BMI", "Age"]);
        std::fs::write(&a, r#"["x"]"#).expect("write");
        assert_eq!(read_features(&a).expect("valid"), ["x"]);
        for (text, needle) in [
            ("nope", "not JSON"),
            (r#"{"f": 1}"#, "`features`"),
            ("[1]", "strings"),
            ("3", "JSON list"),
        ] {
            std::fs::write(&a, text).expect("write");
            let e = read_features(&a).expect_err(text);
            assert!(
                e.to_string().contains(needle) && e.to_string().contains("a.json"),
                "{e}"
            );
            assert!(e.is_bad_input());
        }
        let e = read_features(&dir.path().join("missing.json")).expect_err("missing");
        assert!(e.to_string().contains("missing.json"), "{e}");
    }

    #[test]
    fn shares_and_families_are_checked() {
        let mut s = SelectSettings {
            min_share: 0.5,
            max_share: 0.2,
            ..SelectSettings::default()
        };
        assert!(
            s.check()
                .expect_err("min > max")
                .to_string()
                .contains("min_share")
        );
        s.min_share = 0.0;
        assert!(
            s.check()
                .expect_err("zero")
                .to_string()
                .contains("min_share")
        );
        s.min_share = 0.1;
        s.max_share = 0.4;
        s.model = "mlp".into();
        assert!(
            s.check()
                .expect_err("neural")
                .to_string()
                .contains("tree family")
        );
    }
}
