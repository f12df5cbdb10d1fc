//! The checksum of a manifest file itself (`bundle.json`): the sha256 of the manifest's JSON
//! in canonical form without the checksum field, stored in that field. A manifest edited after
//! it was written (a metric, a class name, a file checksum) no longer matches and is refused.
//! Old manifests without the field are reported as [`ManifestCheck::Absent`] for the caller to
//! accept with a note.
//!
//! What it detects: any edit made without recomputing the checksum (by hand, by a script that
//! rewrites one value, a damaged copy). It is not a signature: someone who knows the scheme
//! can recompute it.

use serde_json::Value;

use super::atomic::canonical_json_sha256;

/// The key of the manifest's own checksum.
pub const MANIFEST_KEY: &str = "manifest_sha256";

/// The outcome of [`check_manifest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestCheck {
    /// The manifest carries its checksum and it matches.
    Verified,
    /// The manifest carries no checksum (written before manifests had one).
    Absent,
}

/// The checksum of `manifest` (an object): the canonical sha256 of everything but
/// [`MANIFEST_KEY`].
pub fn manifest_sha256(manifest: &Value) -> String {
    match manifest {
        Value::Object(map) if map.contains_key(MANIFEST_KEY) => {
            let mut rest = map.clone();
            rest.remove(MANIFEST_KEY);
            canonical_json_sha256(&Value::Object(rest))
        }
        other => canonical_json_sha256(other),
    }
}

/// Adds (or replaces) the manifest's checksum.
pub fn seal_manifest(manifest: &mut Value) {
    let digest = manifest_sha256(manifest);
    if let Value::Object(map) = manifest {
        map.insert(MANIFEST_KEY.to_owned(), Value::String(digest));
    }
}

/// Checks the manifest's own checksum; the error says what does not match.
pub fn check_manifest(manifest: &Value) -> Result<ManifestCheck, String> {
    match manifest.get(MANIFEST_KEY) {
        None => Ok(ManifestCheck::Absent),
        Some(Value::String(stored)) => {
            let actual = manifest_sha256(manifest);
            if &actual == stored {
                Ok(ManifestCheck::Verified)
            } else {
                Err(format!(
                    "its {MANIFEST_KEY} {stored} does not match its content ({actual}): it was \
                     edited after it was written; refusing it"
                ))
            }
        }
        Some(other) => Err(format!(
            "its {MANIFEST_KEY} is {}; expected a sha256 string",
            crate::text::clip(&other.to_string())
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_manifest_verifies_and_any_edit_is_caught() {
        let mut m = serde_json::json!({"name": "b", "metrics": {"cv_accuracy_mean": 0.9}});
        assert_eq!(check_manifest(&m), Ok(ManifestCheck::Absent));
        seal_manifest(&mut m);
        assert_eq!(check_manifest(&m), Ok(ManifestCheck::Verified));
        // Re-serialised with other whitespace and key order: still the same manifest.
        let text = serde_json::to_string_pretty(&m).expect("json");
        let again: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(check_manifest(&again), Ok(ManifestCheck::Verified));
        let mut edited = m.clone();
        edited["metrics"]["cv_accuracy_mean"] = serde_json::json!(0.999);
        let err = check_manifest(&edited).expect_err("edited");
        assert!(err.contains("edited after it was written"), "{err}");
        let mut bad = m;
        bad[MANIFEST_KEY] = serde_json::json!(7);
        assert!(
            check_manifest(&bad)
                .expect_err("not a string")
                .contains("sha256 string")
        );
    }
}
