//! clap types: the command line as data.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tabtune_features::Direction;
use tabtune_pipeline::export::FinalModel;
use tabtune_pipeline::select::Strategy;

use crate::env;

/// Train and tune models on tabular data, and serve the best one.
#[derive(Debug, Parser)]
#[command(name = "tabtune", version, about, long_about = None)]
pub struct Cli {
    /// Global options.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Config file [default: configs/obesity.toml, or the built-in copy of it when that file
    /// does not exist].
    #[arg(long, global = true, env = env::TABTUNE_CONFIG, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Folder with the data files; overrides the config's `data.dir`.
    #[arg(long, global = true, env = env::TABTUNE_DATA_DIR, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print exactly one JSON object on stdout (logs stay on stderr).
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Less log output (-q warnings only, -qq errors only); also hides progress bars.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for machines.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Get and inspect the datasets.
    #[command(subcommand)]
    Data(DataCommand),
    /// Engineer features, fit the preprocessor on the training data, write both.
    Features(FeaturesArgs),
    /// Write an HTML report with charts (class balance, distributions, correlations).
    Eda(EdaArgs),
    /// Cross-validate one model family; print per-fold metrics; write out-of-fold predictions.
    Train(TrainArgs),
    /// Predict a file with a model bundle (CSV out; Kaggle submission format with --submission).
    Predict(PredictArgs),
    /// Serve a model bundle over HTTP (POST /predict, GET /health, /version, /metrics).
    Serve(ServeArgs),
    /// Data, target and prediction drift of a current file against a reference (HTML + JSON).
    Monitor(MonitorArgs),
    /// The model registry: list, show, promote and register bundles (MLflow's registry when a
    /// tracking URI is set, else checkpoints/registry).
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Hyperparameter study: TPE (and other samplers), pruning, parallel trials, resumable,
    /// stored in Optuna's schema; decision layer and HTML report at the end.
    Sweep(SweepArgs),
    /// Fit a study's best (or a chosen) trial on every row and write it as a bundle; or
    /// write a bundle as one ONNX file or a Triton model-repository entry.
    Export(ExportArgs),
    /// Sequential forward / backward feature selection, run as a study.
    Select(SelectArgs),
    /// The whole pipeline from the config: data, EDA, the `[run]` sweeps (boosting styles and
    /// neural nets, two rounds) within a time budget, the decision layer over every trial
    /// (its cross-fitted winner exported and registered as champion), a submission for the
    /// test file, the monitoring report of the current data and the run report.
    Run(RunArgs),
}

/// `tabtune data ...`.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Download the config's data sources into the data folder and verify their sha256.
    Fetch(FetchArgs),
    /// Check a file against the schema; print column statistics and the class balance.
    Describe(DescribeArgs),
}

/// What to do with rows that fail validation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OnInvalidArg {
    /// Stop with exit code 2 and a report of every problem.
    #[default]
    Fail,
    /// Write bad rows with a reason to a rejects file and go on with the rest.
    Quarantine,
}

/// Options of commands that load a data file.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// Data file (CSV or Parquet) [default: the config's training file; for `predict`, the
    /// config's `data.test` file].
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// What to do with invalid rows.
    #[arg(long, value_enum, default_value_t = OnInvalidArg::Fail)]
    pub on_invalid: OnInvalidArg,
    /// Rejects file for `--on-invalid quarantine` [default: <input stem>.rejects.csv in
    /// reports/rejects/].
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<PathBuf>,
}

/// `tabtune data fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Fetch only the sources with this name (repeatable) [default: all].
    #[arg(long = "source", value_name = "NAME")]
    pub sources: Vec<String>,
    /// Replace an existing file whose checksum differs.
    #[arg(long)]
    pub force: bool,
}

/// `tabtune data describe`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// Input selection and validation policy.
    #[command(flatten)]
    pub input: InputArgs,
}

