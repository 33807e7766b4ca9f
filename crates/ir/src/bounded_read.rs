//! Reading the user's files: regular files only, bounded by `--max-memory`.
//!
//! Every file the tool reads (models, external data, `.npy`/`.pb` samples, images, config
//! and target files) goes through [`open_regular`] or [`read_regular`]:
//! * the file is opened with `O_NONBLOCK`, so opening a FIFO never waits for a writer, and
//!   its type is taken from the open descriptor (`fstat`), so a link swapped in between a
//!   check and the open cannot slip a device through;
//! * anything but a regular file (a character or block device such as `/dev/zero`, a FIFO,
//!   a socket, a folder) is refused with one line naming the file;
//! * the size is compared with the memory limit before a byte is read, and the read itself
//!   stops one byte past the limit, so a file that grows while it is read cannot exhaust
//!   memory either.

use crate::error::{Error, Result};
use crate::onnx_io::limits::{fmt_bytes, max_memory};
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// What a non-regular file is, for messages.
pub fn kind_of(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a folder"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

/// Opens `path` for reading when it is a regular file; `what` names it in messages
/// (`"model"`, `"config file"`, ...). Returns the file and its metadata.
pub fn open_regular(path: &Path, what: &str) -> Result<(File, Metadata)> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::input(path, "no such file"),
            std::io::ErrorKind::PermissionDenied => {
                Error::input(path, format!("cannot read the {what}: permission denied"))
            }
            _ => Error::input(path, format!("cannot read the {what}: {e}")),
        })?;
    let meta = f
        .metadata()
        .map_err(|e| Error::input(path, format!("cannot read the {what}: {e}")))?;
    if meta.is_dir() {
        return Err(Error::input(
            path,
            format!("is a folder (a directory), not a {what}"),
        ));
    }
    if !meta.is_file() {
        return Err(Error::input(
            path,
            format!(
                "is {}, not a regular file; only regular files are read as a {what}",
                kind_of(&meta)
            ),
        ));
    }
    Ok((f, meta))
}

/// The error for a file over the memory limit.
pub fn over_limit(path: &Path, len: u64, limit: u64) -> Error {
    Error::input(
        path,
        format!(
            "the file is {}, over the memory limit of {} (raise it with --max-memory)",
            fmt_bytes(len),
            fmt_bytes(limit)
        ),
    )
}

/// Reads a whole regular file of at most `--max-memory` bytes (see the module docs).
pub fn read_regular(path: &Path, what: &str) -> Result<Vec<u8>> {
    read_regular_limited(path, what, max_memory())
}

/// [`read_regular`] with an explicit limit (config files get a small one).
pub fn read_regular_limited(path: &Path, what: &str, limit: u64) -> Result<Vec<u8>> {
    let (f, meta) = open_regular(path, what)?;
    if meta.len() > limit {
        return Err(over_limit(path, meta.len(), limit));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    f.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| Error::input(path, format!("cannot read the {what}: {e}")))?;
    if buf.len() as u64 > limit {
        return Err(over_limit(path, buf.len() as u64, limit));
    }
    Ok(buf)
}

/// Reads a text file (config, target) of at most `limit` bytes as UTF-8.
pub fn read_text(path: &Path, what: &str, limit: u64) -> Result<String> {
    let bytes = read_regular_limited(path, what, limit)?;
    String::from_utf8(bytes)
        .map_err(|_| Error::input(path, format!("the {what} is not UTF-8 text")))
}

/// Largest config or target file read (a TOML file of settings is a few hundred bytes).
pub const MAX_TEXT_FILE: u64 = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_and_folders_are_refused_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("f.npy");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let e = read_regular(&fifo, "data file").unwrap_err().to_string();
        assert!(e.contains("FIFO"), "{e}");
        let e = read_regular(Path::new("/dev/zero"), "model")
            .unwrap_err()
            .to_string();
        assert!(e.contains("a device"), "{e}");
        let e = read_regular(d.path(), "model").unwrap_err().to_string();
        assert!(e.contains("folder"), "{e}");
        let e = read_regular(&d.path().join("none"), "model")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such file"), "{e}");
    }

    #[test]
    fn reads_are_bounded() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("big");
        std::fs::write(&p, vec![7u8; 100]).unwrap();
        assert_eq!(read_regular_limited(&p, "file", 100).unwrap().len(), 100);
        let e = read_regular_limited(&p, "file", 99)
            .unwrap_err()
            .to_string();
        assert!(e.contains("over the memory limit"), "{e}");
    }
}
