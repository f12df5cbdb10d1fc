//! Experiment settings of a task config: the `[run]` section, which `tabtune run` follows.
//!
//! The task config's loader (`tabtune-features`) keeps `[run]` as written; this module is its
//! schema (kebab-case keys, unknown keys refused) and its resolution into [`RunSettings`],
//! with errors that name the key and the config file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tabtune_features::{Config, FeaturesError};

use crate::decision::DecisionOptions;
use crate::error::Result;
use crate::export::FinalModel;
use crate::select::Strategy;

/// The largest time budget of a run: a year, in minutes.
pub const MAX_BUDGET_MINUTES: f64 = 525_600.0;

/// Resolved `[run]`: the plan of `tabtune run`.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSettings {
    /// Minutes the whole run may take (> 0).
    pub budget_minutes: f64,
    /// The registered model name of the champion.
    pub register: String,
    /// Decision-layer candidates per sweep: its best `top_k` complete trials (0 = no
    /// decision layer).
    pub top_k: usize,
    /// Which decision-layer methods compete (`decision = ["greedy", "stack", "biases"]`).
    pub decision: DecisionOptions,
    /// The sweeps, run in order.
    pub sweeps: Vec<RunSweep>,
    /// What the champion and the decision layer's members ship as.
    pub final_model: FinalModel,
    /// Move the sweeps' time toward the families that are winning after a first round.
    pub reallocate: bool,
    /// Share of the sweep time spent in the first round (by the sweeps' own shares) before
    /// the rest is reallocated, in (0, 1].
    pub first_round: f64,
    /// The preset applied (`None`: `[run]` as written).
    pub preset: Option<String>,
    /// The config's presets, by name.
    pub presets: BTreeMap<String, Preset>,
    /// A feature-selection step before the sweeps (`select = "forward"` or `"backward"`): its
    /// chosen list feeds every sweep. `None` (`"none"`, the default): every feature.
    pub select: Option<Strategy>,
    /// The tree family scoring candidate sets (`select-model`, default `decision-tree`).
    pub select_model: String,
}

/// A `[run.presets.<name>]` table: what `tabtune run --preset <name>` changes in `[run]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Preset {
    /// Minutes the run may take.
    pub budget_minutes: Option<f64>,
    /// Decision-layer candidates per sweep.
    pub top_k: Option<usize>,
    /// What ships.
    pub final_model: Option<FinalModel>,
    /// Reallocate the sweep time after a first round.
    pub reallocate: Option<bool>,
    /// Only these sweeps (their `space` paths), in `[run]`'s order.
    pub sweeps: Option<Vec<PathBuf>>,
    /// Trials of each kept sweep multiplied by this (at least 1 each).
    pub trials_scale: Option<f64>,
    /// Decision-layer methods.
    pub decision: Option<DecisionOptions>,
}

/// `[run.presets.<name>]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct PresetFile {
    budget_minutes: Option<f64>,
    top_k: Option<i64>,
    #[serde(rename = "final")]
    final_model: Option<String>,
    reallocate: Option<bool>,
    sweeps: Option<Vec<String>>,
    trials_scale: Option<f64>,
    decision: Option<Vec<String>>,
}