/// `tabtune features`.
#[derive(Debug, Args)]
pub struct FeaturesArgs {
    /// Input selection and validation policy.
    #[command(flatten)]
    pub input: InputArgs,
    /// Engineered table to write (.parquet or .csv)
    /// [default: data/features/<input stem>.features.parquet].
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Where to write the fitted preprocessor [default: data/features/preprocessor.json].
    #[arg(long, value_name = "FILE", conflicts_with = "apply")]
    pub preprocessor: Option<PathBuf>,
    /// Apply this fitted preprocessor instead of fitting one (the target may be absent).
    #[arg(long, value_name = "FILE")]
    pub apply: Option<PathBuf>,
}

/// `tabtune eda`.
#[derive(Debug, Args)]
pub struct EdaArgs {
    /// Input selection and validation policy.
    #[command(flatten)]
    pub input: InputArgs,
    /// HTML report to write [default: reports/eda-<task>.html].
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `tabtune train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Input selection and validation policy.
    #[command(flatten)]
    pub input: InputArgs,
    /// Model family: gbdt-leafwise (LightGBM style), gbdt-depthwise (XGBoost style),
    /// gbdt-oblivious (CatBoost style), random-forest, decision-tree, mlp, tabm.
    #[arg(long, value_name = "FAMILY")]
    pub model: String,
    /// Device: auto (CUDA, else a wgpu GPU, else the CPU), cpu, wgpu, cuda or cuda:N. On a GPU a
    /// boosting style's folds train as one batched fit (quantized gradients), and a forest's or
    /// decision tree's trees grow together level by level (the same trees as on the CPU).
    #[arg(long, value_name = "DEVICE", default_value = "auto")]
    pub device: String,
    /// Folds [default: the config's `cv.folds`].
    #[arg(long, value_name = "K")]
    pub folds: Option<usize>,
    /// Repeats of the k-fold split [default: the config's `cv.repeats`].
    #[arg(long, value_name = "N")]
    pub repeats: Option<usize>,
    /// Seed of the splits and of the model's sampling [default: the config's `cv.seed`].
    #[arg(long)]
    pub seed: Option<u64>,
    /// A hyperparameter, `NAME=VALUE` (repeatable), for example `--param num_leaves=31`.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Out-of-fold predictions file [default: reports/oof/<task>-<model>.csv].
    #[arg(long, value_name = "FILE")]
    pub oof: Option<PathBuf>,
    /// After cross-validation, fit the model on every row and write it as a bundle to this
    /// folder (for example checkpoints/obesity-lgbm).
    #[arg(long, value_name = "DIR")]
    pub save: Option<PathBuf>,
    /// mlp and tabm: folder of the best-epoch checkpoints, one file per fold
    /// (`fold-<repeat>-<fold>.safetensors`, replaced atomically whenever that fold's validation
    /// log loss improves) [default: checkpoints/<task>-<model>-cv].
    #[arg(long, value_name = "DIR")]
    pub checkpoint_dir: Option<PathBuf>,
    /// MLflow tracking server: the run is logged there too (params, per-fold and CV metrics,
    /// the bundle with --save). Always logged: reports/runs and reports/tensorboard.
    #[arg(long, env = "MLFLOW_TRACKING_URI", value_name = "URL", value_parser = parse_tracking_uri)]
    pub tracking_uri: Option<String>,
    /// Experiment the run is logged under [default: the config's name].
    #[arg(long, value_name = "NAME")]
    pub experiment: Option<String>,
    /// Track nothing (no local run record, TensorBoard files or MLflow run).
    #[arg(long)]
    pub no_track: bool,
}

fn parse_param(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(format!(
            "`{text}`: expected NAME=VALUE, for example learning_rate=0.05"
        )),
    }
}

/// `tabtune predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Input selection and validation policy.
    #[command(flatten)]
    pub input: InputArgs,
    /// Model: a bundle folder (written by `train --save`, `export`, `run`) or a registry
    /// reference, `models:/NAME@ALIAS` or `models:/NAME/VERSION`.
    #[arg(long, value_name = "DIR|models:/NAME@ALIAS")]
    pub model: PathBuf,
    /// Predictions file [default: reports/predictions/<input stem>-<bundle>.csv].
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write only `<id>,<target>` with the predicted class names (Kaggle submission format).
    #[arg(long)]
    pub submission: bool,
}

