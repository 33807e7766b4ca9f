//! One policy for every file the tool writes: `-o` (and the external data beside it),
//! `--report`, `--html`, `--plan`, the IR dumps of `--dump-dir`, and `explain --out` /
//! `--report` / `--html`.
//!
//! * **Only regular files or new paths.** A destination that exists must be a regular file
//!   (or a link to one); devices, FIFOs, sockets and folders are refused, never replaced.
//! * **No aliasing.** A destination is never the input model, one of the files its external
//!   data was read from, or another output of the same run. Paths are compared canonically
//!   (links and `..` resolved) and by device and inode (hard links).
//! * **Checked before any work.** Every destination is checked, and its folder proven
//!   writable by creating the run's private staging folder (`.optimize-*`) in it, before the
//!   model is even read; an unwritable folder fails the run before anything is computed.
//! * **Staged together, committed together.** Writers write into the staging folders only;
//!   [`Outputs::commit`] re-checks every destination and renames the staged files into
//!   place, with signals held off (see [`crate::interrupt`]). A failure before the commit
//!   leaves nothing behind: the staging folders are removed.
//! * **Permissions as a normal tool's.** A new file gets `0666 & !umask` (a new folder
//!   `0777 & !umask`); a replaced file keeps its mode.
//!
//! Messages name the destination the user gave, never a staging path.

use crate::error::{Error, Result};
use crate::interrupt::Staging;
use std::ffi::OsString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// How a path is told apart from another: canonically and, when it exists, by inode.
#[derive(Clone, Debug, PartialEq)]
struct Identity {
    canonical: PathBuf,
    inode: Option<(u64, u64)>,
}

impl Identity {
    fn of(path: &Path) -> Identity {
        let inode = std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
        let canonical = path.canonicalize().unwrap_or_else(|_| {
            // A new path: its folder resolved, its name as given.
            let parent = folder_of(path);
            let base = parent
                .canonicalize()
                .unwrap_or_else(|_| std::path::absolute(parent).unwrap_or(parent.to_path_buf()));
            match path.file_name() {
                Some(n) => base.join(n),
                None => base,
            }
        });
        Identity { canonical, inode }
    }

    fn same(&self, other: &Identity) -> bool {
        self.canonical == other.canonical
            || matches!((self.inode, other.inode), (Some(a), Some(b)) if a == b)
    }
}

/// The folder a path is in (`.` for a bare file name).
pub fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The permission bits of the process's umask (from `/proc/self/status`; 022 when unknown).
pub fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// Whether a destination is one file or a folder of files (`explain --out`).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    File,
    Folder,
    /// Staged only, never committed.
    Scratch,
}

/// One destination of the run.
#[derive(Debug)]
struct Destination {
    /// The flag that named it, e.g. `-o`, `--report`.
    flag: String,
    /// As the user gave it.
    path: PathBuf,
    kind: Kind,
    id: Identity,
    /// Where writers put it.
    staged: PathBuf,
}

/// A staging folder and the destination folder it serves.
struct Stage {
    folder: Identity,
    dir: tempfile::TempDir,
    signals: Staging,
}

/// The outputs of one run (see the module docs).
pub struct Outputs {
    protected: Vec<(String, Identity)>,
    dests: Vec<Destination>,
    stages: Vec<Stage>,
}

fn refuse(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::input(path, msg)
}

/// Checks what is at `path` now: nothing, or a regular file (or a folder for `Kind::Folder`).
fn check_existing(flag: &str, path: &Path, kind: Kind) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() && kind == Kind::Folder => Ok(()),
        Ok(m) if m.is_dir() => Err(refuse(
            path,
            format!("cannot write {flag}: it is a folder; give a file path"),
        )),
        Ok(m) if kind == Kind::Folder => Err(refuse(
            path,
            format!(
                "cannot write {flag}: it is {}, not a folder",
                crate::bounded_read::kind_of(&m)
            ),
        )),
        Ok(m) if !m.is_file() => Err(refuse(
            path,
            format!(
                "cannot write {flag}: it is {}; only regular files or new paths are written, so it is left alone",
                crate::bounded_read::kind_of(&m)
            ),
        )),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(refuse(path, format!("cannot write {flag}: {e}"))),
    }
}

