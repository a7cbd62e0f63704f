//! A queue directory that another user controls, or that holds links and special files where the
//! queue keeps its own files, is refused with an error that names the path, and nothing outside
//! the directory is written, created or moved (issue 11, item 1). These tests run as root, as the
//! test suite does here: they hand files to `nobody` to play the other user.

mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown, symlink};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use common::{TTR, Z, opts, queue_dir};
use pulpo_filequeue::{Error, FileQueue};

/// The uid of `nobody`.
const NOBODY: u32 = 65534;

/// Opens the queue on another thread and gives up after a while: a FIFO where a segment should
/// be used to block the open forever.
fn open_within(path: &Path) -> pulpo_filequeue::Result<FileQueue> {
    let (tx, rx) = mpsc::channel();
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(FileQueue::open(&path, opts()));
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("opening the queue hung (a FIFO read?)")
}

/// Asserts that `open` refused the queue with an error naming `what`.
#[track_caller]
fn assert_refused(result: pulpo_filequeue::Result<FileQueue>, what: &Path) {
    let err = result.expect_err("the queue was opened");
    let msg = err.to_string();
    assert!(matches!(err, Error::Untrusted { .. }), "{err:?}: {msg}");
    assert!(msg.contains(&what.display().to_string()), "{msg}");
}

/// A queue made by this user in a fresh temporary directory, closed again.
fn made_queue() -> (tempfile::TempDir, std::path::PathBuf) {
    let (d, path) = queue_dir();
    let q = FileQueue::open(&path, opts()).unwrap();
    q.put("t", 0, Z, TTR, b"x").unwrap();
    drop(q);
    (d, path)
}

#[test]
fn root_refuses_a_queue_directory_owned_by_another_user() {
    let (_d, path) = made_queue();
    chown(&path, Some(NOBODY), None).unwrap();
    assert_refused(FileQueue::open(&path, opts()), &path);
    let msg = FileQueue::open(&path, opts()).unwrap_err().to_string();
    assert!(msg.contains("chown"), "says what to do: {msg}");
}

#[test]
fn a_parent_writable_by_others_without_the_sticky_bit_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let open_dir = d.path().join("shared");
    fs::create_dir(&open_dir).unwrap();
    fs::set_permissions(&open_dir, fs::Permissions::from_mode(0o777)).unwrap();
    let path = open_dir.join("q");
    assert_refused(FileQueue::open(&path, opts()), &open_dir);
    // The same parent with the sticky bit, as /tmp has: others cannot rename or delete what is
    // ours in it.
    fs::set_permissions(&open_dir, fs::Permissions::from_mode(0o1777)).unwrap();
    FileQueue::open(&path, opts()).unwrap();
    // A parent owned by another user could swap the queue directory for one of theirs.
    fs::set_permissions(&open_dir, fs::Permissions::from_mode(0o755)).unwrap();
    chown(&open_dir, Some(NOBODY), None).unwrap();
    assert_refused(FileQueue::open(&path, opts()), &open_dir);
}

#[test]
fn a_symlinked_run_sync_is_refused_and_its_target_left_alone() {
    let (d, path) = made_queue();
    let victim = d.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    fs::remove_file(path.join("run/sync")).unwrap();
    symlink(&victim, path.join("run/sync")).unwrap();
    assert_refused(FileQueue::open(&path, opts()), &path.join("run/sync"));
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
}

#[test]
fn a_symlinked_lock_is_refused_and_its_target_not_created() {
    let (d, path) = made_queue();
    let made = d.path().join("made");
    fs::remove_file(path.join("lock")).unwrap();
    symlink(&made, path.join("lock")).unwrap();
    assert_refused(FileQueue::open(&path, opts()), &path.join("lock"));
    assert!(!made.exists(), "the link's target was created");
}

