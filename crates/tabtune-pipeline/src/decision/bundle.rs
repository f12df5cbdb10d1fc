//! The decision layer's champion as a bundle: every member fitted on all rows (or shipped as
//! its fold models; a study's already exported best is reused), blended with its weight or
//! read by the stacker, with the champion's class weights.

use std::path::{Path, PathBuf};

use serde_json::json;
use tabtune_features::{Config, Preprocessor};
use tabtune_models::AnyModel;
use tabtune_models::bundle::{Bundle, BundleMeta};
use tabtune_models::ensemble::{EnsembleMember, EnsembleModel};

use crate::data::Input;
use crate::decision::{DecisionReport, Method};
use crate::error::Result;
use crate::export::{ExportSettings, FinalModel, export_trial};
use crate::progress::Progress;

/// A trial the decision layer may blend.
#[derive(Clone, Debug)]
pub struct Member {
    /// Its study.
    pub study: String,
    /// The study's storage URL.
    pub storage: String,
    /// The trial number.
    pub trial: u64,
    /// A bundle of it already fitted on every row, if there is one.
    pub bundle: Option<PathBuf>,
}

impl Member {
    /// `study#trial`, as reports name members.
    pub fn label(&self) -> String {
        format!("{}#{}", self.study, self.trial)
    }
}

/// The shipped ensemble.
#[derive(Clone, Debug)]
pub struct EnsembleBundle {
    /// Its bundle folder.
    pub dir: PathBuf,
    /// The decision method it ships.
    pub method: Method,
    /// `(study#trial, weight)` of its members.
    pub members: Vec<(String, f64)>,
    /// The shipped class weights (all 1 for an unbiased method).
    pub class_weights: Vec<f64>,
    /// Its cross-fitted accuracy.
    pub accuracy: f64,
}

/// Fits the members of `report`'s shipped champion (indices into `members`) on every row and
/// writes the blend or stack to `dir`. `None` when members were fitted with different preprocessing (the
/// blend cannot ship as one bundle; a warning says which).
#[allow(clippy::too_many_arguments)]
pub fn ship_ensemble(
    config: &Config,
    report: &DecisionReport,
    members: &[Member],
    input: &Input,
    device: &str,
    final_model: FinalModel,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<Option<EnsembleBundle>> {
    let mut shipped = Vec::new();
    let mut own: Vec<Option<Preprocessor>> = Vec::new();
    let mut groups = Vec::new();
    let mut labels = Vec::new();
    let mut preprocessor = None;
    let mut training_data = None;
    let fitted = &report.shipped;
    for (group, &(i, weight)) in fitted.members.iter().enumerate() {
        let m = &members[i];
        let label = m.label();
        let bundle_dir = match &m.bundle {
            Some(b) => b.clone(),
            None => {
                let settings = ExportSettings {
                    input: input.clone(),
                    study: m.study.clone(),
                    storage: m.storage.clone(),
                    trial: Some(m.trial),
                    output: Some(dir.with_file_name(format!(
                        "{}-ensemble-member-{}-{}",
                        config.name,
                        m.study.replace(['/', '\\'], "_"),
                        m.trial
                    ))),
                    device: device.to_owned(),
                    final_model,
                };
                export_trial(config, &settings, progress)?.bundle
            }
        };
        let bundle = Bundle::load(&bundle_dir)?;
        training_data.get_or_insert(bundle.meta.training_data.clone());
        labels.push((label.clone(), weight));
        match bundle.model {
            // A trial shipped as its fold models: they join as one group, each with its own
            // preprocessing.
            AnyModel::Ensemble(e) if e.has_own_preprocessing() => {
                for (j, m) in e.members.iter().enumerate() {
                    shipped.push(EnsembleMember {
                        model: m.model.clone(),
                        weight: weight * m.weight,
                        label: m.label.clone(),
                    });
                    own.push(e.member_preprocessor(j).cloned());
                    groups.push(group);
                }
                preprocessor.get_or_insert(bundle.preprocessor);
            }
            model => {
                shipped.push(EnsembleMember {
                    model,
                    weight,
                    label,
                });
                own.push(Some(bundle.preprocessor.clone()));
                groups.push(group);
                preprocessor.get_or_insert(bundle.preprocessor);
            }
        }
    }
    let (Some(preprocessor), Some(training_data)) = (preprocessor, training_data) else {
        return Ok(None);
    };
    let class_weights = fitted.class_weights.weights.clone();
    let score = report.champion_score();
    // Every member carries its own preprocessing (a trial's fold models, or a refitted
    // trial's preprocessor fitted on every row), so trials preprocessed differently blend
    // too, even when they read different features (extra rows with a level the training file
    // lacks add a one-hot column).
    let mut model = EnsembleModel::from_parts(shipped, class_weights.clone(), own, groups)?;
    if let Some(stack) = &fitted.stack {
        model = model.with_stack(stack.clone())?;
    }
    let name = dir
        .file_name()
        .map_or_else(|| "ensemble".into(), |n| n.to_string_lossy().into_owned());
    let mut meta = BundleMeta::new(
        &name,
        "ensemble",
        &preprocessor,
        json!({
            "members": labels.iter().map(|(l, w)| json!({"trial": l, "weight": w})).collect::<Vec<_>>(),
            "method": report.champion.name(),
            "class_weights": class_weights,
            "methods": report.methods.iter().map(|s| json!({
                "method": s.method.name(),
                "cv_accuracy": s.accuracy,
                "cv_logloss": s.log_loss,
            })).collect::<Vec<_>>(),
        }),
        training_data,
    );
    meta.metrics.extend([
        // Cross-fitted (never scored on rows it was tuned on): comparable with the members'
        // CV accuracy.
        ("cv_accuracy_mean".to_owned(), score.accuracy),
        ("cv_logloss_mean".to_owned(), score.log_loss),
        (
            "cv_accuracy_best_single_raw".to_owned(),
            report.raw_accuracy,
        ),
        ("cv_folds".to_owned(), report.folds as f64),
    ]);
    meta.metrics.extend(report.methods.iter().map(|s| {
        (
            format!("cv_accuracy_{}", s.method.name().replace(['+', '-'], "_")),
            s.accuracy,
        )
    }));
    Bundle {
        meta,
        model: AnyModel::Ensemble(model),
        preprocessor,
    }
    .save(dir)?;
    Ok(Some(EnsembleBundle {
        dir: dir.to_owned(),
        method: report.champion,
        members: labels,
        class_weights,
        accuracy: score.accuracy,
    }))
}
