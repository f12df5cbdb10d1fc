//! `tabtune select`: sequential forward or backward feature selection, run as a study (every
//! candidate feature set is one trial, so the search is stored, resumable and readable by
//! Optuna), keeping between `--min-share` and `--max-share` of the features (10% .. 40% by
//! default, as the original research did).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use tabtune_features::io::write_bytes_atomic;
use tabtune_features::{KFold, PreprocessorSpec, Table, TargetPresence};
use tabtune_train::{Family, ModelParams, cross_validate};
use tabtune_tune::sampler_from_name;
use tabtune_tune::storage::redact;
use tabtune_tune::study::{Engine, Outcome, Study};
use tabtune_tune::{Direction, SearchSpace, TrialState, pruner_from_name};

use crate::cli::{SelectArgs, SelectStrategy};
use crate::commands::sweep::{open_storage, study_dir};
use crate::context::Context;
use crate::output;

/// The user attribute holding a trial's feature set.
pub const ATTR_FEATURES: &str = "features";

/// Scores feature sets by cross-validation, one trial each, reusing the study's earlier
/// trials (a rerun resumes without recomputing).
struct Scorer<'a> {
    study: Study,
    table: &'a Table,
    spec: &'a PreprocessorSpec,
    params: &'a ModelParams,
    kfold: KFold,
    done: HashMap<Vec<String>, f64>,
    evaluated: usize,
    bar: ProgressBar,
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
        h.set_user_attr("n_features", json!(set.len()))?;
        let spec = self.spec.clone().with_features(set.to_vec());
        match cross_validate(self.table, &spec, self.params, self.kfold, &mut |_| {}) {
            Ok(report) => {
                h.set_user_attr("logloss_mean", json!(report.logloss_mean))?;
                h.tell(Outcome::Complete(report.accuracy_mean))?;
                self.done.insert(key, report.accuracy_mean);
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

/// CV evaluations a strategy needs (for the progress bar).
fn planned(n: usize, min_k: usize, max_k: usize, strategy: SelectStrategy) -> u64 {
    let n = n as u64;
    match strategy {
        SelectStrategy::Forward => (0..max_k as u64).map(|i| n - i).sum(),
        SelectStrategy::Backward => 1 + (min_k as u64 + 1..=n).sum::<u64>(),
    }
}

/// Runs the command.
pub fn run(ctx: &Context, args: &SelectArgs) -> Result<()> {
    let start = Instant::now();
    let config = &ctx.config;
    for (name, v) in [
        ("--min-share", args.min_share),
        ("--max-share", args.max_share),
    ] {
        if !(v > 0.0 && v <= 1.0) {
            invalid!("{name} must be in (0, 1], got {v}");
        }
    }
    if args.min_share > args.max_share {
        invalid!(
            "--min-share ({}) must not exceed --max-share ({})",
            args.min_share,
            args.max_share
        );
    }
    let family = Family::parse(&args.model)?;
    if family.is_neural() {
        invalid!(
            "feature selection runs the tree families (got `{}`)",
            family.name()
        );
    }
    let seed = args.seed.unwrap_or(config.cv.seed);
    let mut overrides = vec![("seed".to_owned(), seed.to_string())];
    overrides.extend(args.params.iter().cloned());
    let params = family.params(&overrides)?;
    let kfold = KFold {
        folds: args.folds,
        repeats: 1,
        seed,
        stratify: config.cv.stratify,
    };
    let loaded = ctx.load(&args.input, TargetPresence::Required)?;
    let mut table = loaded.table;
    if config.transforms.dedup {
        table = table.dedup().0;
    }
    let spec = PreprocessorSpec::from_config(config);
    if let Some(labels) = table.target.as_deref() {
        kfold.split(labels, spec.schema().classes().len())?;
    }
    let all = spec.fit(&table)?.output;
    let n = all.len();
    let min_k = ((args.min_share * n as f64).ceil() as usize).clamp(1, n);
    let max_k = ((args.max_share * n as f64).floor() as usize).clamp(min_k, n);

    let strategy = match args.strategy {
        SelectStrategy::Forward => "forward",
        SelectStrategy::Backward => "backward",
    };
    let study_name = args
        .study
        .clone()
        .unwrap_or_else(|| format!("{}-select-{strategy}-{}", config.name, family.name()));
    let storage = open_storage(&args.storage)?;
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
    let bar = if ctx.progress {
        let b = ProgressBar::new(planned(n, min_k, max_k, args.strategy));
        b.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} feature sets [{elapsed}<{eta}]")
                .expect("the template is valid"),
        );
        b.enable_steady_tick(Duration::from_millis(200));
        b
    } else {
        ProgressBar::hidden()
    };
    let mut scorer = Scorer {
        study,
        table: &table,
        spec: &spec,
        params: &params,
        kfold,
        done,
        evaluated: 0,
        bar,
    };
    let by_size = match args.strategy {
        SelectStrategy::Forward => forward(&mut scorer, &all, max_k),
        SelectStrategy::Backward => backward(&mut scorer, &all, min_k),
    };
    scorer.bar.finish_and_clear();
    let by_size = by_size?;
    // The best set within the allowed sizes; ties go to the smaller set.
    let Some((k, (accuracy, chosen))) = by_size
        .range(min_k..=max_k)
        .max_by(|a, b| a.1.0.total_cmp(&b.1.0).then(b.0.cmp(a.0)))
        .map(|(k, v)| (*k, v.clone()))
    else {
        invalid!("no feature set between {min_k} and {max_k} features was evaluated");
    };
    let baseline = scorer.score(&all)?;
    let out_path = args
        .output
        .clone()
        .unwrap_or_else(|| study_dir(&study_name).join("features.json"));
    let file = json!({"features": chosen, "accuracy": accuracy, "study": study_name, "model": family.name()});
    write_bytes_atomic(&out_path, serde_json::to_string_pretty(&file)?.as_bytes())?;
    let path_of: Vec<Value> = by_size
        .iter()
        .map(|(k, (s, set))| json!({"n_features": k, "accuracy": s, "features": set}))
        .collect();
    if ctx.json {
        output::json(&json!({
            "study": study_name,
            "storage": redact(&args.storage),
            "strategy": strategy,
            "model": family.name(),
            "features": chosen,
            "n_features": k,
            "n_total": n,
            "accuracy": accuracy,
            "baseline_accuracy": baseline,
            "evaluations": scorer.evaluated,
            "resumed": resumed,
            "path": path_of,
            "output": out_path,
            "seconds": start.elapsed().as_secs_f64(),
        }));
    } else {
        let rows: Vec<Vec<String>> = by_size
            .iter()
            .map(|(k, (s, _))| {
                let mark = if *k == chosen.len() { "<- chosen" } else { "" };
                vec![k.to_string(), format!("{s:.5}"), mark.to_owned()]
            })
            .collect();
        let mut s = format!(
            "{strategy} selection with {} on {} rows: {n} features, keeping {min_k}..{max_k}\n\n",
            family.name(),
            table.n_rows()
        );
        s.push_str(&output::table(&["features", "accuracy", ""], &rows));
        s.push_str(&format!(
            "\nchosen {k} features (accuracy {accuracy:.5}; all {n}: {baseline:.5}): {}\nwritten to {} (use with `tabtune sweep --features`)\n",
            chosen.join(", "),
            out_path.display()
        ));
        output::text(&s);
    }
    Ok(())
}

/// Reads a feature list written by `select` (`{"features": [...]}`) or a plain JSON list.
pub fn read_features(path: &std::path::Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        tabtune_tune::TuneError::Invalid(format!(
            "{}: cannot read the feature list: {e}",
            path.display()
        ))
    })?;
    let bad = |why: &str| -> anyhow::Error {
        tabtune_tune::TuneError::Invalid(format!("{}: {why}", path.display())).into()
    };
    let value: Value = serde_json::from_str(&text).map_err(|e| bad(&format!("not JSON: {e}")))?;
    let list = match &value {
        Value::Array(a) => a,
        Value::Object(o) => o
            .get("features")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("expected a `features` list"))?,
        _ => {
            return Err(bad(
                "expected a JSON list of feature names or {\"features\": [...]}",
            ));
        }
    };
    list.iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| bad(&format!("feature names are strings, found {v}")))
        })
        .collect()
}
