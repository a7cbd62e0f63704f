//! Checking what a command-line run printed.

use std::process::Output;

/// Asserts that the run of `what` (e.g. `pulpo ["stats"]`) exited 0, showing
/// its status and stderr when it did not; returns its stdout as text.
pub fn stdout_of_success(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed with {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// `program args` run in `dir`, without the caller's `PULPO_*` variables (so
/// a developer's environment cannot change what a test sees).
pub fn clean_command(program: &str, dir: &std::path::Path, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    cmd.current_dir(dir).args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("PULPO_") {
            cmd.env_remove(key);
        }
    }
    cmd
}
