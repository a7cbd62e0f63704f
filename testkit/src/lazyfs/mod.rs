//! A lazy filesystem for power-cut tests, like Jepsen's LazyFS: a FUSE mount that keeps every
//! change not yet made durable in memory and can lose it on command.
//!
//! What counts as durable: a file's bytes (writes, truncates, fallocates) once that file is
//! fsynced or fdatasynced; a directory's entries (creates, renames, unlinks) once that directory
//! is fsynced. [`LazyFs::mount`] loads a real directory as what the disk holds;
//! [`LazyFs::cut`] loses power (every change fails with EIO from then on, like a dead disk;
//! reads still answer, see `state.rs`);
//! [`LazyFs::reboot`] unmounts and writes what the disk held at the cut back into the real
//! directory, which then reads as after a reboot (and can be mounted again).
//!
//! Mounting needs `/dev/fuse` and `fusermount3` (Debian's `fuse3`); without them
//! [`LazyFs::mount`] skips the test with the reason (see [`crate::skip`]).

mod ops;
mod state;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use state::State;
pub use state::{Counts, Entry, Tear};

/// A mounted lazy filesystem over a real directory.
pub struct LazyFs {
    state: Arc<Mutex<State>>,
    session: Option<fuser::BackgroundSession>,
    backing: PathBuf,
    mnt: PathBuf,
    _dir: tempfile::TempDir,
    /// What the disk held at the cut (set by [`LazyFs::cut`]).
    image: Option<Vec<(PathBuf, Entry)>>,
}

impl std::fmt::Debug for LazyFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyFs")
            .field("backing", &self.backing)
            .field("mnt", &self.mnt)
            .finish()
    }
}

/// A small generator of choices, so that a failing cut can be replayed from its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    /// The next number (splitmix64).
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

impl LazyFs {
    /// Mounts a lazy filesystem whose disk holds what `backing` (a real directory) holds;
    /// `None` (the test should return) when FUSE is missing, after [`crate::skip::skip`].
    pub fn mount(backing: &Path, test: &str) -> Option<LazyFs> {
        if !Path::new("/dev/fuse").exists() {
            crate::skip::skip(test, "no /dev/fuse (FUSE is not available here)");
            return None;
        }
        let meta = std::fs::metadata(backing).expect("the backing directory");
        let mut state = State::new(meta.mode() & 0o7777, meta.uid(), meta.gid());
        state.load(&read_image(backing), meta.uid(), meta.gid());
        let state = Arc::new(Mutex::new(state));
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName("pulpo-lazyfs".into()),
            fuser::MountOption::NoAtime,
        ];
        let ops = ops::LazyOps { state: state.clone() };
        match fuser::spawn_mount(ops, &mnt, &config) {
            Ok(session) => Some(LazyFs {
                state,
                session: Some(session),
                backing: backing.to_path_buf(),
                mnt,
                _dir: dir,
                image: None,
            }),
            Err(e) => {
                crate::skip::skip(
                    test,
                    &format!(
                        "cannot mount a FUSE filesystem (needs /dev/fuse and fusermount3 from fuse3): {e}"
                    ),
                );
                None
            }
        }
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.mnt
    }

    /// What it has been asked to do so far.
    pub fn counts(&self) -> Counts {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).counts
    }

    /// Loses power now: every change not synced is gone (but a prefix of the last unsynced
    /// write, as `tear` says, chosen by `seed`), and every change fails with EIO from here on.
    pub fn cut(&mut self, tear: Tear, seed: u64) {
        let mut rng = Rng::new(seed);
        let image = self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cut(tear, |n| rng.below(n as u64) as usize);
        self.image.get_or_insert(image);
    }

    /// Unmounts (cutting the power first, without tearing, if [`LazyFs::cut`] was not called)
    /// and leaves in the backing directory what a reboot finds; returns its path.
    pub fn reboot(mut self) -> PathBuf {
        self.cut(Tear::None, 0);
        if let Some(s) = self.session.take() {
            let _ = s.umount_and_join();
        }
        let image = self.image.take().unwrap_or_default();
        write_image(&self.backing, &image);
        self.backing.clone()
    }
}

impl Drop for LazyFs {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            let _ = s.umount_and_join();
        }
    }
}

/// Everything below `dir`, by relative path, parents first.
fn read_image(dir: &Path) -> Vec<(PathBuf, Entry)> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut names: Vec<_> = std::fs::read_dir(dir.join(&rel))
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let p = rel.join(e.file_name());
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            let mode = m.permissions().mode() & 0o7777;
            if m.is_dir() {
                out.push((p.clone(), Entry::Dir(mode)));
                stack.push(p);
            } else if m.is_file() {
                out.push((p, Entry::File(mode, std::fs::read(e.path()).unwrap())));
            }
        }
    }
    out
}

/// Replaces what `dir` holds with `image`.
fn write_image(dir: &Path, image: &[(PathBuf, Entry)]) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            std::fs::remove_dir_all(e.path()).unwrap();
        } else {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    for (rel, e) in image {
        let p = dir.join(rel);
        match e {
            Entry::Dir(mode) => {
                std::fs::create_dir(&p).unwrap();
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
            }
            Entry::File(mode, bytes) => {
                std::fs::write(&p, bytes).unwrap();
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
            }
        }
    }
}
