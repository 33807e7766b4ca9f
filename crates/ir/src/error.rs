//! Errors and the exit codes they map to.
//!
//! Exit codes: 0 success, 1 internal error (a bug: please report it), 2 bad input
//! (unreadable or invalid model, bad flags or data, unwritable output), 3 validation failed
//! (the optimized model differs from the original beyond tolerance).

use std::fmt::Display;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A problem with something the user gave us: a file, a flag, input data.
    #[error("{path}: {msg}")]
    Input { path: String, msg: String },
    /// A bad command-line value not tied to one file.
    #[error("{0}")]
    Usage(String),
    /// The optimized model's outputs differ from the original's beyond tolerance.
    #[error("validation failed: {0}")]
    Validation(String),
    /// A runtime (onnxruntime) could not be loaded or refused to run.
    #[error("{0}")]
    Runtime(String),
    /// A bug in the optimizer.
    #[error("internal error: {0} (please report this)")]
    Internal(String),
}

impl Error {
    pub fn input(path: impl AsRef<Path>, msg: impl std::fmt::Display) -> Error {
        Error::Input {
            path: one_line(&path.as_ref().display().to_string()),
            msg: one_line(&msg.to_string()),
        }
    }

    /// The same error with every mention of `from` (a staging path) replaced by `to` (the
    /// destination the user named): a message never shows a temporary path.
    pub fn replacing_path(self, from: &Path, to: &Path) -> Error {
        let (from, to) = (from.display().to_string(), to.display().to_string());
        let r = |s: String| s.replace(&from, &to);
        match self {
            Error::Input { path, msg } => Error::Input {
                path: r(path),
                msg: r(msg),
            },
            Error::Usage(m) => Error::Usage(r(m)),
            Error::Validation(m) => Error::Validation(r(m)),
            Error::Runtime(m) => Error::Runtime(r(m)),
            Error::Internal(m) => Error::Internal(r(m)),
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Input { .. } | Error::Usage(_) => 2,
            Error::Validation(_) => 3,
            Error::Runtime(_) => 4,
            Error::Internal(_) => 1,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Escapes control characters (newlines in a node name from a hostile model, ...) so that
/// an error message always stays one line.
pub fn one_line(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The reason of an I/O error without any path a wrapper added (tempfile appends the
/// temporary path, which must not leak into a message about the user's path).
pub fn io_reason(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code).to_string(),
        None => e.kind().to_string(),
    }
}

/// A number as a person writes it: `1e-30`, not thirty zeros.
struct Num(f64);

impl Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let a = self.0.abs();
        if a != 0.0 && a.is_finite() && !(1e-4..1e15).contains(&a) {
            write!(f, "{:e}", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// Values a check names in its message.
pub trait Shown: Copy {
    fn shown(self) -> String;
}

impl Shown for f64 {
    fn shown(self) -> String {
        Num(self).to_string()
    }
}

impl Shown for usize {
    fn shown(self) -> String {
        self.to_string()
    }
}

/// The error for a bad flag value: `--flag value: why`, one line.
pub fn flag_error(flag: &str, value: impl Display, why: String) -> Error {
    Error::Usage(one_line(&format!("{flag} {value}: {why}")))
}
