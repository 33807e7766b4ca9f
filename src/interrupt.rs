//! Interrupted runs (SIGINT, SIGTERM, SIGHUP): the staging folders of outputs not yet moved
//! into place are removed and the process exits with 128 + the signal number (130 for
//! SIGINT, 143 for SIGTERM, 129 for SIGHUP).
//!
//! The pipeline writes its output into a private `.optimize-*` folder beside the
//! destination and renames it into place only when it is complete. [`register`] records
//! such a folder; [`Staging::commit`] performs the renames while holding the same lock the
//! signal handler takes, so a signal either lands before the commit (the folder is removed,
//! the previous output is untouched) or after it (the new output is complete). The input is
//! never written at all. A SIGKILL cannot be handled: the previous output stays intact (the
//! rename never happened) but the staging folder may remain.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, Once, PoisonError};

static STAGING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn staging() -> MutexGuard<'static, Vec<PathBuf>> {
    STAGING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Installs the handler once per process (the CLI calls it at start). Without it, a signal
/// kills the process with the default action; outputs are still never partial.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            return;
        };
        let _ = std::thread::Builder::new()
            .name("optimize-signals".into())
            .spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    on_signal(sig);
                }
            });
    });
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        signal_hook::consts::SIGINT => "SIGINT",
        signal_hook::consts::SIGTERM => "SIGTERM",
        signal_hook::consts::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

fn on_signal(sig: i32) {
    // Held until the process is gone: no commit can start after this point.
    let dirs = staging();
    for d in dirs.iter() {
        let _ = std::fs::remove_dir_all(d);
    }
    eprintln!(
        "error: interrupted by {}; temporary files removed, the input and any previous output are untouched",
        signal_name(sig)
    );
    // `_exit`, not `exit`: the main thread may be inside onnxruntime, whose static
    // destructors must not run under it.
    // SAFETY: `_exit` has no preconditions; it ends the process without running destructors.
    unsafe { libc::_exit(128 + sig) }
}

/// A staging folder the signal handler removes until it is committed or dropped.
pub struct Staging {
    path: PathBuf,
}

/// Registers `path` (a staging folder) for removal on a signal.
pub fn register(path: &Path) -> Staging {
    staging().push(path.to_path_buf());
    Staging {
        path: path.to_path_buf(),
    }
}

impl Staging {
    /// Runs `f` (the renames that move the staged output into place) with signals held
    /// off, then stops tracking the folder.
    pub fn commit<T>(&self, f: impl FnOnce() -> T) -> T {
        let mut dirs = staging();
        let r = f();
        dirs.retain(|d| d != &self.path);
        r
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        staging().retain(|d| d != &self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(p: &str) -> bool {
        staging().iter().any(|d| d == Path::new(p))
    }

    /// Committing or dropping one staging folder stops tracking that folder only (another
    /// run's folder must still be removed on a signal).
    #[test]
    fn commit_and_drop_untrack_only_their_own_folder() {
        let (a, b, c) = (
            "/nonexistent/interrupt-test-a",
            "/nonexistent/interrupt-test-b",
            "/nonexistent/interrupt-test-c",
        );
        let sa = register(Path::new(a));
        let sb = register(Path::new(b));
        let sc = register(Path::new(c));
        assert!(listed(a) && listed(b) && listed(c));
        assert_eq!(sa.commit(|| 7), 7);
        assert!(!listed(a) && listed(b) && listed(c));
        drop(sb);
        assert!(!listed(b) && listed(c));
        drop(sa);
        assert!(listed(c));
        drop(sc);
        assert!(!listed(c));
    }
}
