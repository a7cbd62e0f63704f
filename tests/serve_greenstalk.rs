//! A client from another ecosystem: greenstalk (Python, from PyPI) drives `pulpo serve` over
//! TCP and over a unix socket with put, reserve, reserve-job, delete, release, bury, kick,
//! kick-job, touch, peek*, stats*, use/watch/ignore and list-tubes
//! (tests/serve_greenstalk/client.py). scripts/test makes its virtual environment
//! (scripts/greenstalk-venv) and names its python in `TESTKIT_GREENSTALK_PYTHON`.

#[path = "serve_process/mod.rs"]
mod serve_process;

use std::process::Command;

use serve_process::Serve;

/// The variable that names the venv's python (not `PULPO_*`: pulpo reads those as config).
const PYTHON: &str = "TESTKIT_GREENSTALK_PYTHON";

fn run_client(python: &str, address: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/serve_greenstalk/client.py");
    let out = Command::new(python).arg(script).arg(address).output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.trim() == "ok",
        "greenstalk against {address}: {:?}\n{stdout}{stderr}",
        out.status
    );
}

#[test]
fn greenstalk_drives_pulpo_serve_over_tcp_and_a_unix_socket() {
    let Some(python) = std::env::var_os(PYTHON) else {
        pulpo_testkit::skip::skip(
            "greenstalk_drives_pulpo_serve_over_tcp_and_a_unix_socket",
            &format!("{PYTHON} is not set (scripts/test sets it from scripts/greenstalk-venv)"),
        );
        return;
    };
    let python = python.to_string_lossy().into_owned();
    let dir = tempfile::tempdir().unwrap();
    let socket = format!("unix:{}", dir.path().join("serve.sock").display());
    let serve = Serve::start_with(65_535, &[], &[]);
    run_client(&python, &serve.address());
    drop(serve);
    let serve = Serve::start_with(65_535, &[], &[&socket]);
    run_client(&python, &socket);
    drop(serve);
}
