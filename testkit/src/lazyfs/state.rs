//! The unsynced-state model: every file and directory as the programs see it (live) and as the
//! disk holds it (durable); syncs move live to durable, a power cut keeps only durable.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::time::SystemTime;

/// The root directory's inode number (FUSE's).
pub(crate) const ROOT: u64 = 1;

/// How a power cut treats the last write that was not synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tear {
    /// It is lost whole, like every other unsynced change.
    None,
    /// A prefix of it, ending at a 512-byte boundary of the file (or at its end), survives.
    Sector,
    /// A prefix of it, ending at a 4 KiB boundary of the file (or at its end), survives.
    Page,
}

impl Tear {
    fn unit(self) -> Option<u64> {
        match self {
            Tear::None => None,
            Tear::Sector => Some(512),
            Tear::Page => Some(4096),
        }
    }
}

/// A change to a file's bytes not yet made durable.
#[derive(Debug, Clone)]
enum Change {
    Write { off: u64, data: Vec<u8> },
    SetLen(u64),
}

impl Change {
    fn apply(&self, to: &mut Vec<u8>) {
        match self {
            Change::Write { off, data } => write_at(to, *off, data),
            Change::SetLen(n) => to.resize(*n as usize, 0),
        }
    }
}

fn write_at(to: &mut Vec<u8>, off: u64, data: &[u8]) {
    let end = off as usize + data.len();
    if to.len() < end {
        to.resize(end, 0);
    }
    to[off as usize..end].copy_from_slice(data);
}

/// A regular file: its bytes now, on disk, and the changes in between.
#[derive(Debug, Default)]
pub(crate) struct FileNode {
    pub(crate) live: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Change>,
}

/// A directory: its entries now and on disk.
#[derive(Debug, Default)]
pub(crate) struct DirNode {
    pub(crate) live: BTreeMap<OsString, u64>,
    durable: BTreeMap<OsString, u64>,
}

/// What an inode is.
#[derive(Debug)]
pub(crate) enum Body {
    File(FileNode),
    Dir(DirNode),
}

/// One inode. Its mode and owner count as durable at once (the queue never relies on either
/// surviving without a sync of their own).
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) body: Body,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mtime: SystemTime,
    /// Open file handles (an unlinked file lives on while open).
    pub(crate) open: u32,
}

/// A failed operation: the errno to answer with.
pub(crate) type Errno = i32;

/// The whole filesystem. After [`State::cut`] every change (and open) fails with EIO; reads
/// still answer, so that a page of a mapped file (the queue maps `run/sync`) that the kernel
/// reads again never faults a SIGBUS into the process that runs the filesystem.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) nodes: HashMap<u64, Node>,
    next_ino: u64,
    /// The last write not yet synced: (inode, change index in its `pending`).
    last_write: Option<(u64, usize)>,
    pub(crate) cut: bool,
    /// Writes, file syncs and directory syncs seen (for the tests of the tester).
    pub(crate) counts: Counts,
}

/// What the filesystem has been asked to do, counted.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Writes (and truncates, fallocates).
    pub writes: u64,
    /// fsync and fdatasync of files.
    pub file_syncs: u64,
    /// fsync of directories.
    pub dir_syncs: u64,
}

/// A file or directory of the image after a power cut, by path below the root.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    /// A directory and its mode.
    Dir(u32),
    /// A file, its mode and its bytes.
    File(u32, Vec<u8>),
}

