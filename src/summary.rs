//! The short terminal summary printed at the end of a run.

use crate::report::Report;
use std::fmt::Write;
use std::path::Path;

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub fn render_summary(r: &Report, output: &Path) -> String {
    let mut s = String::new();
    let m = &r.model;
    let _ = writeln!(
        s,
        "model       {}: {} nodes, {} parameters ({})",
        m.path,
        m.nodes,
        m.parameters,
        human_bytes(m.bytes)
    );
    for p in &r.passes {
        let what = if p.changes.is_empty() {
            "no change".to_string()
        } else {
            p.changes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(s, "pass        {:<12} {:>7.3}s  {what}", p.name, p.seconds);
    }
    match &r.output {
        Some(o) => {
            let _ = writeln!(
                s,
                "output      {}: {} nodes, {} parameters ({}), file {}",
                o.path,
                o.nodes,
                o.parameters,
                human_bytes(o.bytes),
                human_bytes(o.file_bytes)
            );
        }
        None => {
            let _ = writeln!(s, "output      {} not written", output.display());
        }
    }
    match &r.validation {
        Some(v) => {
            let verdict = if v.passed {
                if v.bit_identical {
                    "passed (bit-identical)"
                } else {
                    "passed"
                }
            } else {
                "FAILED"
            };
            let _ = writeln!(
                s,
                "validation  {} on {} sample(s), {}: max_abs_err {:.3e}, max_rel_err {:.3e}, cosine {:.6} -> {verdict}",
                v.runtime, v.samples, v.inputs_used, v.max_abs_err, v.max_rel_err, v.cosine
            );
        }
        None => {
            let _ = writeln!(s, "validation  skipped (--no-validate)");
        }
    }
    s
}