/// `tabtune serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Model: a bundle folder or a registry reference (`models:/NAME@ALIAS`, resolved again
    /// on `POST /admin/reload`).
    #[arg(long, value_name = "DIR|models:/NAME@ALIAS", env = "TABTUNE_MODEL")]
    pub model: PathBuf,
    /// Address to bind (loopback by default; use 0.0.0.0 deliberately).
    #[arg(long, default_value = "127.0.0.1", env = "TABTUNE_HOST")]
    pub host: std::net::IpAddr,
    /// Port (0: any free port; the URL is printed on stderr when ready).
    #[arg(long, default_value_t = 8080, env = "TABTUNE_PORT")]
    pub port: u16,
    /// Worker threads of the HTTP runtime (at most 4 per core).
    #[arg(long, default_value = "2", value_parser = parse_threads)]
    pub threads: usize,
    /// Largest request body in bytes (larger: 413).
    #[arg(long, default_value = "1048576", value_parser = parse_count)]
    pub max_body_bytes: usize,
    /// Predictions running or waiting at once (more: 429).
    #[arg(long, default_value_t = 64)]
    pub max_in_flight: usize,
    /// Bearer token required on /monitor/*, /feedback and /admin/reload (unset: open).
    #[arg(
        long,
        env = "TABTUNE_API_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Reference data of the /monitor/* routes [default: the config's training file; when
    /// that is missing, the routes answer 409].
    #[arg(long, value_name = "FILE")]
    pub reference: Option<PathBuf>,
    /// Recent predicted rows kept for /monitor/* (0: none; at most 100000).
    #[arg(long, default_value_t = 1000, value_name = "ROWS")]
    pub window: usize,
    /// Rows a /monitor/* report needs at least (labelled rows for model performance).
    #[arg(long, default_value_t = 30, value_name = "ROWS")]
    pub min_window_rows: usize,
    /// Most records in one /predict or /feedback request (more: 413 at once).
    #[arg(long, default_value = "10000", value_name = "N", value_parser = parse_count)]
    pub max_records: usize,
    /// Most problems one 422 answer lists (the rest are counted).
    #[arg(long, default_value = "100", value_name = "N", value_parser = parse_count)]
    pub max_errors_listed: usize,
    /// Open connections at most (a new one closes the longest-idle; when all are busy it gets
    /// 503). Keep it below `ulimit -n`.
    #[arg(long, default_value = "512", value_name = "N", value_parser = parse_count)]
    pub max_connections: usize,
    /// Seconds a request's headers may take once its first byte arrived (then: closed).
    #[arg(long, default_value = "10", value_name = "SECONDS", value_parser = parse_seconds)]
    pub header_timeout: Duration,
    /// Seconds a request's body may take once its headers are in (then: 408).
    #[arg(long, default_value = "30", value_name = "SECONDS", value_parser = parse_seconds)]
    pub body_timeout: Duration,
    /// Seconds a connection with no request in progress may stay silent (then: closed).
    #[arg(long, default_value = "30", value_name = "SECONDS", value_parser = parse_seconds)]
    pub idle_timeout: Duration,
    /// Seconds requests in progress get to finish on shutdown.
    #[arg(long, default_value = "10", value_name = "SECONDS", value_parser = parse_seconds)]
    pub shutdown_timeout: Duration,
}