impl Outputs {
    /// Outputs of a run reading `input` (which no output may replace).
    pub fn new(input: &Path) -> Outputs {
        Outputs {
            protected: vec![("the input model".into(), Identity::of(input))],
            dests: Vec::new(),
            stages: Vec::new(),
        }
    }

    /// Adds a file no output may replace (`what` names it in messages, e.g. "the input
    /// model's external data"), and checks the destinations added so far against it.
    pub fn protect(&mut self, what: &str, path: &Path) -> Result<()> {
        let id = Identity::of(path);
        if let Some(d) = self.dests.iter().find(|d| d.id.same(&id)) {
            return Err(refuse(
                &d.path,
                format!(
                    "cannot write {}: it is {what}; refusing to overwrite it",
                    d.flag
                ),
            ));
        }
        self.protected.push((what.to_string(), id));
        Ok(())
    }

    /// Refuses `path` when it is a protected file (the input, its external data).
    fn check_not_protected(&self, flag: &str, path: &Path) -> Result<()> {
        let id = Identity::of(path);
        let Some((what, _)) = self.protected.iter().find(|(_, p)| p.same(&id)) else {
            return Ok(());
        };
        let msg = if what == "the input model" {
            format!("cannot write {flag}: it is the input model; refusing to overwrite the input")
        } else {
            format!("cannot write {flag}: it is {what}; refusing to overwrite it")
        };
        Err(refuse(path, msg))
    }

    /// Adds a file destination named by `flag`; returns the path writers write it to.
    pub fn add_file(&mut self, flag: &str, path: &Path) -> Result<PathBuf> {
        self.add(flag, path, Kind::File)
    }

    /// Adds a folder destination (created at commit when missing; files already in it are
    /// replaced only when they are regular files); returns the folder writers write into.
    pub fn add_folder(&mut self, flag: &str, path: &Path) -> Result<PathBuf> {
        self.add(flag, path, Kind::Folder)
    }

