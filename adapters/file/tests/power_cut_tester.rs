//! Proof that the power-cut tests can fail: with one fdatasync switched off (the group
//! commit's), or the directory sync after a rename (compaction's), the same cuts must find an
//! acknowledged change lost. Each test expects that failure, and fails if the cuts find none.
//!
//! The switches are process-wide (`pulpo_filequeue::skip_for_tests`), so these tests live in a
//! binary of their own and take turns.

use std::sync::Mutex;
use std::time::Duration;

use pulpo_filequeue::{SyncPoint, skip_for_tests};

mod power;

use power::{Scenario, run};

/// One switch at a time.
static TURN: Mutex<()> = Mutex::new(());

/// Runs `s` with the syncs at `at` switched off; passes only if the cuts find a violation.
fn must_find_a_violation(test: &str, at: SyncPoint, s: &Scenario) {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    skip_for_tests(at, true);
    let r = std::panic::catch_unwind(|| run(test, "producer_entry", s, 0x7e57, 200, Duration::from_secs(60)));
    skip_for_tests(at, false);
    match r.expect("the cycles ran") {
        None => {} // skipped: no FUSE
        Some(Ok(n)) => panic!("{test}: {n} power cuts with the {at:?} sync switched off found nothing"),
        Some(Err(e)) => eprintln!("{test}: found, as it must: {e}"),
    }
}

#[test]
fn without_the_group_commit_fdatasync_the_cuts_find_a_lost_change() {
    let s = Scenario::new(1, 0);
    must_find_a_violation(
        "without_the_group_commit_fdatasync_the_cuts_find_a_lost_change",
        SyncPoint::GroupCommit,
        &s,
    );
}

#[test]
fn without_the_directory_sync_after_a_compaction_rename_the_cuts_find_a_lost_change() {
    let s = Scenario {
        compact: true,
        ..Scenario::new(2, 0)
    };
    must_find_a_violation(
        "without_the_directory_sync_after_a_compaction_rename_the_cuts_find_a_lost_change",
        SyncPoint::CompactionDir,
        &s,
    );
}

/// A producer process (not used here; `power/` expects the name).
#[test]
#[ignore = "a child process's work, run by the power-cut tests"]
fn producer_entry() {
    power::child_entry();
}