/// `tabtune monitor`.
#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// Model: a bundle folder or `models:/NAME@ALIAS` (its schema validates both files; its
    /// predictions give the prediction drift).
    #[arg(long, value_name = "DIR|models:/NAME@ALIAS")]
    pub model: PathBuf,
    /// Reference data [default: the config's training file].
    #[arg(long, value_name = "FILE")]
    pub reference: Option<PathBuf>,
    /// Current data [default: the config's `data.current` file].
    #[arg(long, value_name = "FILE")]
    pub current: Option<PathBuf>,
    /// HTML report [default: reports/monitor-<bundle>-<current stem>.html].
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Invalid rows of the current file: fail (exit 2), or quarantine them and count their
    /// missing, invalid and out-of-range cells in the data quality report.
    #[arg(long, value_enum, default_value_t = OnInvalidArg::Fail)]
    pub on_invalid: OnInvalidArg,
}

/// `tabtune registry ...`.
#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Registered models with their version counts and aliases.
    List(RegistryListArgs),
    /// One model's versions, aliases and CV metrics.
    Show(RegistryShowArgs),
    /// Point an alias (champion, challenger, ...) at a version.
    Promote(RegistryPromoteArgs),
    /// Register a bundle folder as the next version of a model.
    Register(RegistryRegisterArgs),
}

/// Which registry: MLflow's with a tracking URI, else the local folder.
#[derive(Debug, Args)]
pub struct RegistryListArgs {
    /// MLflow tracking server [default: none: the local registry, checkpoints/registry or
    /// TABTUNE_REGISTRY_DIR].
    #[arg(long, env = "MLFLOW_TRACKING_URI", value_name = "URL", value_parser = parse_tracking_uri)]
    pub tracking_uri: Option<String>,
}

/// `tabtune registry show`.
#[derive(Debug, Args)]
pub struct RegistryShowArgs {
    /// Registered model name.
    pub name: String,
    /// MLflow tracking server [default: the local registry].
    #[arg(long, env = "MLFLOW_TRACKING_URI", value_name = "URL", value_parser = parse_tracking_uri)]
    pub tracking_uri: Option<String>,
}

/// `tabtune registry promote`.
#[derive(Debug, Args)]
pub struct RegistryPromoteArgs {
    /// Registered model name.
    pub name: String,
    /// Version to point the alias at.
    pub version: u64,
    /// The alias.
    #[arg(long, default_value = "champion")]
    pub alias: String,
    /// MLflow tracking server [default: the local registry].
    #[arg(long, env = "MLFLOW_TRACKING_URI", value_name = "URL", value_parser = parse_tracking_uri)]
    pub tracking_uri: Option<String>,
}

/// `tabtune registry register`.
#[derive(Debug, Args)]
pub struct RegistryRegisterArgs {
    /// Registered model name (created when new).
    #[arg(long)]
    pub name: String,
    /// Bundle folder (written by `tabtune train --save`); its checksums are verified first.
    #[arg(long, value_name = "DIR")]
    pub bundle: PathBuf,
    /// Version tag (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_param)]
    pub tags: Vec<(String, String)>,
    /// Move `champion` to the new version only if this CV metric of bundle.json beats the
    /// current champion's (for example cv_accuracy_mean).
    #[arg(long, value_name = "METRIC")]
    pub promote_on: Option<String>,
    /// Direction of --promote-on.
    #[arg(long, value_enum, default_value_t = Direction::Maximize)]
    pub direction: Direction,
    /// MLflow tracking server [default: the local registry].
    #[arg(long, env = "MLFLOW_TRACKING_URI", value_name = "URL", value_parser = parse_tracking_uri)]
    pub tracking_uri: Option<String>,
}

