//! Progress bars for stages that can take more than a second (calibration, relevance,
//! error measurement, ILP solves, validation). They draw on stderr only when it is a
//! terminal and the run is not `--quiet`, so pipelines and logs stay clean.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

static QUIET: AtomicBool = AtomicBool::new(false);

/// Silences every progress bar of this process (for `--quiet`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

fn visible() -> bool {
    !QUIET.load(Ordering::Relaxed) && std::io::stderr().is_terminal()
}

fn target() -> ProgressDrawTarget {
    if visible() {
        ProgressDrawTarget::stderr_with_hz(10)
    } else {
        ProgressDrawTarget::hidden()
    }
}

static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records a warning. The command line prints the warnings when the command succeeds
/// (`warning: …` lines on stderr, none with `--quiet`), so that a failure stays one line:
/// the error.
pub fn warn(msg: &str) {
    let mut w = WARNINGS.lock().unwrap_or_else(PoisonError::into_inner);
    w.push(crate::error::one_line(msg));
}

/// The warnings recorded so far (emptied), to print unless the run is `--quiet`.
pub fn take_warnings() -> Vec<String> {
    let mut w = WARNINGS.lock().unwrap_or_else(PoisonError::into_inner);
    let out = std::mem::take(&mut *w);
    if QUIET.load(Ordering::Relaxed) {
        Vec::new()
    } else {
        out
    }
}

/// A bar over `total` steps of a named stage, e.g. `validation  [####    ] 3/8 samples`.
pub fn bar(stage: &str, total: u64, unit: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(total), target());
    let template =
        format!("{{prefix:<12}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{msg}} ({{elapsed}})");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        pb.set_style(style.progress_chars("#> "));
    }
    pb.set_prefix(stage.to_string());
    pb
}

/// A spinner for a stage without a known number of steps (an ILP solve, say); `msg` can be
/// updated with the incumbent as it improves.
pub fn spinner(stage: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(None, target());
    if let Ok(style) = ProgressStyle::with_template("{prefix:<12} {spinner} {msg} ({elapsed})") {
        pb.set_style(style);
    }
    pb.set_prefix(stage.to_string());
    if visible() {
        pb.enable_steady_tick(Duration::from_millis(120));
    }
    pb
}
