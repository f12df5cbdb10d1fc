//! `tabtune registry list|show|promote|register`: the model registry (MLflow's when a tracking
//! URI is set, else the local folder).

use std::collections::BTreeMap;

use serde_json::json;
use tabtune_track::registry::{ModelVersion, open_registry, register_tagged_and_maybe_promote};

use crate::cli::RegistryCommand;
use crate::context::Context;
use crate::error::Result;
use crate::output;

fn metric_cell(v: &ModelVersion, key: &str) -> String {
    v.metrics
        .get(key)
        .map_or_else(|| "-".to_owned(), |x| format!("{x:.4}"))
}

/// Runs the command.
pub fn run(ctx: &Context, command: &RegistryCommand) -> Result<()> {
    match command {
        RegistryCommand::List(args) => {
            let registry = open_registry(args.tracking_uri.as_deref())?;
            let mut models = Vec::new();
            for name in registry.models()? {
                models.push(registry.model(&name)?);
            }
            if ctx.json {
                output::json(&json!({
                    "registry": registry.describe(),
                    "models": models.iter().map(|m| json!({
                        "name": m.name,
                        "versions": m.versions.len(),
                        "latest": m.versions.last().map(|v| v.version),
                        "aliases": m.aliases,
                    })).collect::<Vec<_>>(),
                }));
            } else if models.is_empty() {
                output::text(&format!(
                    "no models in the {} registry (tabtune registry register --name NAME --bundle DIR)\n",
                    registry.describe()
                ));
            } else {
                let rows: Vec<Vec<String>> = models
                    .iter()
                    .map(|m| {
                        vec![
                            m.name.clone(),
                            m.versions.len().to_string(),
                            m.aliases
                                .iter()
                                .map(|(a, v)| format!("{a}={v}"))
                                .collect::<Vec<_>>()
                                .join(" "),
                        ]
                    })
                    .collect();
                output::text(&format!(
                    "{} registry\n{}",
                    registry.describe(),
                    output::table(&["model", "versions", "aliases"], &rows)
                ));
            }
        }
        RegistryCommand::Show(args) => {
            let registry = open_registry(args.tracking_uri.as_deref())?;
            let model = registry.model(&args.name)?;
            if ctx.json {
                output::json(&model.to_json());
            } else {
                let rows: Vec<Vec<String>> = model
                    .versions
                    .iter()
                    .map(|v| {
                        vec![
                            v.version.to_string(),
                            model.aliases_of(v.version).join(","),
                            v.family.clone(),
                            metric_cell(v, "cv_accuracy_mean"),
                            metric_cell(v, "cv_logloss_mean"),
                            v.source.clone(),
                        ]
                    })
                    .collect();
                output::text(&format!(
                    "{} ({} registry)\n{}",
                    model.name,
                    registry.describe(),
                    output::table(
                        &[
                            "version",
                            "aliases",
                            "family",
                            "cv_accuracy",
                            "cv_logloss",
                            "source"
                        ],
                        &rows
                    )
                ));
            }
        }
        RegistryCommand::Promote(args) => {
            let registry = open_registry(args.tracking_uri.as_deref())?;
            registry.set_alias(&args.name, &args.alias, args.version)?;
            if ctx.json {
                output::json(&json!({
                    "name": args.name, "alias": args.alias, "version": args.version,
                }));
            } else {
                output::text(&format!(
                    "{}@{} -> version {}\n",
                    args.name, args.alias, args.version
                ));
            }
        }
        RegistryCommand::Register(args) => {
            let registry = open_registry(args.tracking_uri.as_deref())?;
            let tags: BTreeMap<String, String> = args.tags.iter().cloned().collect();
            let (version, promotion) = match &args.promote_on {
                Some(metric) => {
                    let (v, p) = register_tagged_and_maybe_promote(
                        registry.as_ref(),
                        &args.name,
                        &args.bundle,
                        &tags,
                        metric,
                        args.direction,
                    )?;
                    (v, Some(p))
                }
                None => (registry.register(&args.name, &args.bundle, &tags)?, None),
            };
            if ctx.json {
                output::json(&json!({
                    "name": args.name,
                    "version": version.version,
                    "registry": registry.describe(),
                    "model": format!("models:/{}/{}", args.name, version.version),
                    "promotion": promotion,
                }));
            } else {
                let mut text = format!(
                    "registered {} as models:/{}/{} in the {} registry\n",
                    args.bundle.display(),
                    args.name,
                    version.version,
                    registry.describe()
                );
                if let Some(p) = &promotion {
                    text.push_str(&format!(
                        "{}: {} ({})\n",
                        p.alias,
                        if p.promoted {
                            "moved to this version"
                        } else {
                            "unchanged"
                        },
                        p.reason
                    ));
                }
                output::text(&text);
            }
        }
    }
    Ok(())
}