/// `tabtune sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Input selection and validation policy.
    #[command(flatten)]
    pub input: InputArgs,
    /// The search space (TOML; see configs/sweeps/README.md).
    #[arg(long, value_name = "FILE", default_value = "configs/sweeps/gbdt.toml")]
    pub sweep: PathBuf,
    /// Study name [default: <task>-<sweep file stem>]. Rerunning with the same name and
    /// storage resumes the study.
    #[arg(long, value_name = "NAME")]
    pub study: Option<String>,
    /// Study storage: sqlite:///PATH (one machine, several processes) or
    /// postgresql://USER@HOST:PORT/DB (many machines).
    #[arg(long, value_name = "URL", default_value = tabtune_pipeline::sweep::storage::DEFAULT_STORAGE)]
    pub storage: String,
    /// Folds of each trial's cross-validation [default: the config's `cv.folds`].
    #[arg(long, value_name = "K", conflicts_with = "holdout")]
    pub folds: Option<usize>,
    /// Validate each trial on one stratified holdout of this share of the rows instead of
    /// k-fold CV (faster; the decision layer needs k-fold).
    #[arg(long, value_name = "SHARE")]
    pub holdout: Option<f64>,
    /// Finished (complete + pruned) trials the study should hold when the run ends.
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub n_trials: u64,
    /// Start no new trial after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
    /// Trials running at once (worker threads, at most 1024).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub workers: usize,
    /// Devices: auto, cpu, wgpu, cuda:N or cuda:N,M,... (workers are spread over them). Every
    /// family's trials use them (a forest trial grows its trees together on a GPU).
    #[arg(long, value_name = "DEVICE", default_value = "auto")]
    pub device: String,
    /// Trials per device when several devices are given.
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub trials_per_device: usize,
    /// Population mode: each worker asks for up to P trials at once and trains the neural
    /// ones whose architectures fit one stack as ONE model, and on a GPU the boosting ones of
    /// one growth policy as ONE batched fit (every trial × fold a member, each pruned on its
    /// own) and the forest ones with all their trees grown together fold by fold; the other
    /// trials of the batch run one by one. 1: off.
    #[arg(long, value_name = "P", default_value_t = 1)]
    pub population: usize,
    /// Sampler: random, grid, qmc, tpe, tpe-multivariate.
    #[arg(long, default_value = "tpe-multivariate")]
    pub sampler: String,
    /// Pruner: none, median, percentile:P, asha, hyperband, wilcoxon (with options, e.g.
    /// `median:n_startup_trials=5`).
    #[arg(long, default_value = "median")]
    pub pruner: String,
    /// Seed of the sampler, the splits and the models [default: the config's `cv.seed`].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Only these features reach the models: a file written by `tabtune select` (or a JSON
    /// list of feature names). Stored with the study, so `export` uses it too.
    #[arg(long, value_name = "FILE")]
    pub features: Option<PathBuf>,
    /// The decision layer's candidates, the best K complete trials (single trial, greedy
    /// ensemble, stacker, with or without class biases, scored by nested cross-fitting; 0:
    /// skip it).
    #[arg(long, value_name = "K", default_value_t = 10)]
    pub top_k: usize,
    /// The study's HTML report [default: reports/studies/<study>/report.html].
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// MLflow tracking server: every trial is logged there as a run (params, intermediate
    /// values, final metrics, tags linking study and trial) and the best model is registered.
    /// Always logged: reports/runs and reports/tensorboard/<study>/trial-N.
    #[arg(long, env = "MLFLOW_TRACKING_URI", value_name = "URL", value_parser = parse_tracking_uri)]
    pub tracking_uri: Option<String>,
    /// Track nothing (no local run records, TensorBoard files or MLflow runs).
    #[arg(long)]
    pub no_track: bool,
    /// After the sweep, fit the best trial on every row, write it to checkpoints/<study>-best
    /// and register it as a new version of this model, moving `champion` only if it beats the
    /// current champion's CV score [default with a tracking URI: the config's name].
    #[arg(long, value_name = "NAME")]
    pub register: Option<String>,
    /// What the registered best trial ships as (see `export --final`).
    #[arg(long = "final", value_name = "refit|folds|folds:N", default_value = "refit", value_parser = parse_final)]
    pub final_model: FinalModel,
}

