//! `optimize passes`: the pass registry as a user reads it: each pass with what it does,
//! the options a `[[pass]]` entry of optimize.toml may give it, what it requires and
//! ensures, and when a run without a pass list runs it.

use crate::passes::registry::{Inclusion, Requirement, REGISTRY};
use std::fmt::Write;

/// The text `optimize passes` prints.
pub fn catalog_text() -> String {
    let mut s = String::new();
    for info in REGISTRY {
        let _ = writeln!(s, "{}\n  {}", info.name, info.about);
        let when = match info.inclusion {
            Inclusion::Always => "yes".to_string(),
            Inclusion::UnlessTurnedOff(how) => format!("yes, unless turned off ({how})"),
            Inclusion::WhenRequired => "when a pass that runs requires it".to_string(),
            Inclusion::WhenListed => "no, only when a [[pass]] entry names it".to_string(),
            Inclusion::AppendedWhenConfigured => {
                "when configured, after every other pass (also after a pass list that does not name it)"
                    .to_string()
            }
        };
        let _ = writeln!(s, "  runs by default: {when}");
        if !info.options.is_empty() {
            let _ = writeln!(s, "  [[pass]] options: {}", info.options.join(", "));
        }
        for r in info.requires {
            let _ = writeln!(s, "  requires: {}", requirement_text(r));
        }
        for e in info.ensures {
            let _ = writeln!(s, "  ensures: {e}");
        }
    }
    s
}

fn requirement_text(r: &Requirement) -> String {
    match r {
        Requirement::RunsLast => "runs last (it fixes the final operator order)".into(),
        Requirement::Settings(what) => what.to_string(),
        Requirement::NoOptions(None) => "no options in a [[pass]] entry".into(),
        Requirement::NoOptions(Some(instead)) => {
            format!("no options in a [[pass]] entry ({instead})")
        }
        Requirement::DataOrWarns(what) => what.to_string(),
        Requirement::After(dep) => {
            format!("runs after {dep} (inserted before it when a pass list does not name it)")
        }
    }
}
