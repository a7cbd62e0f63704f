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
