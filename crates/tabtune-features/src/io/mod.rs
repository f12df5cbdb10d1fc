//! Reading validated tables from CSV (and Parquet with the `polars` feature), writing tables,
//! and atomic file writes.

mod atomic;
mod load;
#[cfg(feature = "polars")]
mod parquet;
mod write;

#[cfg(feature = "fetch")]
pub(crate) use atomic::hex;
pub use atomic::{sha256_file, write_atomic, write_bytes_atomic};
pub use load::{LoadOptions, Loaded, load_table};
pub use write::{OutputFormat, write_matrix};
