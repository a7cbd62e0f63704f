//! Power cuts: the queue runs in a lazy filesystem (`pulpo_testkit::lazyfs`) that forgets
//! whatever was not synced; the power is cut at a random moment, and after the reboot every
//! acknowledged change must be there, nothing torn visible, no deleted job back, no id reused,
//! and the queue must open and work. kill -9 cannot show any of this: it keeps the page cache.
//!
//! Each test runs a bounded number of cuts within a time budget; `scripts/power-cut` runs more
//! (`POWER_CUT_BUDGET_SECS`, `POWER_CUT_SEED`). Without FUSE the tests say SKIPPED (and fail
//! under `TESTKIT_REQUIRE_PRIVILEGED=1`).

use std::time::Duration;

mod power;

use power::{Scenario, run};

/// Cuts per test in the normal suite (each takes a few tens of milliseconds).
fn cuts(default: u64) -> u64 {
    std::env::var("POWER_CUT_CUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Time budget per test.
fn budget() -> Duration {
    let secs = std::env::var("POWER_CUT_BUDGET_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    Duration::from_secs(secs)
}

fn seed(test: u64) -> u64 {
    let base = std::env::var("POWER_CUT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    base ^ test.wrapping_mul(0x9e37_79b9)
}

fn expect_ok(test: &str, s: &Scenario, test_no: u64, max: u64) {
    let Some(r) = run(test, "producer_entry", s, seed(test_no), cuts(max), budget()) else {
        return;
    };
    match r {
        Ok(n) => eprintln!("{test}: {n} cuts, every one checked"),
        Err(e) => panic!("{test}: {e}"),
    }
}

#[test]
fn cuts_during_puts_reserves_deletes_releases_buries_and_kicks_lose_nothing_acknowledged() {
    let s = Scenario::new(1, 0);
    expect_ok(
        "cuts_during_puts_reserves_deletes_releases_buries_and_kicks_lose_nothing_acknowledged",
        &s,
        1,
        150,
    );
}

#[test]
fn cuts_during_group_commits_of_four_threads_lose_nothing_acknowledged() {
    let s = Scenario::new(4, 0);
    expect_ok(
        "cuts_during_group_commits_of_four_threads_lose_nothing_acknowledged",
        &s,
        2,
        100,
    );
}

#[test]
fn cuts_during_group_commits_of_one_and_four_processes_lose_nothing_acknowledged() {
    for (n, procs) in [(3, 1), (4, 4)] {
        let s = Scenario::new(0, procs);
        expect_ok(
            "cuts_during_group_commits_of_one_and_four_processes_lose_nothing_acknowledged",
            &s,
            n,
            20,
        );
    }
}

#[test]
fn cuts_during_compactions_and_segment_switches_lose_nothing_acknowledged() {
    let s = Scenario {
        compact: true,
        ..Scenario::new(2, 0)
    };
    expect_ok(
        "cuts_during_compactions_and_segment_switches_lose_nothing_acknowledged",
        &s,
        5,
        100,
    );
}

/// The README's claim for `fsync = false`: a power cut loses the last writes (here all since
/// the last reboot: nothing is ever synced), and a torn tail is cut off on the next open; what
/// is found is whole, and the queue opens and works.
#[test]
fn with_fsync_off_a_cut_loses_the_last_writes_and_the_torn_tail_is_cut_off() {
    let s = Scenario {
        fsync: false,
        ..Scenario::new(1, 0)
    };
    expect_ok(
        "with_fsync_off_a_cut_loses_the_last_writes_and_the_torn_tail_is_cut_off",
        &s,
        6,
        60,
    );
}

/// A producer process of the tests above (run by them with `--ignored`).
#[test]
#[ignore = "a child process's work, run by the power-cut tests"]
fn producer_entry() {
    power::child_entry();
}
