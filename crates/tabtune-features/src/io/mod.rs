//! Reading validated tables from CSV (and Parquet with the `polars` feature), writing tables,
//! and safe output writes (atomic for files; written through for `-`, FIFOs and devices).

mod atomic;
mod load;
mod manifest;
#[cfg(feature = "polars")]
mod parquet;
mod write;

#[cfg(feature = "fetch")]
pub(crate) use atomic::hex;
pub use atomic::{
    OutputTarget, canonical_json_sha256, sha256_bytes, sha256_file, write_atomic,
    write_bytes_atomic,
};
pub use load::{BOM_NOTE, LoadOptions, Loaded, load_table, load_table_mapped};
pub use manifest::{MANIFEST_KEY, ManifestCheck, check_manifest, manifest_sha256, seal_manifest};
pub use write::{OutputFormat, write_matrix};
