//! The heads of all tenants, one per directory `<tsdb.path>/<tenant>/`, as Thanos Receive's
//! `pkg/receive/multitsdb.go` (`MultiTSDB`): created on the first request of a tenant, reopened
//! (WAL replay) on start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use prometheus_client::registry::Registry;
use tracing::info;
use trawl_tsdb::fs::FsError;

use crate::head::{Head, HeadError, HeadMetrics, HeadOptions, WAL_DIR};

/// Longest tenant name accepted, in bytes.
pub const MAX_TENANT_LEN: usize = 64;

/// Names the collector itself uses under `--tsdb.path` (the embedded bucket), refused as tenants.
pub const RESERVED_TENANTS: &[&str] = &["bucket"];

/// Checks that `tenant` can name its directory: 1 to [`MAX_TENANT_LEN`] characters of
/// `[A-Za-z0-9_.-]`, not `.` or `..`, not one of [`RESERVED_TENANTS`]. The error
/// ([`HeadError::InvalidTenant`], the name cut to 80 characters) makes the receiver answer 400.
pub fn validate_tenant(tenant: &str) -> Result<(), HeadError> {
    let reason = if tenant.is_empty() {
        Some("empty")
    } else if tenant.len() > MAX_TENANT_LEN {
        Some("longer than 64 characters")
    } else if !tenant
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        Some("only A-Z, a-z, 0-9, '_', '.' and '-' are allowed")
    } else if tenant == "." || tenant == ".." {
        Some("not a directory name")
    } else if RESERVED_TENANTS.contains(&tenant) {
        Some("reserved")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(HeadError::InvalidTenant {
            tenant: tenant.chars().take(80).collect(),
            reason,
        }),
    }
}

/// The heads of all tenants of one collector. `Send + Sync`; lookups of known tenants take a
/// read lock only.
#[derive(Debug)]
pub struct Tenants {
    tsdb_path: PathBuf,
    opts: HeadOptions,
    metrics: HeadMetrics,
    heads: RwLock<HashMap<String, Arc<Head>>>,
}

impl Tenants {
    /// Opens the heads of every tenant directory under `tsdb_path` (created if missing): each
    /// subdirectory with a valid tenant name and a `wal/` directory; their WALs are replayed.
    /// Registers the head metrics into `registry`. Errors: options, I/O, a head that fails to
    /// open (corrupt WAL or block meta).
    pub fn open(tsdb_path: &Path, opts: HeadOptions, registry: &mut Registry) -> Result<Tenants, HeadError> {
        opts.validate()?;
        std::fs::create_dir_all(tsdb_path).map_err(FsError::at("create tsdb directory", tsdb_path))?;
        let metrics = HeadMetrics::new(registry);
        let mut heads = HashMap::new();
        for entry in std::fs::read_dir(tsdb_path).map_err(FsError::at("list tsdb directory", tsdb_path))? {
            let entry = entry.map_err(FsError::at("list tsdb directory", tsdb_path))?;
            let name = entry.file_name();
            let Some(tenant) = name.to_str() else { continue };
            let dir = entry.path();
            if validate_tenant(tenant).is_err() || !dir.join(WAL_DIR).is_dir() {
                continue;
            }
            let head = Head::open(&dir, tenant, opts.clone(), metrics.clone())?;
            info!(message = "Opened tenant head.", tenant, series = head.num_series());
            heads.insert(tenant.to_owned(), Arc::new(head));
        }
        Ok(Tenants {
            tsdb_path: tsdb_path.to_owned(),
            opts,
            metrics,
            heads: RwLock::new(heads),
        })
    }