impl RunSettings {
    /// These settings with preset `name` applied (its keys replace `[run]`'s).
    pub fn with_preset(&self, name: &str, config_path: &Path) -> Result<Self> {
        let Some(p) = self.presets.get(name) else {
            let known: Vec<&str> = self.presets.keys().map(String::as_str).collect();
            return Err(err(
                config_path,
                format!("run.presets.{name}"),
                format!(
                    "no such preset; the config has {}",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            )
            .into());
        };
        let mut out = self.clone();
        out.preset = Some(name.to_owned());
        if let Some(b) = p.budget_minutes {
            out.budget_minutes = b;
        }
        if let Some(k) = p.top_k {
            out.top_k = k;
        }
        if let Some(f) = p.final_model {
            out.final_model = f;
        }
        if let Some(r) = p.reallocate {
            out.reallocate = r;
        }
        if let Some(keep) = &p.sweeps {
            out.sweeps.retain(|s| keep.contains(&s.space));
        }
        if let Some(d) = &p.decision {
            out.decision = d.clone();
        }
        if let Some(scale) = p.trials_scale {
            for s in &mut out.sweeps {
                s.n_trials = ((s.n_trials as f64 * scale).round() as u64).max(1);
            }
        }
        Ok(out)
    }
}

/// One `[[run.sweeps]]` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSweep {
    /// The search space file.
    pub space: PathBuf,
    /// Trials on a CPU-only machine.
    pub n_trials: u64,
    /// Share of the sweep time budget in (0, 1].
    pub share: f64,
    /// Pruner name (checked by the tuner).
    pub pruner: String,
    /// Sampler name (checked by the tuner).
    pub sampler: String,
    /// Trials when a GPU trains them.
    pub gpu_n_trials: u64,
    /// Trials trained together as one population on a GPU (1 = one at a time).
    pub gpu_population: usize,
}

/// `[run]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RunFile {
    /// Default: 12.
    budget_minutes: Option<f64>,
    /// Default: the task name.
    register: Option<String>,
    /// Default: 5.
    top_k: Option<i64>,
    /// Default: none (then `tabtune run` needs at least one).
    sweeps: Option<Vec<RunSweepFile>>,
    /// Default: "folds".
    #[serde(rename = "final")]
    final_model: Option<String>,
    /// Default: true.
    reallocate: Option<bool>,
    /// Default: 0.5.
    first_round: Option<f64>,
    /// Default: none (`[run]` as written).
    preset: Option<String>,
    /// Default: none.
    presets: Option<BTreeMap<String, PresetFile>>,
    /// Default: `["greedy", "stack", "biases"]`.
    decision: Option<Vec<String>>,
    /// Default: "none".
    select: Option<String>,
    /// Default: "decision-tree".
    select_model: Option<String>,
}

/// One `[[run.sweeps]]` entry as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RunSweepFile {
    /// (required) Path of the search space.
    space: Option<String>,
    /// Default: 20.
    n_trials: Option<i64>,
    /// Default: the rest of the budget split evenly.
    share: Option<f64>,
    /// Default: "median".
    pruner: Option<String>,
    /// Default: "tpe".
    sampler: Option<String>,
    /// Default: n-trials.
    gpu_n_trials: Option<i64>,
    /// Default: 1.
    gpu_population: Option<i64>,
}

fn err(path: &Path, key: impl Into<String>, message: impl Into<String>) -> FeaturesError {
    FeaturesError::ConfigValue {
        path: path.to_owned(),
        key: key.into(),
        message: message.into(),
    }
}

impl RunSettings {
    /// The `[run]` section of `config`, resolved (defaults when the config has none).
    pub fn from_config(config: &Config) -> Result<Self> {
        let path = config.path.as_path();
        let file: RunFile = match &config.run {
            Some(table) => table
                .clone()
                .try_into()
                .map_err(|e| err(path, "run", e.to_string().trim_end().to_owned()))?,
            None => RunFile::default(),
        };
        Ok(resolve(path, &config.name, file)?)
    }
}

