//! Folder adapter: blobs as files under one directory (the local server's data directory, for
//! example `<data dir>/blobs`). A key is a relative path: `attachments/ab/cd.pdf` is the file
//! `<dir>/attachments/ab/cd.pdf`.
//!
//! Keys are checked by [`check_key`] (the S3 adapter applies the same rule), so no key escapes the
//! directory. A put writes a temporary file next to the target, syncs it and renames it over the
//! target, so readers (in this process or another) see the old bytes or the new, never a mix.
//! One limitation a bucket does not have: a key cannot be both an object and a "folder"
//! (`a` and `a/b`); such a put fails with [`BlobError::Other`].

use super::{BlobError, BlobStore};
use async_trait::async_trait;
use bytes::Bytes;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

/// Checks that `key` is a relative `/`-separated path of non-empty `[A-Za-z0-9._-]` segments,
/// none of them `.` or `..`, at most 1024 bytes long (S3's limit).
pub fn check_key(key: &str) -> Result<(), BlobError> {
    let valid = !key.is_empty()
        && key.len() <= 1024
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'-'))
        && key
            .split('/')
            .all(|segment| !matches!(segment, "" | "." | ".."));
    if valid {
        Ok(())
    } else {
        Err(BlobError::Other(format!("invalid blob key {key:?}")))
    }
}

/// Blobs in a directory.
#[derive(Debug, Clone)]
pub struct FolderBlobs {
    root: PathBuf,
}

impl FolderBlobs {
    /// Blobs under `root`, which is created (with its parents) on the first put.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory holding the blobs.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf, BlobError> {
        check_key(key)?;
        Ok(self.root.join(key))
    }
}

fn io_error(what: &str, key: &str, e: std::io::Error) -> BlobError {
    BlobError::Other(format!("{what} blob {key:?}: {e}"))
}

async fn blocking<T, F>(f: F) -> Result<T, BlobError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, BlobError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BlobError::Other(e.to_string()))?
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, then renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = parent.join(format!(".{name}.tmp-{:016x}", rand::random::<u64>()));
    let written = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

#[async_trait]
impl BlobStore for FolderBlobs {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), BlobError> {
        let path = self.path(key)?;
        let key = key.to_string();
        blocking(move || write_atomically(&path, &bytes).map_err(|e| io_error("put", &key, e)))
            .await
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, BlobError> {
        let path = self.path(key)?;
        let key = key.to_string();
        blocking(move || match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(Bytes::from(bytes))),
            // A missing file, a "folder" of other keys, or a path under a file: no object here.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::NotFound | ErrorKind::IsADirectory | ErrorKind::NotADirectory
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(io_error("get", &key, e)),
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        let path = self.path(key)?;
        let key = key.to_string();
        blocking(move || {
            if path.is_dir() {
                return Ok(());
            }
            match std::fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                    Ok(())
                }
                Err(e) => Err(io_error("delete", &key, e)),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_relative_paths_of_safe_segments() {
        for good in ["a", "a/b/c.txt", "x-1_y.Z", ".hidden", "a/..b"] {
            assert!(check_key(good).is_ok(), "{good}");
        }
        for bad in [
            "", "/a", "a/", "a//b", "..", "a/../b", "./a", "a/./b", "a b", "a\\b", "é", "a?b",
            "a\0b",
        ] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        assert!(check_key(&"k".repeat(1025)).is_err());
    }

    #[tokio::test]
    async fn a_put_leaves_no_temporary_file_behind() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = FolderBlobs::new(dir.path().join("blobs"));
        blobs.put("a/b", Bytes::from_static(b"x")).await.unwrap();
        blobs.put("a/b", Bytes::from_static(b"y")).await.unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path().join("blobs/a"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["b"]);
    }

    #[tokio::test]
    async fn a_key_that_is_a_folder_of_other_keys_holds_no_object() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = FolderBlobs::new(dir.path());
        blobs.put("a/b", Bytes::from_static(b"x")).await.unwrap();
        assert_eq!(blobs.get("a").await.unwrap(), None);
        blobs.delete("a").await.unwrap();
        assert!(blobs.get("a/b").await.unwrap().is_some());
        // Under a file, nothing can exist.
        assert_eq!(blobs.get("a/b/c").await.unwrap(), None);
        blobs.delete("a/b/c").await.unwrap();
    }
}
