//! The outcomes as JSON: the objects `tabtune ... --json` prints and scripts read. One place
//! for their shape, so the command line and a Rust caller that logs or stores an outcome agree.

use serde_json::{Value, json};

use crate::decision::DecisionReport;
use crate::run::{RunOutcome, SweepRun};
use crate::sweep::{Decision, SweepOutcome};

impl DecisionReport {
    /// Every method's cross-fitted score, the champion and what ships (`labels[i]` names
    /// candidate `i`).
    pub fn to_json(&self, labels: &[String]) -> Value {
        json!({
            "candidates": self.candidates,
            "folds": self.folds,
            "raw_best_single": {"trial": labels[self.best_single], "accuracy": self.raw_accuracy},
            "methods": self.methods.iter().map(|s| json!({
                "method": s.method.name(),
                "cv_accuracy": s.accuracy,
                "cv_logloss": s.log_loss,
            })).collect::<Vec<_>>(),
            "champion": self.champion.name(),
            "members": self.shipped.members.iter()
                .map(|(i, w)| json!({"trial": labels[*i], "weight": w}))
                .collect::<Vec<_>>(),
            "stacked": self.shipped.stack.is_some(),
            "class_weights": self.shipped.class_weights.weights,
        })
    }
}

impl Decision {
    /// [`DecisionReport::to_json`] with the candidates named by trial (`#3`).
    pub fn to_json(&self) -> Value {
        let labels: Vec<String> = self.trials.iter().map(|n| format!("#{n}")).collect();
        self.report.to_json(&labels)
    }
}

impl SweepOutcome {
    /// The study's counts, why it stopped, the best trial and its parameters, the decision
    /// layer, the registered bundle and the report.
    pub fn to_json(&self) -> Value {
        let best = self.summary.best.as_ref();
        let best_params: serde_json::Map<String, Value> = best
            .map(|b| {
                b.params
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect()
            })
            .unwrap_or_default();
        json!({
            "study": self.study,
            "storage": self.storage,
            "metric": self.metric.name(),
            "n_trials": self.n_trials,
            "n_complete": self.summary.n_complete,
            "n_pruned": self.summary.n_pruned,
            "n_failed": self.summary.n_failed,
            "n_run": self.summary.n_run,
            "stopped": self.stop_reason(),
            "best_value": best.and_then(|b| b.value),
            "best_trial": best.map(|b| b.number),
            "best_params": best_params,
            "decision": self.decision.as_ref().map(Decision::to_json),
            "bundle": self.registered.as_ref().map(|r| &r.bundle),
            "registered": self.registered.as_ref().map(|r| json!({
                "name": r.name,
                "version": r.version.version,
                "champion": r.promotion.promoted,
                "previous_champion": r.promotion.previous,
                "reason": r.promotion.reason,
            })),
            "register_error": self.register_error,
            "report": self.report,
            "seconds": self.summary.seconds,
        })
    }
}

impl SweepRun {
    /// One sweep of a run: its budget and what it found.
    pub fn to_json(&self) -> Value {
        let o = &self.outcome;
        json!({
            "space": self.space,
            "study": o.study,
            "storage": o.storage,
            "metric": o.metric.name(),
            "n_trials": self.n_trials,
            "population": self.population,
            "timeout_seconds": self.timeout,
            "n_complete": o.summary.n_complete,
            "n_pruned": o.summary.n_pruned,
            "n_failed": o.summary.n_failed,
            "best_value": o.summary.best.as_ref().and_then(|b| b.value),
            "best_trial": o.summary.best.as_ref().map(|b| b.number),
            "decision": o.decision.as_ref().map(Decision::to_json),
            "registered": o.registered.as_ref().map(|r| json!({
                "name": r.name,
                "version": r.version.version,
                "bundle": r.bundle,
                "champion": r.promotion.promoted,
                "reason": r.promotion.reason,
            })),
            "report": o.report,
            "seconds": o.summary.seconds,
        })
    }
}

