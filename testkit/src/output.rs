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

/// Waits for `child` (spawned with piped stdout and stderr) and collects its
/// output; kills it by pid (SIGKILL) and panics with its stderr if it has
/// not ended within `limit`. `what` names it in the panic.
pub fn output_within(child: std::process::Child, limit: std::time::Duration, what: &str) -> Output {
    let pid = child.id();
    let (done, finished) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let out = child.wait_with_output();
        let _ = done.send(());
        out
    });
    if finished.recv_timeout(limit).is_err() {
        // SAFETY: kill(2) on the caller's own child, by its pid; no memory is involved.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        let out = waiter.join().unwrap().unwrap();
        panic!(
            "{what} did not finish within {limit:?}; stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    waiter.join().unwrap().expect("wait for the child")
}