    fn add(&mut self, flag: &str, path: &Path, kind: Kind) -> Result<PathBuf> {
        let name: OsString = match path.file_name() {
            Some(n) => n.to_os_string(),
            None => {
                return Err(refuse(
                    path,
                    format!("cannot write {flag}: the path has no file name"),
                ))
            }
        };
        let folder = folder_of(path);
        match std::fs::metadata(folder) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(refuse(
                    path,
                    format!("cannot write {flag}: {} is not a folder", folder.display()),
                ))
            }
            Err(_) => {
                return Err(refuse(
                    path,
                    format!("cannot write {flag}: its folder does not exist"),
                ))
            }
        }
        check_existing(flag, path, kind)?;
        self.check_not_protected(flag, path)?;
        let id = Identity::of(path);
        if let Some(other) = self.dests.iter().find(|d| d.id.same(&id)) {
            return Err(refuse(
                path,
                format!(
                    "cannot write {flag}: {} writes the same file; every output needs its own path",
                    other.flag
                ),
            ));
        }
        // A folder destination that exists is staged inside itself (same file system).
        let stage_in = if kind == Kind::Folder && path.is_dir() {
            path
        } else {
            folder
        };
        let stage = self.stage_for(flag, path, stage_in)?;
        let base = self.stages[stage].dir.path();
        let staged = match kind {
            Kind::File | Kind::Scratch => base.join(&name),
            Kind::Folder => {
                let p = base.join(format!("{}.out", self.dests.len()));
                std::fs::create_dir(&p)
                    .map_err(|e| refuse(path, format!("cannot write {flag}: {e}")))?;
                p
            }
        };
        if kind == Kind::File && self.dests.iter().any(|d| d.staged == staged) {
            // Two names that differ only in their folder's spelling of the same folder
            // would share a staged file; `same` above already refused them.
            return Err(Error::Internal(format!("staged twice: {}", path.display())));
        }
        self.dests.push(Destination {
            flag: flag.to_string(),
            path: path.to_path_buf(),
            kind,
            id,
            staged: staged.clone(),
        });
        Ok(staged)
    }

    /// The staging folder in `folder`, created on first use (which proves it writable).
    fn stage_for(&mut self, flag: &str, dest: &Path, folder: &Path) -> Result<usize> {
        let fid = Identity::of(folder);
        if let Some(i) = self.stages.iter().position(|s| s.folder.same(&fid)) {
            return Ok(i);
        }
        let dir = tempfile::Builder::new()
            .prefix(".optimize-")
            .tempdir_in(folder)
            .map_err(|e| {
                refuse(
                    dest,
                    format!(
                        "cannot write {flag}: its folder {} is not writable ({})",
                        folder.display(),
                        crate::error::io_reason(&e)
                    ),
                )
            })?;
        let signals = crate::interrupt::register(dir.path());
        self.stages.push(Stage {
            folder: fid,
            dir,
            signals,
        });
        Ok(self.stages.len() - 1)
    }

    /// A file that is staged but never committed (`--check` stages the model it validates
    /// in a private folder under the system's temporary folder); returns its staged path.
    pub fn add_scratch(&mut self, flag: &str, path: &Path) -> Result<PathBuf> {
        let name = path
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "model.onnx".into());
        let dir = tempfile::Builder::new()
            .prefix(".optimize-")
            .tempdir()
            .map_err(|e| {
                Error::Usage(format!(
                    "cannot create a temporary folder: {}",
                    crate::error::io_reason(&e)
                ))
            })?;
        let signals = crate::interrupt::register(dir.path());
        let staged = dir.path().join(name);
        self.stages.push(Stage {
            folder: Identity::of(dir.path()),
            dir,
            signals,
        });
        self.dests.push(Destination {
            flag: flag.to_string(),
            path: path.to_path_buf(),
            kind: Kind::Scratch,
            id: Identity::of(&staged),
            staged: staged.clone(),
        });
        Ok(staged)
    }

    /// Where writers put the destination named by `flag` (`None` when none was added).
    pub fn staged(&self, flag: &str) -> Option<&Path> {
        self.dests
            .iter()
            .find(|d| d.flag == flag)
            .map(|d| d.staged.as_path())
    }

    /// `e` with every staged path replaced by the destination the user named (a writer's
    /// error names the file it wrote, which is a staged one): messages never show a
    /// staging path.
    pub fn name_destinations(&self, mut e: Error) -> Error {
        for d in &self.dests {
            e = e.replacing_path(&d.staged, &d.path);
        }
        for s in &self.stages {
            e = e.replacing_path(s.dir.path(), Path::new("<staging folder>"));
        }
        e
    }

    /// The destination path `flag` names, as the user gave it.
    pub fn destination(&self, flag: &str) -> Option<&Path> {
        self.dests
            .iter()
            .find(|d| d.flag == flag)
            .map(|d| d.path.as_path())
    }

    /// Moves the staged files of the destinations `keep` selects into place, after
    /// checking every one of them again; destinations with nothing staged are skipped.
    /// Returns the paths written.
    pub fn commit(&self, keep: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>> {
        let chosen: Vec<&Destination> = self
            .dests
            .iter()
            .filter(|d| d.kind != Kind::Scratch && keep(&d.flag) && d.staged.exists())
            .collect();
        for d in &chosen {
            check_existing(&d.flag, &d.path, d.kind)?;
            self.check_not_protected(&d.flag, &d.path)?;
        }
        let Some(first) = self.stages.first() else {
            return Ok(Vec::new());
        };
        let mask = umask();
        first.signals.commit(|| {
            let mut written = Vec::new();
            for d in &chosen {
                match d.kind {
                    Kind::File | Kind::Scratch => {
                        move_file(&d.flag, &d.staged, &d.path, mask)?;
                        written.push(d.path.clone());
                    }
                    Kind::Folder => written.extend(self.move_folder(d, mask)?),
                }
            }
            Ok(written)
        })
    }

    /// Moves a staged folder's files into place: the whole folder when the destination
    /// does not exist yet, else file by file under the same rules as any destination.
    fn move_folder(&self, d: &Destination, mask: u32) -> Result<Vec<PathBuf>> {
        let werr = |e: std::io::Error| refuse(&d.path, format!("cannot write {}: {e}", d.flag));
        let mut names: Vec<OsString> = std::fs::read_dir(&d.staged)
            .map_err(werr)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .map_err(werr)?;
        names.sort();
        if !d.path.exists() {
            std::fs::set_permissions(&d.staged, std::fs::Permissions::from_mode(0o777 & !mask))
                .map_err(werr)?;
            for n in &names {
                set_mode(&d.staged.join(n), None, mask).map_err(werr)?;
            }
            std::fs::rename(&d.staged, &d.path).map_err(werr)?;
            return Ok(names.iter().map(|n| d.path.join(n)).collect());
        }
        // Every file is checked before the first one moves.
        for n in &names {
            let to = d.path.join(n);
            check_existing(&d.flag, &to, Kind::File)?;
            self.check_not_protected(&d.flag, &to)?;
        }
        let mut written = Vec::new();
        for n in &names {
            let to = d.path.join(n);
            move_file(&d.flag, &d.staged.join(n), &to, mask)?;
            written.push(to);
        }
        Ok(written)
    }
}