impl RunOutcome {
    /// The champion, every sweep, the decision layer, the round allocation, the steps and
    /// where every report went (`register`: the registered model's name).
    pub fn to_json(&self, register: &str) -> Value {
        let c = &self.champion;
        json!({
            "champion": c.dir,
            "champion_ref": c.reference,
            "version": c.version,
            "family": c.family,
            "cv_accuracy": c.cv_accuracy,
            "cv_logloss": c.cv_logloss,
            "registered_name": register,
            "device": self.device.name,
            "adapter": self.device.adapter,
            "registry": self.registry,
            "select": self.selected.as_ref().map(crate::select::SelectOutcome::to_json),
            "studies": self.sweeps.iter().map(SweepRun::to_json).collect::<Vec<_>>(),
            "decision": self.decision.as_ref().map(|d| {
                let mut v = d.report.to_json(&d.labels);
                v["accuracy"] = json!(d.ensemble.accuracy);
                v["bundle"] = json!(d.ensemble.dir);
                v["version"] = json!(d.version);
                v
            }),
            "allocation": self.allocation.iter().map(|a| json!({
                "space": a.space,
                "share": a.share,
                "first_seconds": a.first_seconds,
                "first_best": a.first_best,
                "weight": a.weight,
                "second_seconds": a.second_seconds,
            })).collect::<Vec<_>>(),
            "reports": {
                "run": self.report,
                "eda": self.eda.path,
                "studies": self.sweeps.iter().map(|d| &d.outcome.report).collect::<Vec<_>>(),
                "monitor": self.monitored.as_ref().map(|m| &m.path),
                "submission": self.submission.as_ref().map(|p| &p.output),
            },
            "submission_rows": self.submission.as_ref().map(|p| p.rows),
            "dataset_drift": self.monitored.as_ref().map(|m| m.report.dataset_drift),
            "drifted_columns": self.monitored.as_ref().map(|m| m.report.drifted_columns()),
            "budget_minutes": self.budget_minutes,
            "seconds": self.seconds,
            "steps": self.steps.iter()
                .map(|s| json!({"step": s.name, "seconds": s.seconds, "detail": s.detail}))
                .collect::<Vec<_>>(),
        })
    }
}

impl crate::export::Exported {
    /// The bundle, the trial (number, value), its family and the final model's parameters.
    pub fn to_json(&self) -> Value {
        json!({
            "bundle": self.bundle,
            "trial": self.trial.number,
            "value": self.trial.value,
            "model": self.family.name(),
            "params": self.params,
        })
    }
}

impl crate::portable::PortableExport {
    /// The bundle, what was written and what the model records about itself.
    pub fn to_json(&self) -> Value {
        let m = &self.metadata;
        json!({
            "bundle": self.bundle,
            "format": self.format.name(),
            "output": self.path,
            "bytes": self.bytes,
            "name": m.name,
            "family": m.family,
            "classes": m.classes,
            "bundle_sha256": m.bundle_sha256,
            "opset": m.opset,
            "ml_opset": m.ml_opset,
        })
    }
}

impl crate::train::TrainOutcome {
    /// The cross-validation report (per fold and overall, feature importance), the rows and
    /// parameters, and where the out-of-fold predictions, checkpoints and bundle went.
    pub fn to_json(&self) -> Value {
        let report = &self.report;
        json!({
            "bundle": self.bundle,
            "checkpoints": self.checkpoints,
            "model": self.family.name(),
            "device": report.device,
            "folds": report.folds.len(),
            "accuracy_mean": report.accuracy_mean,
            "accuracy_std": report.accuracy_std,
            "logloss_mean": report.logloss_mean,
            "seconds": report.seconds,
            "fold_results": report.folds,
            "oof": self.oof,
            "rows": self.rows,
            "extra_rows": self.extra_rows,
            "params": self.params,
            "importance": report.importance.iter()
                .map(|(n, g)| json!({"feature": n, "gain": g}))
                .collect::<Vec<_>>(),
        })
    }
}

impl crate::predict::Predicted {
    /// Rows, where they went, the family, rows per predicted class and the rejected rows
    /// (`model`: the `--model` argument as given).
    pub fn to_json(&self, model: &str) -> Value {
        let per_class: serde_json::Map<String, Value> = self
            .per_class
            .iter()
            .map(|(c, n)| (c.clone(), json!(n)))
            .collect();
        json!({
            "rows": self.rows,
            "output": self.output,
            "model": model,
            "family": self.family,
            "predicted_classes": per_class,
            "invalid_rows": self.invalid_rows,
            "rejects": self.rejects,
        })
    }
}

impl crate::select::SelectOutcome {
    /// The chosen set, the best set of each size, the baseline with every feature, the runs
    /// tracked and the registered model.
    pub fn to_json(&self) -> Value {
        let path: Vec<Value> = self
            .by_size
            .iter()
            .map(|(k, (s, set))| json!({"n_features": k, "accuracy": s, "features": set}))
            .collect();
        json!({
            "study": self.study,
            "storage": self.storage,
            "strategy": self.strategy.name(),
            "model": self.model,
            "features": self.features,
            "n_features": self.features.len(),
            "n_total": self.n_total,
            "accuracy": self.accuracy,
            "baseline_accuracy": self.baseline_accuracy,
            "evaluations": self.evaluations,
            "resumed": self.resumed,
            "tracked_runs": self.tracked_runs,
            "registered": self.registered.as_ref().map(|r| json!({
                "name": r.name,
                "version": r.version.version,
                "bundle": r.bundle,
                "champion": r.promotion.promoted,
                "reason": r.promotion.reason,
            })),
            "path": path,
            "output": self.output,
            "seconds": self.seconds,
        })
    }
}
