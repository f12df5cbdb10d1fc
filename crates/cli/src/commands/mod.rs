//! One module per command.

pub mod describe;
pub mod eda;
pub mod export;
pub mod features;
pub mod fetch;
pub mod monitor;
pub mod predict;
pub mod registry;
pub mod run;
pub mod select;
pub mod serve;
pub mod sweep;
pub mod train;
