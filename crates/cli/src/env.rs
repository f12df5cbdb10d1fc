//! Environment variables the command line reads (one place, so they are easy to find).

/// Overrides the config's data folder (`--data-dir` wins over it).
pub const TABTUNE_DATA_DIR: &str = "TABTUNE_DATA_DIR";
/// The config file (`--config` wins over it).
pub const TABTUNE_CONFIG: &str = "TABTUNE_CONFIG";
/// Log filter, as in `tracing-subscriber` (`-v`/`-q` set it when unset).
pub const RUST_LOG: &str = "RUST_LOG";