fn resolve(
    path: &Path,
    task: &str,
    file: RunFile,
) -> std::result::Result<RunSettings, FeaturesError> {
    let budget_minutes = file.budget_minutes.unwrap_or(12.0);
    if !(budget_minutes > 0.0 && budget_minutes <= MAX_BUDGET_MINUTES) {
        return Err(err(
            path,
            "run.budget-minutes",
            format!("{budget_minutes}, expected a number of minutes in (0, {MAX_BUDGET_MINUTES}]"),
        ));
    }
    let top_k = file.top_k.unwrap_or(5);
    let top_k = usize::try_from(top_k).map_err(|_| {
        err(
            path,
            "run.top-k",
            format!("{top_k}, expected an integer ≥ 0"),
        )
    })?;
    let register = file.register.unwrap_or_else(|| task.to_owned());
    if register.trim().is_empty() || register.contains(['/', '@', '\\']) {
        return Err(err(
            path,
            "run.register",
            format!("`{register}`, expected a model name without '/', '\\' or '@'"),
        ));
    }
    let entries = file.sweeps.unwrap_or_default();
    let given: f64 = entries.iter().filter_map(|s| s.share).sum();
    let unset = entries.iter().filter(|s| s.share.is_none()).count();
    let mut sweeps = Vec::with_capacity(entries.len());
    for (i, s) in entries.into_iter().enumerate() {
        let key = |k: &str| format!("run.sweeps[{i}].{k}");
        let space = PathBuf::from(
            s.space
                .ok_or_else(|| err(path, key("space"), "is required but missing"))?,
        );
        let count =
            |v: Option<i64>, k: &str, default: i64| -> std::result::Result<u64, FeaturesError> {
                let v = v.unwrap_or(default);
                u64::try_from(v)
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or_else(|| err(path, key(k), format!("{v}, expected an integer ≥ 1")))
            };
        let n_trials = count(s.n_trials, "n-trials", 20)?;
        let gpu_n_trials = count(s.gpu_n_trials, "gpu-n-trials", n_trials as i64)?;
        let gpu_population = count(s.gpu_population, "gpu-population", 1)? as usize;
        let share = match s.share {
            Some(x) if x > 0.0 && x <= 1.0 => x,
            Some(x) => {
                return Err(err(
                    path,
                    key("share"),
                    format!("{x}, expected a number in (0, 1]"),
                ));
            }
            None => ((1.0 - given) / unset as f64).max(0.0),
        };
        if share <= 0.0 {
            return Err(err(
                path,
                key("share"),
                "is unset but the other sweeps' shares already add up to 1",
            ));
        }
        sweeps.push(RunSweep {
            space,
            n_trials,
            share,
            pruner: s.pruner.unwrap_or_else(|| "median".into()),
            sampler: s.sampler.unwrap_or_else(|| "tpe".into()),
            gpu_n_trials,
            gpu_population,
        });
    }
    if given > 1.0 + 1e-9 {
        return Err(err(
            path,
            "run.sweeps",
            format!("the shares add up to {given}, expected at most 1"),
        ));
    }
    let final_model = parse_final(path, "run.final", file.final_model.as_deref())?
        .unwrap_or(FinalModel::Folds { seeds: 1 });
    let first_round = file.first_round.unwrap_or(0.5);
    if !(first_round > 0.0 && first_round <= 1.0) {
        return Err(err(
            path,
            "run.first-round",
            format!("{first_round}, expected a share in (0, 1]"),
        ));
    }
    let mut presets = BTreeMap::new();
    for (name, p) in file.presets.unwrap_or_default() {
        let key = |k: &str| format!("run.presets.{name}.{k}");
        if let Some(b) = p.budget_minutes
            && !(b > 0.0 && b <= MAX_BUDGET_MINUTES)
        {
            return Err(err(
                path,
                key("budget-minutes"),
                format!("{b}, expected a number of minutes in (0, {MAX_BUDGET_MINUTES}]"),
            ));
        }
        let top_k =
            match p.top_k {
                Some(k) => Some(usize::try_from(k).map_err(|_| {
                    err(path, key("top-k"), format!("{k}, expected an integer ≥ 0"))
                })?),
                None => None,
            };
        if let Some(sc) = p.trials_scale
            && !(sc.is_finite() && sc > 0.0)
        {
            return Err(err(
                path,
                key("trials-scale"),
                format!("{sc}, expected a number > 0"),
            ));
        }
        let kept = p
            .sweeps
            .map(|v| v.into_iter().map(PathBuf::from).collect::<Vec<_>>());
        if let Some(kept) = &kept
            && let Some(unknown) = kept.iter().find(|k| !sweeps.iter().any(|s| &s.space == *k))
        {
            return Err(err(
                path,
                key("sweeps"),
                format!(
                    "{} is not the space of any [[run.sweeps]] entry",
                    unknown.display()
                ),
            ));
        }
        presets.insert(
            name.clone(),
            Preset {
                budget_minutes: p.budget_minutes,
                top_k,
                final_model: parse_final(path, &key("final"), p.final_model.as_deref())?,
                reallocate: p.reallocate,
                sweeps: kept,
                trials_scale: p.trials_scale,
                decision: parse_decision(path, &key("decision"), p.decision.as_deref())?,
            },
        );
    }
    if let Some(name) = &file.preset
        && !presets.contains_key(name)
    {
        return Err(err(
            path,
            "run.preset",
            format!("`{name}` is not a [run.presets.*] table"),
        ));
    }
    let decision =
        parse_decision(path, "run.decision", file.decision.as_deref())?.unwrap_or_default();
    let select = match file.select.as_deref().unwrap_or("none") {
        "none" => None,
        "forward" => Some(Strategy::Forward),
        "backward" => Some(Strategy::Backward),
        other => {
            return Err(err(
                path,
                "run.select",
                format!("`{other}`, expected none, forward or backward"),
            ));
        }
    };
    let select_model = file
        .select_model
        .unwrap_or_else(|| "decision-tree".to_owned());
    match tabtune_train::Family::parse(&select_model) {
        Ok(f) if !f.is_neural() => {}
        _ => {
            return Err(err(
                path,
                "run.select-model",
                format!(
                    "`{select_model}`, expected a tree family (decision-tree, gbdt-leafwise, ...)"
                ),
            ));
        }
    }
    Ok(RunSettings {
        budget_minutes,
        register,
        top_k,
        decision,
        sweeps,
        final_model,
        reallocate: file.reallocate.unwrap_or(true),
        first_round,
        preset: file.preset,
        presets,
        select,
        select_model,
    })
}

