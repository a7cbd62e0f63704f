//! The systemd unit shipped in `contrib/systemd/pulpo.service`: the settings
//! a stop needs to keep in-flight jobs (issue 13, item 1), and, where
//! `systemd-analyze` is installed, a unit systemd itself accepts.

use std::path::Path;
use std::process::Command;

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/systemd/pulpo.service");

/// The unit's `Key=value` settings, comments left out.
fn settings() -> Vec<(String, String)> {
    std::fs::read_to_string(UNIT)
        .unwrap()
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

fn value(key: &str) -> Option<String> {
    settings().into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

#[test]
fn the_unit_signals_only_the_runner_restarts_after_idle_and_names_a_user() {
    // mixed: SIGTERM to the runner alone, SIGKILL to all only after TimeoutStopSec.
    assert_eq!(value("KillMode").as_deref(), Some("mixed"));
    // on_idle = "exit" ends the runner with 0: only `always` starts it again.
    assert_eq!(value("Restart").as_deref(), Some("always"));
    assert!(value("User").is_some_and(|user| !user.is_empty()));
    let stop: u64 = value("TimeoutStopSec").unwrap().parse().unwrap();
    assert!(
        stop > 30,
        "longer than the default shutdown_timeout (30s): {stop}"
    );
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(readme.contains("contrib/systemd/pulpo.service"));
    assert!(
        !readme.contains("[Service]"),
        "the README points to the unit, no inline copy"
    );
}

/// `systemd-analyze verify` on the unit, with ExecStart pointed at the
/// built binary (verify requires an executable that exists). Its warnings
/// (an unknown key, a value it ignores) go to stderr with exit 0, so any
/// output fails the test. systemd-analyze is optional: without it the test
/// says so and passes.
#[test]
fn systemd_analyze_verifies_the_unit() {
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        eprintln!("SKIPPED: systemd_analyze_verifies_the_unit: systemd-analyze is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(UNIT)
        .unwrap()
        .replace("/usr/local/bin/pulpo", env!("CARGO_BIN_EXE_pulpo"));
    let path = dir.path().join("pulpo.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .current_dir(Path::new("/"))
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}
