//! Where cold files live.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::{ColdAccess, ColdError};

/// One object under the cold root.
#[derive(Debug, Clone)]
pub struct ColdObject {
    /// Relative to the cold root.
    pub path: String,
    pub size: u64,
    pub last_modified_ms: i64,
}

/// The cold root: an object store whose paths are relative to it.
#[derive(Debug, Clone)]
pub struct ColdStore {
    store: Arc<dyn ObjectStore>,
    /// For logs and status: the directory or URL, never shown to tenants.
    location: String,
    /// Set for a local directory: files are fsync'd there before the manifest names them.
    local_root: Option<PathBuf>,
}

impl ColdStore {
    /// `location` is `None` for `<data_dir>/cold`, a `file://` URL or an absolute path for
    /// another directory, or an object-store URL: `s3://bucket/prefix` (also S3-compatible
    /// stores through `AWS_ENDPOINT`), `gs://bucket/prefix` or `az://container/prefix`,
    /// configured by the `AWS_*`, `GOOGLE_*` and `AZURE_*` environment variables.
    /// `memory://` is refused: compacted rows leave the hot tier, so they would be lost at
    /// the next restart.
    pub fn open(data_dir: &Path, location: Option<&str>) -> Result<ColdStore, ColdError> {
        match location {
            None => Self::local(&data_dir.join("cold")),
            Some(location) if location.starts_with('/') => Self::local(Path::new(location)),
            Some(location) => {
                let url = url::Url::parse(location).map_err(|e| ColdError::Location {
                    location: location.to_string(),
                    reason: format!("not a URL: {e}"),
                })?;
                if url.scheme() == "file" {
                    let dir = url.to_file_path().map_err(|()| ColdError::Location {
                        location: location.to_string(),
                        reason: "a file:// URL needs an absolute local path".to_string(),
                    })?;
                    return Self::local(&dir);
                }
                if url.scheme() == "memory" {
                    return Err(ColdError::Location {
                        location: location.to_string(),
                        reason: "an in-memory store would lose compacted data at restart; \
                                 use a directory or an s3://, gs:// or az:// URL"
                            .to_string(),
                    });
                }
                let (store, prefix) = object_store::parse_url_opts(&url, cloud_options_from_env())
                    .map_err(|e| ColdError::Location {
                        location: location.to_string(),
                        reason: e.to_string(),
                    })?;
                let store: Arc<dyn ObjectStore> = if prefix.as_ref().is_empty() {
                    Arc::from(store)
                } else {
                    Arc::new(PrefixStore::new(store, prefix))
                };
                Ok(ColdStore {
                    store,
                    location: location.to_string(),
                    local_root: None,
                })
            }
        }
    }

    fn local(dir: &Path) -> Result<ColdStore, ColdError> {
        std::fs::create_dir_all(dir).map_err(|e| ColdError::Location {
            location: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let store = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| ColdError::Location {
                location: dir.display().to_string(),
                reason: e.to_string(),
            })?
            // Removing a file's last object also removes its now-empty day directories.
            .with_automatic_cleanup(true);
        Ok(ColdStore {
            store: Arc::new(store),
            location: dir.display().to_string(),
            local_root: Some(dir.to_path_buf()),
        })
    }

    /// Fails unless the store answers a listing of the root: a missing bucket, wrong
    /// credentials or an unreachable endpoint stop the server at startup, with the reason,
    /// instead of failing the first compaction minutes later.
    pub async fn check_reachable(&self, timeout: Duration) -> Result<(), ColdError> {
        if self.local_root.is_some() {
            return Ok(());
        }
        let probe = async {
            let mut listing = self.store.list(None);
            listing.try_next().await.map(|_| ())
        };
        match tokio::time::timeout(timeout, probe).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ColdError::Location {
                location: self.location.clone(),
                reason: format!("cannot list the store: {e}"),
            }),
            Err(_) => Err(ColdError::Location {
                location: self.location.clone(),
                reason: format!("no answer within {} s", timeout.as_secs()),
            }),
        }
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    /// What the query engine needs to read the files.
    pub fn access(&self) -> ColdAccess {
        ColdAccess::new(self.store.clone())
    }

    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    pub async fn put(&self, path: &str, bytes: Bytes) -> Result<(), ColdError> {
        self.store
            .put(&ObjectPath::from(path), PutPayload::from(bytes))
            .await?;
        if let Some(root) = &self.local_root {
            // The manifest will name this file and the hot copy may later be dropped, so it
            // must survive a power cut, not only a process crash.
            let file = root.join(path);
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                std::fs::File::open(&file)?.sync_all()?;
                if let Some(dir) = file.parent() {
                    std::fs::File::open(dir)?.sync_all()?;
                }
                Ok(())
            })
            .await
            .map_err(|e| ColdError::Job(e.to_string()))?
            .map_err(|e| ColdError::Location {
                location: path.to_string(),
                reason: format!("syncing the file: {e}"),
            })?;
        }
        Ok(())
    }

    pub async fn get(&self, path: &str) -> Result<Bytes, ColdError> {
        Ok(self
            .store
            .get(&ObjectPath::from(path))
            .await?
            .bytes()
            .await?)
    }

    /// Deletes an object; one that is already gone is not an error.
    pub async fn delete(&self, path: &str) -> Result<(), ColdError> {
        match self.store.delete(&ObjectPath::from(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every object under the root.
    pub async fn list(&self) -> Result<Vec<ColdObject>, ColdError> {
        let metas: Vec<_> = self.store.list(None).try_collect().await?;
        Ok(metas
            .into_iter()
            .map(|meta| ColdObject {
                path: meta.location.to_string(),
                size: meta.size,
                last_modified_ms: meta.last_modified.timestamp_millis(),
            })
            .collect())
    }
}

/// Environment variables that configure the cloud stores, in the names their SDKs use
/// (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, `GOOGLE_SERVICE_ACCOUNT`,
/// `AZURE_STORAGE_ACCOUNT_NAME`, ...). Each store's builder takes the keys it knows and ignores
/// the rest, so passing every prefixed variable is safe.
fn cloud_options_from_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)))
        .filter(|(key, _)| {
            ["AWS_", "GOOGLE_", "AZURE_"]
                .iter()
                .any(|prefix| key.starts_with(prefix))
        })
        .collect()
}