/// `tabtune run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Minutes the whole run may take [default: the config's `run.budget-minutes`].
    #[arg(long, value_name = "MINUTES")]
    pub budget_minutes: Option<f64>,
    /// Trials of every sweep, instead of the config's `n-trials` / `gpu-n-trials` (a quick
    /// run: `--n-trials 2`).
    #[arg(long, value_name = "N")]
    pub n_trials: Option<u64>,
    /// Folds of each trial's cross-validation [default: the config's `cv.folds`].
    #[arg(long, value_name = "K")]
    pub folds: Option<usize>,
    /// Device of the neural and boosting trials: auto, cpu, wgpu, cuda:N. With a GPU the sweeps
    /// run their `gpu-n-trials` and `gpu-population` (boosting trials as batched fits).
    #[arg(long, value_name = "DEVICE", default_value = "auto")]
    pub device: String,
    /// Study storage (one study per sweep, resumed when the run is repeated).
    #[arg(long, value_name = "URL", default_value = tabtune_pipeline::sweep::storage::DEFAULT_STORAGE)]
    pub storage: String,
    /// Seed of the samplers, splits and models [default: the config's `cv.seed`].
    #[arg(long)]
    pub seed: Option<u64>,
    /// MLflow tracking server: trials are logged there and the champion is registered in its
    /// model registry (else checkpoints/registry).
    #[arg(long, env = "MLFLOW_TRACKING_URI", value_name = "URL", value_parser = parse_tracking_uri)]
    pub tracking_uri: Option<String>,
    /// Track nothing (no local run records, TensorBoard files or MLflow runs).
    #[arg(long)]
    pub no_track: bool,
    /// Never download: a missing data file is an error saying where to put it.
    #[arg(long)]
    pub no_fetch: bool,
    /// A `[run.presets.NAME]` of the config (the default config has `fast`, about 3 minutes,
    /// and `best`, its default, at most 10) [default: the config's `run.preset`].
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
}

/// `tabtune export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Input selection and validation policy (the rows the final model is fitted on).
    #[command(flatten)]
    pub input: InputArgs,
    /// The study whose best (or `--trial`) trial is fitted and written as a bundle.
    #[arg(long, value_name = "NAME", required_unless_present = "model")]
    pub study: Option<String>,
    /// Or a bundle to convert (`--format onnx|triton`): a folder or `models:/NAME@ALIAS`
    /// (resolved with MLFLOW_TRACKING_URI); a modified bundle is refused as `predict` refuses
    /// it.
    #[arg(long, value_name = "DIR|models:/NAME@ALIAS", conflicts_with = "study")]
    pub model: Option<String>,
    /// What to write: a tabtune bundle (`--study` only), one self-contained ONNX file
    /// (preprocessing inside; inputs the raw record columns, outputs `class` and
    /// `probabilities`), or a Triton model-repository entry (`<name>/1/model.onnx`,
    /// `config.pbtxt`, `labels.txt`). With `--study` the bundle is written first.
    #[arg(long, value_enum, default_value = "bundle")]
    pub format: ExportFormat,
    /// Its storage.
    #[arg(long, value_name = "URL", default_value = tabtune_pipeline::sweep::storage::DEFAULT_STORAGE)]
    pub storage: String,
    /// Export this trial instead of the best one.
    #[arg(long, value_name = "N")]
    pub trial: Option<u64>,
    /// The bundle folder, ONNX file or Triton repository [default:
    /// checkpoints/<study>-trial<N>, checkpoints/<name>.onnx, checkpoints/triton].
    #[arg(long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Device for fitting a neural or boosting model: auto, cpu, wgpu, cuda or cuda:N.
    #[arg(long, value_name = "DEVICE", default_value = "auto")]
    pub device: String,
    /// The model shipped: `refit` on every row, or `folds` (the trial's k fold models, the
    /// ones its out-of-fold predictions came from, averaged; `folds:N` adds N-1 model seeds).
    #[arg(long = "final", value_name = "refit|folds|folds:N", default_value = "refit", value_parser = parse_final)]
    pub final_model: FinalModel,
}