impl State {
    /// An empty filesystem whose root has `mode` and belongs to `uid`/`gid`.
    pub(crate) fn new(mode: u32, uid: u32, gid: u32) -> State {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node {
                body: Body::Dir(DirNode::default()),
                mode,
                uid,
                gid,
                mtime: SystemTime::now(),
                open: 0,
            },
        );
        State {
            nodes,
            next_ino: ROOT + 1,
            last_write: None,
            cut: false,
            counts: Counts::default(),
        }
    }

    /// Loads `image` (paths relative to the root, parents before children) as durable.
    pub(crate) fn load(&mut self, image: &[(std::path::PathBuf, Entry)], uid: u32, gid: u32) {
        for (path, e) in image {
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => self.resolve(p).expect("parent loaded first"),
                _ => ROOT,
            };
            let name = path.file_name().expect("a named entry");
            let ino = match e {
                Entry::Dir(mode) => self.make(parent, name, Body::Dir(DirNode::default()), *mode, uid, gid),
                Entry::File(mode, bytes) => {
                    let f = FileNode {
                        live: bytes.clone(),
                        durable: bytes.clone(),
                        pending: Vec::new(),
                    };
                    self.make(parent, name, Body::File(f), *mode, uid, gid)
                }
            };
            let ino = ino.expect("a fresh name");
            self.dir_mut(parent)
                .expect("a directory")
                .durable
                .insert(name.to_owned(), ino);
        }
    }

    fn resolve(&self, path: &std::path::Path) -> Option<u64> {
        let mut at = ROOT;
        for c in path.components() {
            at = *self.dir(at)?.live.get(c.as_os_str())?;
        }
        Some(at)
    }

    fn check(&self) -> Result<(), Errno> {
        if self.cut { Err(libc::EIO) } else { Ok(()) }
    }

    pub(crate) fn node(&self, ino: u64) -> Result<&Node, Errno> {
        self.nodes.get(&ino).ok_or(libc::ENOENT)
    }

    pub(crate) fn node_mut(&mut self, ino: u64) -> Result<&mut Node, Errno> {
        self.check()?;
        self.nodes.get_mut(&ino).ok_or(libc::ENOENT)
    }

    fn dir(&self, ino: u64) -> Option<&DirNode> {
        match &self.nodes.get(&ino)?.body {
            Body::Dir(d) => Some(d),
            Body::File(_) => None,
        }
    }

    fn dir_mut(&mut self, ino: u64) -> Result<&mut DirNode, Errno> {
        match &mut self.node_mut(ino)?.body {
            Body::Dir(d) => Ok(d),
            Body::File(_) => Err(libc::ENOTDIR),
        }
    }

    fn file_mut(&mut self, ino: u64) -> Result<&mut FileNode, Errno> {
        match &mut self.node_mut(ino)?.body {
            Body::File(f) => Ok(f),
            Body::Dir(_) => Err(libc::EISDIR),
        }
    }

    /// The inode `name` names in directory `parent`.
    pub(crate) fn lookup(&self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        let d = self.dir(parent).ok_or(libc::ENOTDIR)?;
        d.live.get(name).copied().ok_or(libc::ENOENT)
    }

    /// The live entries of a directory.
    pub(crate) fn entries(&self, ino: u64) -> Result<Vec<(OsString, u64)>, Errno> {
        let d = self.dir(ino).ok_or(libc::ENOTDIR)?;
        Ok(d.live.iter().map(|(n, i)| (n.clone(), *i)).collect())
    }

    /// Creates `name` in `parent` (not durable until `parent` is synced).
    pub(crate) fn make(
        &mut self,
        parent: u64,
        name: &OsStr,
        body: Body,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<u64, Errno> {
        if self.dir_mut(parent)?.live.contains_key(name) {
            return Err(libc::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(
            ino,
            Node {
                body,
                mode,
                uid,
                gid,
                mtime: SystemTime::now(),
                open: 0,
            },
        );
        self.dir_mut(parent)?.live.insert(name.to_owned(), ino);
        Ok(ino)
    }

    /// Removes `name` from `parent`; a directory only if `dir` and it is empty.
    pub(crate) fn remove(&mut self, parent: u64, name: &OsStr, dir: bool) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        match (&self.node(ino)?.body, dir) {
            (Body::Dir(d), true) if !d.live.is_empty() => return Err(libc::ENOTEMPTY),
            (Body::Dir(_), false) => return Err(libc::EISDIR),
            (Body::File(_), true) => return Err(libc::ENOTDIR),
            _ => {}
        }
        self.dir_mut(parent)?.live.remove(name);
        self.forget_if_unused(ino);
        Ok(())
    }

    /// Renames (replacing a file at the target; `noreplace`: failing instead).
    pub(crate) fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        to: u64,
        to_name: &OsStr,
        noreplace: bool,
    ) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        self.dir_mut(to)?;
        let old = self.lookup(to, to_name).ok();
        if let Some(old) = old {
            if noreplace {
                return Err(libc::EEXIST);
            }
            if old == ino {
                return Ok(());
            }
            match (&self.node(old)?.body, &self.node(ino)?.body) {
                (Body::Dir(d), Body::Dir(_)) if !d.live.is_empty() => return Err(libc::ENOTEMPTY),
                (Body::Dir(_), Body::File(_)) => return Err(libc::EISDIR),
                (Body::File(_), Body::Dir(_)) => return Err(libc::ENOTDIR),
                _ => {}
            }
        }
        self.dir_mut(parent)?.live.remove(name);
        self.dir_mut(to)?.live.insert(to_name.to_owned(), ino);
        if let Some(old) = old {
            self.forget_if_unused(old);
        }
        Ok(())
    }

    /// Drops an inode no entry (live or durable) names and nobody has open.
    pub(crate) fn forget_if_unused(&mut self, ino: u64) {
        let Some(n) = self.nodes.get(&ino) else { return };
        if ino == ROOT || n.open > 0 {
            return;
        }
        let named = self.nodes.values().any(|n| match &n.body {
            Body::Dir(d) => d.live.values().any(|&i| i == ino) || d.durable.values().any(|&i| i == ino),
            Body::File(_) => false,
        });
        if !named {
            self.nodes.remove(&ino);
            if self.last_write.is_some_and(|(i, _)| i == ino) {
                self.last_write = None;
            }
        }
    }

    /// Reads up to `len` bytes at `off` of a file as it is now.
    pub(crate) fn read(&self, ino: u64, off: u64, len: usize) -> Result<Vec<u8>, Errno> {
        match &self.node(ino)?.body {
            Body::File(f) => {
                let from = (off as usize).min(f.live.len());
                let to = from.saturating_add(len).min(f.live.len());
                Ok(f.live[from..to].to_vec())
            }
            Body::Dir(_) => Err(libc::EISDIR),
        }
    }

    fn change(&mut self, ino: u64, c: Change) -> Result<(), Errno> {
        let f = self.file_mut(ino)?;
        c.apply(&mut f.live);
        let is_write = matches!(c, Change::Write { .. });
        f.pending.push(c);
        let at = f.pending.len() - 1;
        if is_write {
            self.last_write = Some((ino, at));
        }
        self.counts.writes += 1;
        self.node_mut(ino)?.mtime = SystemTime::now();
        Ok(())
    }

    /// Writes `data` at `off` (not durable until the file is synced).
    pub(crate) fn write(&mut self, ino: u64, off: u64, data: &[u8]) -> Result<(), Errno> {
        self.change(
            ino,
            Change::Write {
                off,
                data: data.to_vec(),
            },
        )
    }

    /// Sets a file's length (not durable until the file is synced).
    pub(crate) fn set_len(&mut self, ino: u64, len: u64) -> Result<(), Errno> {
        self.change(ino, Change::SetLen(len))
    }

    /// fsync or fdatasync of a file (or fsync of a directory): makes its changes durable.
    pub(crate) fn sync(&mut self, ino: u64) -> Result<(), Errno> {
        match &mut self.node_mut(ino)?.body {
            Body::File(f) => {
                for c in f.pending.drain(..) {
                    c.apply(&mut f.durable);
                }
                self.counts.file_syncs += 1;
                if self.last_write.is_some_and(|(i, _)| i == ino) {
                    self.last_write = None;
                }
            }
            Body::Dir(d) => {
                let gone: Vec<u64> = d
                    .durable
                    .values()
                    .copied()
                    .filter(|i| !d.live.values().any(|l| l == i))
                    .collect();
                d.durable = d.live.clone();
                self.counts.dir_syncs += 1;
                for ino in gone {
                    self.forget_if_unused(ino);
                }
            }
        }
        Ok(())
    }

    /// Loses power: from now on every change fails with EIO. Returns what a reboot finds,
    /// by path, parents first: the durable entries and bytes, with a prefix of the last
    /// unsynced write kept as `tear` says (`pick` chooses among the possible ends, from
    /// `0..n`).
    pub(crate) fn cut(
        &mut self,
        tear: Tear,
        pick: impl FnOnce(usize) -> usize,
    ) -> Vec<(std::path::PathBuf, Entry)> {
        self.cut = true;
        let mut torn: Option<(u64, Vec<u8>)> = None;
        if let (Some(unit), Some((ino, at))) = (tear.unit(), self.last_write)
            && let Some(Node {
                body: Body::File(f), ..
            }) = self.nodes.get(&ino)
            && let Some(Change::Write { off, data }) = f.pending.get(at)
        {
            let end = off + data.len() as u64;
            let mut ends: Vec<u64> = (off / unit + 1..)
                .map(|k| k * unit)
                .take_while(|&b| b < end)
                .collect();
            ends.push(end);
            let keep = ends[pick(ends.len())] - off;
            let mut bytes = f.durable.clone();
            write_at(&mut bytes, *off, &data[..keep as usize]);
            torn = Some((ino, bytes));
        }
        let mut out = Vec::new();
        let mut stack = vec![(ROOT, std::path::PathBuf::new())];
        while let Some((ino, path)) = stack.pop() {
            let Some(Body::Dir(d)) = self.nodes.get(&ino).map(|n| &n.body) else {
                continue;
            };
            for (name, &child) in &d.durable {
                let Some(n) = self.nodes.get(&child) else { continue };
                let p = path.join(name);
                match &n.body {
                    Body::Dir(_) => {
                        out.push((p.clone(), Entry::Dir(n.mode & 0o7777)));
                        stack.push((child, p));
                    }
                    Body::File(f) => {
                        let bytes = match &torn {
                            Some((i, b)) if *i == child => b.clone(),
                            _ => f.durable.clone(),
                        };
                        out.push((p, Entry::File(n.mode & 0o7777, bytes)));
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn file(s: &mut State, parent: u64, name: &str) -> u64 {
        s.make(
            parent,
            OsStr::new(name),
            Body::File(FileNode::default()),
            0o600,
            0,
            0,
        )
        .unwrap()
    }

    fn get(image: &[(PathBuf, Entry)], path: &str) -> Option<Vec<u8>> {
        image
            .iter()
            .find(|(p, _)| p == &PathBuf::from(path))
            .map(|(_, e)| match e {
                Entry::File(_, b) => b.clone(),
                Entry::Dir(_) => Vec::new(),
            })
    }

    #[test]
    fn a_create_needs_the_directory_sync_and_a_write_the_file_sync() {
        let mut s = State::new(0o700, 0, 0);
        let a = file(&mut s, ROOT, "a");
        s.write(a, 0, b"hello").unwrap();
        s.sync(a).unwrap();
        let mut t = State::new(0o700, 0, 0);
        let b = file(&mut t, ROOT, "a");
        t.write(b, 0, b"hello").unwrap();
        t.sync(ROOT).unwrap();
        assert_eq!(
            get(&s.cut(Tear::None, |_| 0), "a"),
            None,
            "the entry was never synced"
        );
        assert_eq!(
            get(&t.cut(Tear::None, |_| 0), "a"),
            Some(Vec::new()),
            "the bytes were never synced"
        );
    }

    #[test]
    fn a_rename_is_undone_without_the_directory_sync() {
        let mut s = State::new(0o700, 0, 0);
        let a = file(&mut s, ROOT, "a.tmp");
        s.write(a, 0, b"new").unwrap();
        s.sync(a).unwrap();
        s.sync(ROOT).unwrap();
        s.rename(ROOT, OsStr::new("a.tmp"), ROOT, OsStr::new("a"), false)
            .unwrap();
        let image = s.cut(Tear::None, |_| 0);
        assert_eq!(get(&image, "a.tmp"), Some(b"new".to_vec()));
        assert_eq!(get(&image, "a"), None);
        assert_eq!(
            s.write(a, 0, b"x"),
            Err(libc::EIO),
            "after a cut every change fails"
        );
    }

    #[test]
    fn a_torn_write_keeps_a_prefix_ending_at_a_boundary() {
        let mut s = State::new(0o700, 0, 0);
        let a = file(&mut s, ROOT, "a");
        s.sync(ROOT).unwrap();
        s.write(a, 100, &[7u8; 1000]).unwrap();
        // Ends possible: 512, 1024, then the write's end (1100).
        let image = s.cut(Tear::Sector, |n| {
            assert_eq!(n, 3);
            0
        });
        let bytes = get(&image, "a").unwrap();
        assert_eq!(bytes.len(), 512);
        assert!(bytes[..100].iter().all(|&b| b == 0) && bytes[100..].iter().all(|&b| b == 7));
    }
}
