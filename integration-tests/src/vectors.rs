//! Where the reference test vectors are: `DATA_API_VECTORS`, or `../shared/vectors`
//! beside the repository. Their licence keeps them out of the repository, so
//! runners read them at run time.

use std::path::PathBuf;

/// The vectors directory. Panics with instructions when it cannot be found,
/// unless `DATA_API_TEST_NO_VECTORS=1` (then the caller reports the skip).
pub fn vectors_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("DATA_API_VECTORS") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.is_dir(),
            "DATA_API_VECTORS={} is not a directory",
            dir.display()
        );
        return Some(dir);
    }
    let beside_repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors");
    if beside_repo.is_dir() {
        return Some(beside_repo);
    }
    if std::env::var("DATA_API_TEST_NO_VECTORS").as_deref() == Ok("1") {
        eprintln!("SKIPPED (DATA_API_TEST_NO_VECTORS=1): no test vectors");
        return None;
    }
    panic!(
        "the conformance vectors were not found: set DATA_API_VECTORS to the directory holding \
         crud-unified/ and bson-corpus/ (or DATA_API_TEST_NO_VECTORS=1 to skip on purpose)"
    );
}
