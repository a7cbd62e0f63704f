//! The queue directory's setup: its checks (see `trust.rs`), the directory lock (`<dir>/lock`),
//! `run/`, and how the files the queue keeps in it are opened and created (`sync.rs` syncs them).

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Result, io_err};
use crate::sync::{SyncPoint, sync_dir};
use crate::trust::{self, Trust};

/// The subdirectory of runtime state shared by the processes (not queue data).
pub(crate) const RUN_DIR: &str = "run";

/// Creates the directory (0700; in group mode 2770) or checks that it is the effective user's
/// and that group and others cannot write to it (in group mode: see `trust.rs`); then checks its
/// parents (see `trust.rs`).
pub(crate) fn prepare_dir(dir: &Path, trust: Trust) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) => {
            if !m.is_dir() {
                return Err(Error::Io {
                    path: dir.to_path_buf(),
                    op: "open queue directory",
                    source: std::io::Error::other("not a directory"),
                });
            }
            trust::check_queue_dir(dir, &m, trust)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err(dir, "create directory"))?;
            set_mode(dir, trust)?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent, SyncPoint::QueueDirCreate)?;
            }
        }
        Err(e) => return Err(io_err(dir, "open queue directory")(e)),
    }
    trust::check_parents(dir, trust)
}

/// Creates `<dir>/<name>` with mode 0700 (in group mode 2770) if it is missing, and checks that
/// it is a real directory of ours (not a link to one elsewhere); returns its path.
pub(crate) fn make_subdir(dir: &Path, name: &str, trust: Trust) -> Result<PathBuf> {
    let sub = dir.join(name);
    match std::fs::DirBuilder::new().mode(0o700).create(&sub) {
        Ok(()) => set_mode(&sub, trust)?,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err(&sub, "create directory")(e)),
    }
    trust::check_subdir(&sub, trust)?;
    Ok(sub)
}

/// Gives a directory the queue just made its mode, whatever the umask took away (made as 0700,
/// so nobody else could use it in between).
fn set_mode(dir: &Path, trust: Trust) -> Result<()> {
    match trust {
        Trust::Owner => Ok(()),
        Trust::Group => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(trust.dir_mode()))
            .map_err(io_err(dir, "chmod")),
    }
}

/// Gives a file of the queue that this user owns its group mode (0660), whatever the umask took
/// away when it was created.
fn share_file(path: &Path, file: &File, trust: Trust) -> Result<()> {
    if trust == Trust::Owner {
        return Ok(());
    }
    let meta = file.metadata().map_err(io_err(path, "stat"))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let mine = meta.uid() == unsafe { libc::geteuid() };
    if mine && meta.permissions().mode() & 0o7777 != trust.file_mode() {
        file.set_permissions(std::fs::Permissions::from_mode(trust.file_mode()))
            .map_err(io_err(path, "chmod"))?;
    }
    Ok(())
}

/// Flags for every file the queue opens in its directory: never through a symbolic link, and
/// without waiting on a FIFO (which the check that follows then refuses); regular files ignore
/// `O_NONBLOCK`.
const NO_LINKS: i32 = libc::O_NOFOLLOW | libc::O_NONBLOCK;

/// Opens (creating with mode 0600; in group mode 0660) a file of the queue; refuses anything but
/// a regular file of ours.
pub(crate) fn open_file(path: &Path, trust: Trust) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(NO_LINKS)
        .open(path)
        .map_err(trust::open_error(path, "open"))?;
    trust::check_file(path, &file, trust)?;
    share_file(path, &file, trust)?;
    Ok(file)
}

/// Creates a temporary file of the queue afresh (mode 0600, in group mode 0660; `O_EXCL`),
/// removing one left over.
pub(crate) fn create_tmp(path: &Path, trust: Trust) -> Result<File> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(path, "remove")(e)),
        _ => {}
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(NO_LINKS)
        .open(path)
        .map_err(trust::open_error(path, "create"))?;
    share_file(path, &file, trust)?;
    Ok(file)
}

/// `<dir>/lock`, `flock`ed around every transaction (catch-up + decide + append) and around
/// opening the log.
///
/// It also tells whether the directory is still the one the handle opened: while the handle
/// holds the file open its inode cannot be reused, so a lock file with no link left, or a `lock`
/// path that is gone or names another inode, means the directory was removed or replaced.
pub(crate) struct DirLock {
    file: File,
    path: PathBuf,
    dir: PathBuf,
    /// The lock file's device and inode.
    id: (u64, u64),
    /// When the path was last looked up (see [`DirLock::check_same`]).
    looked_up: Mutex<Instant>,
}

/// How often a transaction looks the lock file up by its path. A look-up walks the path, about
/// a third of the time of a transaction without fsync; in between, an `fstat` of the open file
/// (a tenth of it) sees a removed directory, and only one moved away and replaced goes unseen
/// for up to this long.
const LOOK_UP_EVERY: Duration = Duration::from_millis(500);

impl DirLock {
    /// Opens (creating) the lock file of `dir`.
    pub(crate) fn open(dir: &Path, trust: Trust) -> Result<DirLock> {
        let path = dir.join("lock");
        let file = open_file(&path, trust)?;
        let m = file.metadata().map_err(io_err(&path, "stat"))?;
        Ok(DirLock {
            file,
            path,
            dir: dir.to_path_buf(),
            id: (m.dev(), m.ino()),
            looked_up: Mutex::new(Instant::now()),
        })
    }

    /// The lock file's device and inode: which directory this is, while it lives.
    pub(crate) fn id(&self) -> (u64, u64) {
        self.id
    }

    /// Fails with [`Error::Replaced`] if the directory is no longer the one this handle opened:
    /// its lock file has no link left (checked every time), or the `lock` path is gone or names
    /// another file (checked every [`LOOK_UP_EVERY`], and whenever `now` is asked for).
    pub(crate) fn check_same(&self, now: bool) -> Result<()> {
        let m = self.file.metadata().map_err(io_err(&self.path, "stat"))?;
        if m.nlink() == 0 {
            return Err(self.replaced());
        }
        {
            let mut at = self.looked_up.lock().unwrap_or_else(|e| e.into_inner());
            if !now && at.elapsed() < LOOK_UP_EVERY {
                return Ok(());
            }
            *at = Instant::now();
        }
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if (m.dev(), m.ino()) == self.id => Ok(()),
            Ok(_) => Err(self.replaced()),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                Err(self.replaced())
            }
            Err(e) => Err(io_err(&self.path, "stat")(e)),
        }
    }

    fn replaced(&self) -> Error {
        Error::Replaced {
            path: self.dir.clone(),
        }
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
