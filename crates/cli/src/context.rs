//! What every command needs: the resolved config, the output mode, progress bars, and the
//! conversion of the shared flags into the pipeline's settings.

use std::path::Path;
use std::sync::Arc;

use tabtune_features::{Config, OnInvalid};
use tabtune_pipeline::data::Input;
use tabtune_pipeline::{Hooks, Progress, Silent};

use crate::cli::{GlobalArgs, InputArgs, OnInvalidArg};
use crate::error::{CliError, Result};
use crate::output;

/// The default config file, relative to the current directory.
pub const DEFAULT_CONFIG: &str = "configs/obesity.toml";
/// The same file, compiled in, used when [`DEFAULT_CONFIG`] does not exist here.
const BUILT_IN_CONFIG: &str = include_str!("../../../configs/obesity.toml");

/// Shared state of one command run.
pub struct Context {
    /// The resolved config (data folder already overridden).
    pub config: Arc<Config>,
    /// `--json`.
    pub json: bool,
    /// Progress bars, or nothing with `-q`, `--json` or no terminal.
    pub progress: Arc<dyn Progress>,
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
        let progress: Arc<dyn Progress> = if output::progress_enabled(global.quiet > 0, global.json)
        {
            Arc::new(output::Bars)
        } else {
            Arc::new(Silent)
        };
        Ok(Self {
            config: Arc::new(config),
            json: global.json,
            progress,
        })
    }

    /// The pipeline's input settings from `--input`, `--on-invalid` and `--rejects`.
    pub fn input(args: &InputArgs) -> Input {
        Input {
            path: args.input.clone(),
            on_invalid: on_invalid(args.on_invalid),
            rejects: args.rejects.clone(),
        }
    }

    /// Hooks for long work: progress bars, and a stop flag that SIGINT (Ctrl-C) and SIGTERM
    /// set, so a sweep stops cleanly (running trials are stored as FAIL).
    pub fn hooks(&self) -> Result<Hooks> {
        let hooks = Hooks::with_progress(Arc::clone(&self.progress));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, Arc::clone(&hooks.stop)).map_err(|source| {
                CliError::System {
                    what: "installing the Ctrl-C handler".into(),
                    source,
                }
            })?;
        }
        Ok(hooks)
    }
}

/// `--on-invalid` as the loader's policy.
pub fn on_invalid(arg: OnInvalidArg) -> OnInvalid {
    match arg {
        OnInvalidArg::Fail => OnInvalid::Fail,
        OnInvalidArg::Quarantine => OnInvalid::Quarantine,
    }
}