/// Gives `path` the mode of the file it replaces (`existing`), or `0666 & !umask`.
fn set_mode(path: &Path, existing: Option<u32>, mask: u32) -> std::io::Result<()> {
    let mode = existing.unwrap_or(0o666 & !mask);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

fn move_file(flag: &str, from: &Path, to: &Path, mask: u32) -> Result<()> {
    let werr = |e: std::io::Error| refuse(to, format!("cannot write {flag}: {e}"));
    let existing = std::fs::metadata(to)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.permissions().mode() & 0o7777);
    set_mode(from, existing, mask).map_err(werr)?;
    std::fs::rename(from, to).map_err(werr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("m.onnx");
        std::fs::write(&input, b"model").unwrap();
        (d, input)
    }

    #[test]
    fn the_input_and_its_aliases_are_refused() {
        let (d, input) = setup();
        let mut o = Outputs::new(&input);
        let e = o.add_file("-o", &input).unwrap_err().to_string();
        assert!(e.contains("refusing to overwrite the input"), "{e}");
        let dotted = d.path().join("x/../m.onnx");
        std::fs::create_dir(d.path().join("x")).unwrap();
        assert!(o.add_file("--report", &dotted).is_err());
        let hard = d.path().join("hard.onnx");
        std::fs::hard_link(&input, &hard).unwrap();
        assert!(o.add_file("--html", &hard).is_err());
        let link = d.path().join("link.onnx");
        std::os::unix::fs::symlink(&input, &link).unwrap();
        assert!(o.add_file("--plan", &link).is_err());
    }

    #[test]
    fn two_outputs_never_share_a_path() {
        let (d, input) = setup();
        let mut o = Outputs::new(&input);
        o.add_file("-o", &d.path().join("out.onnx")).unwrap();
        let e = o
            .add_file("--report", &d.path().join("out.onnx"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("-o writes the same file"), "{e}");
    }

    #[test]
    fn external_data_files_are_protected_once_known() {
        let (d, input) = setup();
        let data = d.path().join("w.data");
        std::fs::write(&data, b"1234").unwrap();
        let mut o = Outputs::new(&input);
        o.add_file("--report", &data).unwrap();
        assert!(o.protect("the input model's external data", &data).is_err());
    }

    #[test]
    fn nothing_is_left_without_a_commit_and_modes_follow_the_rules() {
        let (d, input) = setup();
        let kept = d.path().join("kept.json");
        std::fs::write(&kept, b"old").unwrap();
        std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o640)).unwrap();
        {
            let mut o = Outputs::new(&input);
            let s = o.add_file("--report", &kept).unwrap();
            std::fs::write(s, b"new").unwrap();
        }
        assert_eq!(std::fs::read(&kept).unwrap(), b"old");
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(names.len(), 2, "a staging folder was left: {names:?}");
        let mut o = Outputs::new(&input);
        let s = o.add_file("--report", &kept).unwrap();
        std::fs::write(s, b"new").unwrap();
        let fresh = d.path().join("fresh.html");
        let s = o.add_file("--html", &fresh).unwrap();
        std::fs::write(s, b"<p>").unwrap();
        o.commit(|_| true).unwrap();
        drop(o);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(std::fs::read(&kept).unwrap(), b"new");
        assert_eq!(mode(&kept), 0o640);
        assert_eq!(mode(&fresh), 0o666 & !umask());
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 3);
    }

    #[test]
    fn non_regular_destinations_are_refused() {
        let (d, input) = setup();
        let fifo = d.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let mut o = Outputs::new(&input);
        let e = o.add_file("-o", &fifo).unwrap_err().to_string();
        assert!(e.contains("FIFO"), "{e}");
        let e = o.add_file("-o", d.path()).unwrap_err().to_string();
        assert!(e.contains("folder"), "{e}");
        let e = o
            .add_file("-o", &d.path().join("none/out.onnx"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("folder does not exist"), "{e}");
    }
}