    /// The head of `tenant`, opened (directory and WAL created) on first use. Errors:
    /// [`HeadError::InvalidTenant`] for a name that fails [`validate_tenant`], or the errors of
    /// [`Head::open`].
    pub fn get_or_create(&self, tenant: &str) -> Result<Arc<Head>, HeadError> {
        if let Some(head) = self.heads.read().unwrap_or_else(PoisonError::into_inner).get(tenant) {
            return Ok(head.clone());
        }
        validate_tenant(tenant)?;
        let mut heads = self.heads.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(head) = heads.get(tenant) {
            return Ok(head.clone());
        }
        let dir = self.tsdb_path.join(tenant);
        let head = Arc::new(Head::open(&dir, tenant, self.opts.clone(), self.metrics.clone())?);
        info!(message = "Created tenant head.", tenant);
        heads.insert(tenant.to_owned(), head.clone());
        Ok(head)
    }

    /// Every tenant with its head, sorted by tenant name.
    pub fn all(&self) -> Vec<(String, Arc<Head>)> {
        let heads = self.heads.read().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<_> = heads.iter().map(|(t, h)| (t.clone(), h.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// The directory holding the tenant directories (`--tsdb.path`).
    pub fn tsdb_path(&self) -> &Path {
        &self.tsdb_path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::SeriesInput;

    const UP: &[(&str, &str)] = &[("__name__", "up"), ("job", "node")];

    #[test]
    fn tenant_names_that_are_not_plain_directory_names_are_refused() {
        let long = "a".repeat(65);
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../etc",
            "/abs",
            "a\\b",
            "a\0b",
            "a b",
            " a",
            "a\n",
            "ü",
            "tenant:1",
            "%2e%2e",
            "a*",
            "bucket",
            long.as_str(),
        ] {
            let err = validate_tenant(bad).expect_err(bad);
            assert!(matches!(err, HeadError::InvalidTenant { .. }), "{bad:?}: {err:?}");
        }
        let max = "Z".repeat(64);
        for good in ["default-tenant", "A.b_c-1", "...", ".hidden", "0", max.as_str()] {
            validate_tenant(good).expect(good);
        }
        let err = validate_tenant(&"x/".repeat(1000)).expect_err("long");
        assert!(err.to_string().len() < 200, "error text is bounded: {err}");
    }

    #[test]
    fn get_or_create_validates_and_reuses_heads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tenants = Tenants::open(dir.path(), HeadOptions::default(), &mut Registry::default()).expect("open");
        assert!(tenants.get_or_create("../escape").is_err());
        assert!(!dir.path().parent().expect("parent").join("escape").exists());
        let a = tenants.get_or_create("team-a").expect("team-a");
        let again = tenants.get_or_create("team-a").expect("team-a");
        assert!(Arc::ptr_eq(&a, &again));
        assert!(dir.path().join("team-a").join(WAL_DIR).is_dir());
        tenants.get_or_create("team-b").expect("team-b");
        let names: Vec<String> = tenants.all().into_iter().map(|(t, _)| t).collect();
        assert_eq!(names, ["team-a", "team-b"]);
    }

    #[test]
    fn open_reopens_existing_tenants() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let tenants = Tenants::open(dir.path(), HeadOptions::default(), &mut Registry::default()).expect("open");
            let head = tenants.get_or_create("team-a").expect("team-a");
            let mut app = head.appender();
            app.append(SeriesInput {
                labels: UP,
                samples: &[(1_000, 1.0)],
            });
            assert_eq!(app.commit().expect("commit").appended, 1);
        }
        // Directories that are not tenant heads are left alone.
        std::fs::create_dir_all(dir.path().join("bucket").join(WAL_DIR)).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("no-wal")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("bad name").join(WAL_DIR)).expect("mkdir");
        std::fs::write(dir.path().join("file"), b"x").expect("write");
        let tenants = Tenants::open(dir.path(), HeadOptions::default(), &mut Registry::default()).expect("reopen");
        let all = tenants.all();
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].0.as_str(), all[0].1.num_series()), ("team-a", 1));
    }

    #[test]
    fn invalid_options_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = HeadOptions {
            block_duration_ms: 0,
            ..HeadOptions::default()
        };
        assert!(Tenants::open(dir.path(), opts, &mut Registry::default()).is_err());
    }
}
