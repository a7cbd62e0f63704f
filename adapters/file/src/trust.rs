//! Whom the queue trusts. The directory must belong to the effective user and be writable by
//! nobody else; each of its parents up to `/` must belong to root or to that user and be
//! writable by nobody else unless sticky (like `/tmp`), as ssh requires of the files it trusts;
//! and what the queue keeps in it (`lock`, `run/`, `run/sync`, segments, `corrupt/`) must be
//! the user's own regular files and real directories, never symbolic links or special files.
//! Whoever else can write there can forge jobs for the handlers, or make the queue write,
//! create or move files elsewhere.

use std::fs::{File, Metadata};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::error::{Error, Result, io_err};

/// Who besides the effective user the queue trusts with its directory.
///
/// The seam for a shared mode (`[file] group = true`, where the members of the directory's group
/// may use the queue too): it would add a variant here, chosen from `Options`, and relax the
/// owner and group-write checks below for it. Only the owner mode exists today.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trust {
    /// Only the effective user (and root, for the parents).
    Owner,
}

/// The effective user id of this process.
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn untrusted(path: &Path, problem: String) -> Error {
    Error::Untrusted {
        path: path.to_path_buf(),
        problem,
    }
}

/// Checks the queue directory itself (`meta` from `stat`): the effective user's, and not
/// writable by group or others.
pub(crate) fn check_queue_dir(dir: &Path, meta: &Metadata, trust: Trust) -> Result<()> {
    let Trust::Owner = trust;
    let me = euid();
    if meta.uid() != me {
        return Err(untrusted(
            dir,
            format!(
                "the queue directory belongs to uid {}, not to this user (uid {me}), who could \
                 then forge or delete its jobs; use a directory of your own, or `chown` this one \
                 to uid {me} if its files are to be trusted",
                meta.uid()
            ),
        ));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(Error::Permissions {
            path: dir.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Checks every parent of the queue directory up to `/` (of its real path, links resolved):
/// root's or the effective user's, and not writable by group or others unless sticky. Otherwise
/// someone else could swap the queue directory for one of their own.
pub(crate) fn check_parents(dir: &Path, trust: Trust) -> Result<()> {
    let Trust::Owner = trust;
    let me = euid();
    let real = std::fs::canonicalize(dir).map_err(io_err(dir, "resolve the path of"))?;
    for parent in real.ancestors().skip(1) {
        let meta = std::fs::metadata(parent).map_err(io_err(parent, "stat"))?;
        if meta.uid() != 0 && meta.uid() != me {
            return Err(untrusted(
                parent,
                format!(
                    "a parent of the queue directory {} belongs to uid {}, neither root nor this \
                     user (uid {me}), who could swap the queue for one of their own; put the \
                     queue in a directory of your own",
                    dir.display(),
                    meta.uid()
                ),
            ));
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            return Err(untrusted(
                parent,
                format!(
                    "a parent of the queue directory {} is writable by group or others (mode \
                     {mode:o}) without the sticky bit, so others could swap the queue for one of \
                     their own; run `chmod go-w {}` (or `chmod +t`), or put the queue elsewhere",
                    dir.display(),
                    parent.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Checks a subdirectory the queue keeps (`run/`, `corrupt/`), not following a link: a real
/// directory of the effective user's, not writable by group or others.
pub(crate) fn check_subdir(path: &Path, trust: Trust) -> Result<()> {
    let Trust::Owner = trust;
    let meta = std::fs::symlink_metadata(path).map_err(io_err(path, "stat"))?;
    if !meta.is_dir() {
        return Err(untrusted(
            path,
            format!(
                "the queue keeps a directory of its own here, but this is {}; remove it (the \
                 queue makes what it needs)",
                kind(&meta)
            ),
        ));
    }
    owned_and_private(path, &meta)
}

/// Checks a file the queue opened (by its descriptor, so what was checked is what is used): a
/// regular file of the effective user's.
pub(crate) fn check_file(path: &Path, file: &File) -> Result<()> {
    let meta = file.metadata().map_err(io_err(path, "stat"))?;
    if !meta.is_file() {
        return Err(untrusted(
            path,
            format!(
                "the queue keeps a file of its own here, but this is {}; remove it (the queue \
                 makes what it needs)",
                kind(&meta)
            ),
        ));
    }
    owned_and_private(path, &meta)
}

/// The file or directory is the effective user's and not writable by group or others.
fn owned_and_private(path: &Path, meta: &Metadata) -> Result<()> {
    let me = euid();
    if meta.uid() != me {
        return Err(untrusted(
            path,
            format!(
                "it belongs to uid {}, not to this user (uid {me}); someone else made it, so it \
                 cannot be trusted: remove it (after a look at what it holds)",
                meta.uid()
            ),
        ));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(untrusted(
            path,
            format!(
                "it is writable by group or others (mode {mode:o}); run `chmod go-w {}`",
                path.display()
            ),
        ));
    }
    Ok(())
}

/// An error from opening `path` with `O_NOFOLLOW`: a symbolic link is refused as such.
pub(crate) fn open_error(path: &Path, op: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            untrusted(
                &path,
                "the queue keeps a file of its own here, but this is a symbolic link, which \
                 could make the queue write elsewhere; remove it (the queue makes what it needs)"
                    .to_string(),
            )
        } else {
            io_err(&path, op)(e)
        }
    }
}

/// What kind of file `meta` describes, for errors.
fn kind(meta: &Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else if t.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}
