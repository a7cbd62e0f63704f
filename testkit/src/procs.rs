//! Finding processes by a variable in their environment: how a test tells
//! whether something a job started is still running after its runner died
//! (a grandchild is not the test's child, and may have been reparented).

use std::time::{Duration, Instant};

/// The live (not zombie) processes whose environment holds `var` exactly,
/// e.g. `PULPO_TEST_MARK=1234`.
pub fn with_env_var(var: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ.split(|&byte| byte == 0).any(|v| v == var.as_bytes()) && !is_zombie(pid) {
            found.push(pid);
        }
    }
    found
}

/// Waits until no live process has `var` in its environment; panics with
/// their pids after `limit`.
pub fn wait_until_none_with(var: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let left = with_env_var(var);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processes {left:?} with {var} are still running after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (at most `limit`) until none of `pids` runs. A grandchild is not
/// the test's child, so nobody reaps it: a zombie counts as gone.
pub fn wait_until_gone(pids: &[u32], limit: Duration) {
    let deadline = Instant::now() + limit;
    while pids.iter().any(|&pid| !is_zombie(pid)) {
        assert!(Instant::now() < deadline, "processes {pids:?} outlived the job");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A process that has exited but not been reaped (or is gone) counts as dead.
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}
