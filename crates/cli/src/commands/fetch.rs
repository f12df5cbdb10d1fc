//! `tabtune data fetch`: download the config's sources, verify their sha256.

use serde_json::json;
use tabtune_features::FeaturesError;
use tabtune_features::fetch::{FetchStatus, fetch};

use crate::cli::FetchArgs;
use crate::context::Context;
use crate::error::Result;
use crate::output;

/// Runs the command.
pub fn run(ctx: &Context, args: &FetchArgs) -> Result<()> {
    let config = &ctx.config;
    let all = &config.data.sources;
    for name in &args.sources {
        if !all.iter().any(|s| &s.name == name) {
            let known: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
            return Err(FeaturesError::ConfigValue {
                path: config.path.clone(),
                key: "data.sources".into(),
                message: format!(
                    "no source named `{name}`; the config has {}",
                    known.join(", ")
                ),
            }
            .into());
        }
    }
    let chosen: Vec<_> = all
        .iter()
        .filter(|s| args.sources.is_empty() || args.sources.contains(&s.name))
        .collect();
    if chosen.is_empty() {
        return Err(FeaturesError::ConfigValue {
            path: config.path.clone(),
            key: "data.sources".into(),
            message: "is empty: there is nothing to fetch".into(),
        }
        .into());
    }
    let dir = &config.data.dir;
    let mut rows = Vec::new();
    let mut results = Vec::new();
    for source in chosen {
        let bar = ctx
            .progress
            .bytes(&format!("{} -> {}", source.name, source.file));
        let outcome = fetch(source, dir, args.force, &mut |done, total| {
            if let Some(t) = total {
                bar.set_length(t);
            }
            bar.set_position(done);
        });
        drop(bar);
        let outcome = outcome?;
        let status = match outcome.status {
            FetchStatus::AlreadyPresent => "already present",
            FetchStatus::Downloaded => "downloaded",
        };
        tracing::info!("{}: {status}, sha256 ok", outcome.file.display());
        rows.push(vec![
            source.name.clone(),
            outcome.file.display().to_string(),
            status.to_owned(),
        ]);
        results.push(json!({"source": source.name, "file": outcome.file, "status": status, "sha256": outcome.sha256}));
    }
    if ctx.json {
        output::json(&json!({ "dir": dir, "files": results }));
    } else {
        output::text(&output::table(&["source", "file", "status"], &rows));
    }
    Ok(())
}