/// `tabtune export --format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// A tabtune bundle folder.
    Bundle,
    /// One ONNX file.
    Onnx,
    /// A Triton model-repository entry.
    Triton,
}

/// `tabtune select`.
#[derive(Debug, Args)]
pub struct SelectArgs {
    /// Input selection and validation policy.
    #[command(flatten)]
    pub input: InputArgs,
    /// Model family scoring each feature set (a tree family).
    #[arg(long, value_name = "FAMILY", default_value = "gbdt-leafwise")]
    pub model: String,
    /// A hyperparameter of that model, `NAME=VALUE` (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Forward (add features) or backward (drop features).
    #[arg(long, value_enum, default_value_t = Strategy::Forward)]
    pub strategy: Strategy,
    /// Folds of each feature set's cross-validation.
    #[arg(long, value_name = "K", default_value_t = 3)]
    pub folds: usize,
    /// Keep at least this share of the features.
    #[arg(long, value_name = "SHARE", default_value_t = 0.1)]
    pub min_share: f64,
    /// Keep at most this share of the features.
    #[arg(long, value_name = "SHARE", default_value_t = 0.4)]
    pub max_share: f64,
    /// Study name [default: <task>-select-<strategy>-<model>]; rerunning resumes it.
    #[arg(long, value_name = "NAME")]
    pub study: Option<String>,
    /// Study storage (as for `sweep`).
    #[arg(long, value_name = "URL", default_value = tabtune_pipeline::sweep::storage::DEFAULT_STORAGE)]
    pub storage: String,
    /// Seed of the splits and the model [default: the config's `cv.seed`].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where the chosen feature list goes [default: reports/studies/<study>/features.json].
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// MLflow tracking server: one run per candidate feature set (experiment = the study).
    #[arg(long, env = "MLFLOW_TRACKING_URI", value_name = "URL", value_parser = parse_tracking_uri)]
    pub tracking_uri: Option<String>,
    /// Track nothing (no local run records, TensorBoard files or MLflow runs).
    #[arg(long)]
    pub no_track: bool,
    /// Fit the chosen set's model on every row (checkpoints/<study>-selected) and register it
    /// as this model, moving `champion` only if it beats the current one's CV accuracy.
    #[arg(long, value_name = "NAME")]
    pub register: Option<String>,
}

/// `--final` values.
fn parse_final(text: &str) -> Result<FinalModel, String> {
    FinalModel::parse(text).ok_or_else(|| {
        format!("`{text}`: expected refit, folds or folds:N (N model seeds, 1..=16)")
    })
}

/// `--tracking-uri` values: empty (tracking off for MLflow) or http(s)://.
fn parse_tracking_uri(text: &str) -> Result<String, String> {
    let t = text.trim();
    if t.is_empty() || t.starts_with("http://") || t.starts_with("https://") {
        Ok(t.to_owned())
    } else {
        Err(format!(
            "`{text}`: expected the URL of an MLflow tracking server, for example http://127.0.0.1:5000"
        ))
    }
}

/// Counts that must let something through: an integer ≥ 1.
fn parse_count(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("expected at least 1, got `{text}`")),
    }
}

/// Timeouts: a number of seconds in (0, 86400].
fn parse_seconds(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!(
            "expected a number of seconds in (0, 86400], got `{text}`"
        )),
    }
}

/// `--threads`: 1 to 4 per core of this machine.
fn parse_threads(text: &str) -> Result<usize, String> {
    let cores = tabtune_models::max_threads();
    let most = cores.max(2) * 4;
    match text.parse::<usize>() {
        Ok(n) if (1..=most).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected an integer in 1..={most} (this machine has {cores} cores), got `{text}`"
        )),
    }
}
