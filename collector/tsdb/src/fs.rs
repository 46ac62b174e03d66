//! File-system plumbing shared by the TSDB formats and the collector: [`FsError`], an I/O error
//! with the operation and path it belongs to, and [`sync_dir`].

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// A file-system operation failed. Displays as `<op> <path>`; the OS error is the `source()`.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}", path.display())]
pub struct FsError {
    /// What was being done, e.g. `create segment`.
    pub op: &'static str,
    /// The file or directory it was done to.
    pub path: PathBuf,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

impl FsError {
    /// For `map_err`: wraps an I/O error with `op` and `path`. The path is copied only when an
    /// error occurs, so this is cheap on hot write paths.
    pub fn at<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> FsError + 'a {
        move |source| FsError {
            op,
            path: path.to_owned(),
            source,
        }
    }
}

/// Fsyncs directory `dir`, so that creations, renames and deletions in it survive a crash.
/// Errors: `dir` cannot be opened or synced.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_op_and_path_and_keeps_the_cause() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("absent");
        let err = File::open(&missing)
            .map_err(FsError::at("open", &missing))
            .expect_err("missing");
        assert_eq!(err.op, "open");
        assert_eq!(err.path, missing);
        assert_eq!(err.to_string(), format!("open {}", missing.display()));
        let cause = std::error::Error::source(&err).expect("source");
        assert_eq!(cause.to_string(), err.source.to_string());
        assert_eq!(err.source.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn sync_dir_syncs_directories_and_fails_on_missing_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        sync_dir(dir.path()).expect("sync");
        let err = sync_dir(&dir.path().join("absent")).expect_err("missing");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