/// The decision-layer methods named in a `decision` list, if given: any of "greedy",
/// "stack" and "biases" (the best single trial always competes).
fn parse_decision(
    path: &Path,
    key: &str,
    list: Option<&[String]>,
) -> std::result::Result<Option<DecisionOptions>, FeaturesError> {
    let Some(list) = list else {
        return Ok(None);
    };
    let mut o = DecisionOptions {
        greedy: false,
        stack: false,
        biases: false,
        ..DecisionOptions::default()
    };
    for name in list {
        match name.as_str() {
            "greedy" => o.greedy = true,
            "stack" => o.stack = true,
            "biases" => o.biases = true,
            other => {
                return Err(err(
                    path,
                    key,
                    format!("`{other}`, expected any of \"greedy\", \"stack\", \"biases\""),
                ));
            }
        }
    }
    Ok(Some(o))
}

/// A `final` value, if given.
fn parse_final(
    path: &Path,
    key: &str,
    text: Option<&str>,
) -> std::result::Result<Option<FinalModel>, FeaturesError> {
    text.map(|t| {
        FinalModel::parse(t).ok_or_else(|| {
            err(
                path,
                key,
                format!(
                    "`{t}`, expected \"folds\", \"folds:N\" (N model seeds, 1..=16) or \"refit\""
                ),
            )
        })
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = include_str!("../../../configs/obesity.toml");

    fn parse(text: &str) -> Result<RunSettings> {
        let config = Config::from_toml(text, Path::new("configs/test.toml"))?;
        RunSettings::from_config(&config)
    }

    fn message(text: &str) -> String {
        parse(text).expect_err("invalid").to_string()
    }

    /// The default config without its `[run]` tables (they are last in the file).
    fn strip_run() -> String {
        let at = DEFAULT
            .find("\n[run]")
            .expect("the default config has [run]");
        DEFAULT[..at].to_owned()
    }

    #[test]
    fn the_run_plan_resolves_with_defaults_and_shares() {
        let run = parse(DEFAULT).expect("default config is valid");
        assert!(!run.sweeps.is_empty(), "the default config plans sweeps");
        let total: f64 = run.sweeps.iter().map(|s| s.share).sum();
        assert!(total <= 1.0 + 1e-9, "{total}");
        assert_eq!(run.register, "obesity");
        let text = format!(
            "{}\n[run]\nbudget-minutes = 3\n[[run.sweeps]]\nspace = \"a.toml\"\nshare = 0.25\n[[run.sweeps]]\nspace = \"b.toml\"\n",
            strip_run()
        );
        let run = parse(&text).expect("valid run section");
        assert!((run.budget_minutes - 3.0).abs() < 1e-12);
        assert_eq!(run.sweeps.len(), 2);
        assert_eq!(run.sweeps[0].space, PathBuf::from("a.toml"));
        assert!((run.sweeps[0].share - 0.25).abs() < 1e-12);
        // An unset share takes what the others leave.
        assert!((run.sweeps[1].share - 0.75).abs() < 1e-12);
        assert_eq!(run.sweeps[1].n_trials, 20);
        assert_eq!(run.sweeps[1].gpu_n_trials, 20);
        assert_eq!(run.sweeps[1].gpu_population, 1);
        assert_eq!(run.sweeps[1].pruner, "median");
        assert_eq!(run.top_k, 5);
        assert_eq!(run.decision, DecisionOptions::default());
        let run = parse(&format!(
            "{text}\n[run.presets.q]\ndecision = [\"greedy\"]\n"
        ))
        .expect("valid");
        let q = run
            .with_preset("q", Path::new("configs/test.toml"))
            .unwrap();
        assert!(q.decision.greedy && !q.decision.stack && !q.decision.biases);
        // No [run] at all: defaults, and no sweeps (the command says what is missing).
        let run = parse(&strip_run()).expect("valid without [run]");
        assert!(run.sweeps.is_empty());
        assert!((run.budget_minutes - 12.0).abs() < 1e-12);
    }

    #[test]
    fn bad_run_settings_name_the_key() {
        let base = strip_run();
        for (section, key) in [
            ("[run]\nbudget-minutes = 0\n", "run.budget-minutes"),
            ("[run]\ntop-k = -1\n", "run.top-k"),
            ("[run]\nregister = \"a/b\"\n", "run.register"),
            ("[[run.sweeps]]\nn-trials = 3\n", "run.sweeps[0].space"),
            (
                "[[run.sweeps]]\nspace = \"a\"\nn-trials = 0\n",
                "run.sweeps[0].n-trials",
            ),
            (
                "[[run.sweeps]]\nspace = \"a\"\nshare = 1.5\n",
                "run.sweeps[0].share",
            ),
            (
                "[[run.sweeps]]\nspace = \"a\"\nshare = 0.7\n[[run.sweeps]]\nspace = \"b\"\nshare = 0.6\n",
                "run.sweeps",
            ),
            (
                "[[run.sweeps]]\nspace = \"a\"\nshare = 1.0\n[[run.sweeps]]\nspace = \"b\"\n",
                "run.sweeps[1].share",
            ),
            (
                "[[run.sweeps]]\nspace = \"a\"\ngpu-population = 0\n",
                "run.sweeps[0].gpu-population",
            ),
            ("[run]\nbudget = 3\n", "budget"),
            ("[run]\nbudget-minutes = 1e9\n", "run.budget-minutes"),
            ("[run]\nselect = \"sideways\"\n", "run.select"),
            ("[run]\nselect-model = \"mlp\"\n", "run.select-model"),
            ("[run]\nselect-model = \"gbdt\"\n", "run.select-model"),
            (
                "[run]\ndecision = [\"greedy\", \"blend\"]\n",
                "run.decision",
            ),
            (
                "[run.presets.x]\ndecision = [\"nope\"]\n",
                "run.presets.x.decision",
            ),
        ] {
            let m = message(&format!("{base}\n{section}"));
            assert!(
                m.contains(key) && m.contains("configs/test.toml"),
                "{key}: {m}"
            );
        }
    }
}