#[test]
fn a_symlinked_run_or_corrupt_directory_is_refused() {
    let (d, path) = made_queue();
    let elsewhere = d.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::rename(path.join("run"), d.path().join("old-run")).unwrap();
    symlink(&elsewhere, path.join("run")).unwrap();
    assert_refused(FileQueue::open(&path, opts()), &path.join("run"));
    fs::remove_file(path.join("run")).unwrap();
    fs::rename(d.path().join("old-run"), path.join("run")).unwrap();

    // A junk segment to move aside, and corrupt/ pointing elsewhere: nothing may land there.
    symlink(&elsewhere, path.join("corrupt")).unwrap();
    fs::write(path.join("log.7"), b"junk").unwrap();
    assert_refused(FileQueue::open(&path, opts()), &path.join("corrupt"));
    assert_eq!(
        fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "a file was moved out"
    );

    // corrupt/ owned by another user.
    fs::remove_file(path.join("corrupt")).unwrap();
    fs::create_dir(path.join("corrupt")).unwrap();
    chown(path.join("corrupt"), Some(NOBODY), None).unwrap();
    assert_refused(FileQueue::open(&path, opts()), &path.join("corrupt"));
}

#[test]
fn a_fifo_where_a_segment_should_be_is_refused_without_hanging() {
    let (_d, path) = made_queue();
    let fifo = path.join("log.2");
    let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    assert_refused(open_within(&path), &fifo);
}

#[test]
fn special_or_foreign_files_as_lock_or_run_sync_are_refused() {
    let (_d, path) = made_queue();
    let sync = path.join("run/sync");
    fs::remove_file(&sync).unwrap();
    let status = std::process::Command::new("mkfifo").arg(&sync).status().unwrap();
    assert!(status.success());
    assert_refused(open_within(&path), &sync);
    fs::remove_file(&sync).unwrap();

    // A lock file that another user made (they could hold it forever, or swap it).
    chown(path.join("lock"), Some(NOBODY), None).unwrap();
    assert_refused(FileQueue::open(&path, opts()), &path.join("lock"));
    chown(path.join("lock"), Some(0), None).unwrap();
    let q = FileQueue::open(&path, opts()).unwrap();
    assert_eq!(q.stats().unwrap().current_jobs_ready, 1, "nothing lost");
}

/// The mode bits of `path`.
fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Group mode (issue 13, item 4): what the queue makes is its group's (directories 2770 with
/// setgid, files 0660, whatever the umask), the owner mode refuses such a directory, a file of
/// another user is trusted when it has one of this user's groups, and nothing writable by others
/// is, in either mode.
#[test]
fn group_mode_shares_with_the_group_and_never_with_others() {
    let (_d, path) = queue_dir();
    let group = pulpo_filequeue::Options {
        group: true,
        ..opts()
    };
    // SAFETY: umask only sets this process's file mode mask.
    let before = unsafe { libc::umask(0o022) };
    let q = FileQueue::open(&path, group.clone()).unwrap();
    q.put("t", 0, Z, TTR, b"x").unwrap();
    drop(q);
    // SAFETY: as above.
    unsafe { libc::umask(before) };
    assert_eq!(mode_of(&path), 0o2770);
    assert_eq!(mode_of(&path.join("run")), 0o2770);
    assert_eq!(mode_of(&path.join("lock")), 0o660);
    assert_eq!(mode_of(&path.join("run/sync")), 0o660);
    // Shared with the group: refused by a handle that trusts its owner alone.
    assert!(matches!(
        FileQueue::open(&path, opts()),
        Err(Error::Permissions { .. })
    ));

    // Another user's lock file, of this user's group: trusted in group mode only.
    chown(path.join("lock"), Some(NOBODY), None).unwrap();
    FileQueue::open(&path, group.clone()).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
    assert_refused(FileQueue::open(&path, opts()), &path.join("lock"));
    fs::set_permissions(&path, fs::Permissions::from_mode(0o2770)).unwrap();

    // Writable by others: refused, file or directory.
    fs::set_permissions(path.join("lock"), fs::Permissions::from_mode(0o662)).unwrap();
    assert_refused(FileQueue::open(&path, group.clone()), &path.join("lock"));
    fs::set_permissions(path.join("lock"), fs::Permissions::from_mode(0o660)).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o2772)).unwrap();
    assert!(matches!(
        FileQueue::open(&path, group.clone()),
        Err(Error::Permissions { .. })
    ));
    // Not setgid: what the queue makes would not get the group.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o770)).unwrap();
    assert_refused(FileQueue::open(&path, group), &path);
}
