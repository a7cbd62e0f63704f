//! A small tmpfs mounted for one test: a disk that fills up, or turns
//! read-only, on demand. Mounting needs CAP_SYS_ADMIN (root in the initial
//! user namespace); without it the test is skipped, or fails where
//! [`crate::skip::REQUIRE_PRIVILEGED`] says it must run.

use std::path::PathBuf;
use std::process::Command;

/// A mounted tmpfs, unmounted when dropped.
#[derive(Debug)]
pub struct Tmpfs {
    _dir: tempfile::TempDir,
    /// Where it is mounted.
    pub path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `256k`, `1m`) for `test`; `None` (the
    /// test should return) when it cannot, after [`crate::skip::skip`].
    pub fn mount(size: &str, test: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(&path)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Tmpfs { _dir: dir, path }),
            Ok(out) => {
                let why = String::from_utf8_lossy(&out.stderr);
                crate::skip::skip(
                    test,
                    &format!("cannot mount a tmpfs (needs CAP_SYS_ADMIN): {}", why.trim()),
                );
                None
            }
            Err(err) => {
                crate::skip::skip(test, &format!("cannot run mount: {err}"));
                None
            }
        }
    }

    /// Remounts it with `options`, e.g. `ro` or `size=2m`.
    pub fn remount(&self, options: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.path)
            .status()
            .unwrap();
        assert!(status.success(), "remount {options}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
