//! The queue directory's setup: its mode, the directory lock (`<dir>/lock`), `run/`, and the
//! mode and fsync of the files the queue creates in it.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result, io_err};

/// The subdirectory of runtime state shared by the processes (not queue data).
pub(crate) const RUN_DIR: &str = "run";

/// Creates the directory (0700) or checks that group and others cannot write to it.
pub(crate) fn prepare_dir(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) => {
            if !m.is_dir() {
                return Err(Error::Io {
                    path: dir.to_path_buf(),
                    op: "open queue directory",
                    source: std::io::Error::other("not a directory"),
                });
            }
            let mode = m.permissions().mode() & 0o7777;
            if mode & 0o022 != 0 {
                return Err(Error::Permissions {
                    path: dir.to_path_buf(),
                    mode,
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err(dir, "create directory"))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
            Ok(())
        }
        Err(e) => Err(io_err(dir, "open queue directory")(e)),
    }
}

/// Creates `<dir>/<name>` with mode 0700 if it is missing; returns its path.
pub(crate) fn make_subdir(dir: &Path, name: &str) -> Result<PathBuf> {
    let sub = dir.join(name);
    if let Err(e) = std::fs::DirBuilder::new().mode(0o700).create(&sub)
        && e.kind() != std::io::ErrorKind::AlreadyExists
    {
        return Err(io_err(&sub, "create directory")(e));
    }
    Ok(sub)
}

/// Opens (creating with mode 0600) a file of the queue.
pub(crate) fn open_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path, "open"))
}

/// Creates (or empties) a temporary file of the queue, mode 0600.
pub(crate) fn create_tmp(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path, "create"))
}

/// fsyncs a directory, so that a create, rename or delete in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir, "fsync directory"))
}

/// `<dir>/lock`, `flock`ed around every transaction (catch-up + decide + append) and around
/// opening the log.
pub(crate) struct DirLock {
    file: File,
    path: PathBuf,
}

impl DirLock {
    /// Opens (creating) the lock file of `dir`.
    pub(crate) fn open(dir: &Path) -> Result<DirLock> {
        let path = dir.join("lock");
        let file = open_file(&path)?;
        Ok(DirLock { file, path })
    }

    /// Takes the lock, waiting for other processes (and handles) to let go of it.
    pub(crate) fn lock(&self) -> Result<()> {
        self.file.lock().map_err(io_err(&self.path, "lock"))
    }

    /// Lets go of the lock.
    pub(crate) fn unlock(&self) {
        let _ = self.file.unlock();
    }

    /// Runs `f` under the lock.
    pub(crate) fn with<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.lock()?;
        let r = f();
        self.unlock();
        r
    }
}
