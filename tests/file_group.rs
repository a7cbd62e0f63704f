//! `[file] group = true`: a producer and a runner under two Unix accounts
//! share one file queue through a group (directory 2770, files 0660, never
//! writable by others); without it, or for a user outside the group, the
//! queue is refused (issue 13, item 4). Run as root, to play the users: a
//! child `pulpo` runs under another uid and groups (setgroups, setgid,
//! setuid before exec).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

/// The producer: `nobody`'s uid, in the group `users`.
const PRODUCER: u32 = 65534;
/// The runner: an unnamed uid, also in `users`.
const RUNNER: u32 = 65533;
/// An outsider: an unnamed uid in `nogroup` only.
const OUTSIDER: u32 = 65532;
/// The shared group (`users` on Debian and most others).
const USERS: u32 = 100;
/// `nogroup`.
const NOGROUP: u32 = 65534;

/// `pulpo <args>` in `dir` as `uid` with the groups `groups` (the first one
/// primary), with `env` set and the caller's PULPO_ variables removed.
fn pulpo_as(uid: u32, groups: &[u32], dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pulpo"));
    cmd.current_dir(dir).args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("PULPO_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied());
    let groups: Vec<libc::gid_t> = groups.to_vec();
    // SAFETY: setgroups, setgid and setuid are async-signal-safe; `groups`
    // was allocated before the fork and is only read.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setgid(groups[0]) != 0
                || libc::setuid(uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output().expect("run pulpo as another user")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn two_users_of_one_group_share_a_queue_in_group_mode() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        pulpo_testkit::skip::skip(
            "two_users_of_one_group_share_a_queue_in_group_mode",
            "needs root to run pulpo as other users",
        );
        return;
    }
    let top = tempfile::tempdir().unwrap();
    // The producer's directory, which the runner may enter: its owner is the
    // queue's owner, whom group mode trusts with the parents too.
    let dir = top.path().join("app");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("pulpo.toml"), "[file]\npath = \"q\"\ngroup = true\n").unwrap();
    std::os::unix::fs::chown(&dir, Some(PRODUCER), Some(USERS)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let queue = dir.join("q");

    let out = pulpo_as(PRODUCER, &[USERS], &dir, &["publish", "echo", "hi"], &[]);
    assert!(out.status.success(), "the producer publishes: {}", stderr(&out));
    let meta = std::fs::metadata(&queue).unwrap();
    assert_eq!((mode(&queue), meta.gid()), (0o2770, USERS), "setgid, group rwx");
    assert_eq!(mode(&queue.join("lock")), 0o660, "files: group read-write");

    // Not the queue's owner: refused without group mode, served with it.
    let owner_only = pulpo_as(
        RUNNER,
        &[USERS],
        &dir,
        &["stats"],
        &[("PULPO_FILE__GROUP", "false")],
    );
    assert_eq!(owner_only.status.code(), Some(1), "{}", stderr(&owner_only));
    assert!(stderr(&owner_only).contains("q"), "{}", stderr(&owner_only));
    let out = pulpo_as(RUNNER, &[USERS], &dir, &["pop", "--json"], &[]);
    assert!(out.status.success(), "the runner pops: {}", stderr(&out));
    let popped: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(popped["message"]["body"]["payload"], "hi", "{popped}");
    // The runner's files are the group's too: the producer goes on.
    let out = pulpo_as(PRODUCER, &[USERS], &dir, &["publish", "echo", "again"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));

    // A user outside the group is refused, group mode or not.
    let out = pulpo_as(OUTSIDER, &[NOGROUP], &dir, &["stats"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("group"), "{}", stderr(&out));

    // Writable by others: refused always.
    std::fs::set_permissions(&queue, std::fs::Permissions::from_mode(0o2772)).unwrap();
    let out = pulpo_as(PRODUCER, &[USERS], &dir, &["stats"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}
