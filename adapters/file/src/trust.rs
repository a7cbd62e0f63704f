//! Whom the queue trusts. The directory must belong to the effective user and be writable by
//! nobody else (or, in group mode, [`Trust::Group`], have one of the user's groups and be
//! writable by nobody outside it); each of its parents up to `/` must belong to root or to that user and be
//! writable by nobody else unless sticky (like `/tmp`), as ssh requires of the files it trusts;
//! and what the queue keeps in it (`lock`, `run/`, `run/sync`, segments, `corrupt/`) must be
//! the user's own regular files and real directories, never symbolic links or special files.
//! Whoever else can write there can forge jobs for the handlers, or make the queue write,
//! create or move files elsewhere.

use std::fs::{File, Metadata};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::error::{Error, Result, io_err};

/// Who besides the effective user the queue trusts with its directory, chosen by
/// [`crate::Options::group`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Trust {
    /// Only the effective user (and root, for the parents): directory 0700, files 0600.
    Owner,
    /// Also the members of the queue directory's group, which must be one of the effective
    /// user's groups: directory 2770 (setgid, so what is made in it gets its group), files 0660.
    /// A file or directory of another user is trusted when it has that group; nothing may be
    /// writable by others, and a parent may belong to the queue directory's owner too.
    Group,
}

impl Trust {
    /// The trust `opts` ask for.
    pub(crate) fn of(opts: &crate::Options) -> Trust {
        if opts.group { Trust::Group } else { Trust::Owner }
    }

    /// The mode of a directory the queue makes.
    pub(crate) fn dir_mode(self) -> u32 {
        match self {
            Trust::Owner => 0o700,
            Trust::Group => 0o2770,
        }
    }

    /// The mode of a file the queue makes.
    pub(crate) fn file_mode(self) -> u32 {
        match self {
            Trust::Owner => 0o600,
            Trust::Group => 0o660,
        }
    }
}

/// Whether `gid` is the effective group or one of the supplementary groups of this process.
fn in_my_groups(gid: u32) -> bool {
    // SAFETY: getegid has no preconditions and cannot fail.
    if gid == unsafe { libc::getegid() } {
        return true;
    }
    // SAFETY: with a size of 0, getgroups only returns the count.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    let mut groups = vec![0 as libc::gid_t; usize::try_from(n).unwrap_or(0)];
    // SAFETY: `groups` has room for `n` entries, the size passed.
    let n = unsafe { libc::getgroups(n, groups.as_mut_ptr()) };
    groups.truncate(usize::try_from(n).unwrap_or(0));
    groups.contains(&gid)
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
/// writable by group or others; in group mode, of one of the user's groups, setgid, and not
/// writable by others.
pub(crate) fn check_queue_dir(dir: &Path, meta: &Metadata, trust: Trust) -> Result<()> {
    let me = euid();
    let mode = meta.permissions().mode() & 0o7777;
    if trust == Trust::Group {
        if mode & 0o002 != 0 {
            return Err(Error::Permissions {
                path: dir.to_path_buf(),
                mode,
            });
        }
        if !in_my_groups(meta.gid()) {
            return Err(untrusted(
                dir,
                format!(
                    "group = true, but the queue directory's group (gid {}) is not one of this \
                     user's (uid {me}) groups, so its members cannot be trusted; add the user to \
                     that group, or `chgrp` the directory to a group the user is in",
                    meta.gid()
                ),
            ));
        }
        if mode & 0o2070 != 0o2070 {
            return Err(untrusted(
                dir,
                format!(
                    "group = true, but the queue directory (mode {mode:o}) is not shared with its \
                     group: run `chmod 2770 {}` (group read-write-search, and setgid so that \
                     what is made in it gets its group)",
                    dir.display()
                ),
            ));
        }
        return Ok(());
    }
    if meta.uid() != me {
        return Err(untrusted(
            dir,
            format!(
                "the queue directory belongs to uid {}, not to this user (uid {me}), who could \
                 then forge or delete its jobs; use a directory of your own, or `chown` this one \
                 to uid {me} if its files are to be trusted (or share it with a group: \
                 [file] group = true)",
                meta.uid()
            ),
        ));
    }
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
///
/// In group mode a parent may also belong to the queue directory's owner (who can change the
/// queue anyway), and be writable by the queue directory's group (whose members are trusted).
pub(crate) fn check_parents(dir: &Path, trust: Trust) -> Result<()> {
    let me = euid();
    let real = std::fs::canonicalize(dir).map_err(io_err(dir, "resolve the path of"))?;
    let queue = std::fs::metadata(&real).map_err(io_err(&real, "stat"))?;
    let (owner, group) = match trust {
        Trust::Owner => (me, None),
        Trust::Group => (queue.uid(), Some(queue.gid())),
    };
    for parent in real.ancestors().skip(1) {
        let meta = std::fs::metadata(parent).map_err(io_err(parent, "stat"))?;
        if meta.uid() != 0 && meta.uid() != me && meta.uid() != owner {
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
        let writable = match group {
            Some(gid) if meta.gid() == gid => mode & 0o002,
            _ => mode & 0o022,
        };
        if writable != 0 && mode & 0o1000 == 0 {
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
    owned_and_private(path, &meta, trust)
}

/// Checks a file the queue opened (by its descriptor, so what was checked is what is used): a
/// regular file of the effective user's (in group mode, or of the user's groups).
pub(crate) fn check_file(path: &Path, file: &File, trust: Trust) -> Result<()> {
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
    owned_and_private(path, &meta, trust)
}

/// The file or directory is the effective user's and not writable by group or others; in group
/// mode it may instead have one of the user's groups (and be writable by it), and is never
/// writable by others.
fn owned_and_private(path: &Path, meta: &Metadata, trust: Trust) -> Result<()> {
    let me = euid();
    let mode = meta.permissions().mode() & 0o7777;
    if trust == Trust::Group && mode & 0o002 == 0 && in_my_groups(meta.gid()) {
        return Ok(());
    }
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
