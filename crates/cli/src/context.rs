//! What every command needs: the resolved config, output mode, and loading an input file.

use std::path::{Path, PathBuf};

use anyhow::Result;
use tabtune_features::io::{LoadOptions, Loaded, load_table};
use tabtune_features::{Config, OnInvalid, Schema, TargetPresence};

use crate::cli::{GlobalArgs, InputArgs, OnInvalidArg};
use crate::output;

/// The default config file, relative to the current directory.
pub const DEFAULT_CONFIG: &str = "configs/obesity.toml";
/// The same file, compiled in, used when [`DEFAULT_CONFIG`] does not exist here.
const BUILT_IN_CONFIG: &str = include_str!("../../../configs/obesity.toml");

/// Shared state of one command run.
pub struct Context {
    /// The resolved config (data folder already overridden).
    pub config: Config,
    /// `--json`.
    pub json: bool,
    /// Whether progress bars show.
    pub progress: bool,
}

impl Context {
    /// Loads the config and applies the global overrides.
    pub fn new(global: &GlobalArgs) -> Result<Self> {
        let mut config = match &global.config {
            Some(path) => Config::load(path)?,
            None if Path::new(DEFAULT_CONFIG).is_file() => Config::load(Path::new(DEFAULT_CONFIG))?,
            None => {
                tracing::info!("{DEFAULT_CONFIG} not found here; using the built-in copy");
                Config::from_toml(
                    BUILT_IN_CONFIG,
                    Path::new("(built-in) configs/obesity.toml"),
                )?
            }
        };
        if let Some(dir) = &global.data_dir {
            config.data.dir.clone_from(dir);
        }
        tracing::debug!(config = %config.path.display(), data_dir = %config.data.dir.display(), "config loaded");
        Ok(Self {
            config,
            json: global.json,
            progress: output::progress_enabled(global.quiet > 0, global.json),
        })
    }

    /// The input file: `--input`, else the config's training file.
    pub fn input_path(&self, input: &InputArgs) -> PathBuf {
        input
            .input
            .clone()
            .unwrap_or_else(|| self.config.train_path())
    }

    /// Loads and validates the input against the config's schema, logging the counts.
    pub fn load(&self, input: &InputArgs, target: TargetPresence) -> Result<Loaded> {
        self.load_file(&self.input_path(input), input, &self.config.schema, target)
    }

    /// Loads and validates `path` against `schema` with the input options, logging the counts.
    pub fn load_file(
        &self,
        path: &Path,
        input: &InputArgs,
        schema: &Schema,
        target: TargetPresence,
    ) -> Result<Loaded> {
        let path = path.to_owned();
        let rejects = input.rejects.clone().unwrap_or_else(|| {
            let stem = path
                .file_stem()
                .map_or_else(|| "data".into(), |s| s.to_string_lossy().into_owned());
            PathBuf::from("reports/rejects").join(format!("{stem}.rejects.csv"))
        });
        let options = LoadOptions {
            on_invalid: match input.on_invalid {
                OnInvalidArg::Fail => OnInvalid::Fail,
                OnInvalidArg::Quarantine => OnInvalid::Quarantine,
            },
            target,
            rejects: Some(rejects),
        };
        let spinner = output::spinner(self.progress, format!("loading {}", path.display()));
        let loaded = load_table(&path, schema, &options);
        spinner.finish_and_clear();
        let loaded = loaded?;
        if loaded.report.invalid_rows > 0 {
            tracing::warn!("{}", loaded.report.summary());
        } else {
            tracing::info!("{}", loaded.report.summary());
        }
        Ok(loaded)
    }
}
