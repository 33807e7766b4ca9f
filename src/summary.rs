//! The short terminal summary printed at the end of a run.

use crate::passes::precision::latency_cache::CacheStatus;
use crate::passes::precision::section::{
    Formats, LatencySection, PrecisionSection, Probe, SearchInfo,
};
use crate::passes::schedule::section::{ScheduleSection, TiledSection};
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
    if let Some(bound) = r
        .sections
        .get("inputs")
        .and_then(|i| i.get("batch_bound_to_1"))
        .and_then(|b| b.as_array())
    {
        for b in bound {
            let _ = writeln!(
                s,
                "inputs      '{}': dynamic batch '{}' bound to 1 ({}); --input-shape chooses another",
                b["input"].as_str().unwrap_or("?"),
                b["symbol"].as_str().unwrap_or("?"),
                b["bound_to"]
                    .as_array()
                    .map(|d| d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("x"))
                    .unwrap_or_default()
            );
        }
    }
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
        let _ = writeln!(s, "pass        {:<14} {:>7.3}s  {what}", p.name, p.seconds);
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
    let precision = r
        .sections
        .get("precision")
        .and_then(PrecisionSection::from_report);
    if let Some(p) = &precision {
        let _ = writeln!(s, "{}", precision_line(p));
    }
    if let Some(search) = precision.as_ref().and_then(|p| p.search()) {
        let _ = write!(s, "{}", search_lines(search));
    }
    if let Some(PrecisionSection::Allocated(a)) = &precision {
        if let Some(l) = &a.latency {
            s.push_str(&latency_line(l));
        }
    }
    let schedule = r
        .sections
        .get("schedule")
        .and_then(ScheduleSection::from_report);
    if let Some(line) = schedule.as_ref().and_then(schedule_line) {
        let _ = writeln!(s, "{line}");
    }
    if let Some(line) = r.sections.get("relevance").and_then(relevance_line) {
        let _ = writeln!(s, "{line}");
    }
    match &r.validation {
        Some(v) => {
            let reported_only = v.fidelity.as_ref().is_some_and(|f| !f.enforced);
            let verdict = if !v.done {
                "NOT DONE (no runtime could run the models)".to_string()
            } else if v.passed {
                if v.bit_identical {
                    "passed (bit-identical)".to_string()
                } else if v.criterion == "fidelity" {
                    "passed (fidelity >= target)".to_string()
                } else {
                    "passed".to_string()
                }
            } else if v.criterion == "fidelity" && reported_only {
                "below target (reported, not refused)".to_string()
            } else {
                "FAILED".to_string()
            };
            let _ = writeln!(
                s,
                "validation  {} on {} sample(s), {}: max_abs_err {:.3e}, max_rel_err {:.3e}, cosine {:.6} -> {verdict}",
                v.runtime, v.samples, v.inputs_used, v.max_abs_err, v.max_rel_err, v.cosine
            );
            if let Some(why) = &v.fallback_reason {
                let _ = writeln!(s, "            fallback: {why}");
            }
            for o in v.fidelity.iter().flat_map(|f| &f.outputs) {
                let _ = writeln!(s, "{}", fidelity_line(o));
            }
            if let Some(f) = v.fidelity.as_ref().filter(|f| !f.passed) {
                let _ = writeln!(s, "            gate {}", f.mode);
            }
        }
        None => {
            let _ = writeln!(s, "validation  skipped (--no-validate)");
        }
    }
    s
}

/// `fidelity    'y' top1 1 (target 0.99) over 2 sample(s), worst random_1: 1 -> ok; auto: produced by Softmax over the last axis: class scores`
fn fidelity_line(o: &crate::fidelity::OutputFidelity) -> String {
    use crate::fidelity::gate::fmt_value;
    let unit = o.unit_suffix();
    let worst = o
        .worst
        .as_ref()
        .map(|w| format!(", worst {}: {}{unit}", w.sample, fmt_value(w.value)))
        .unwrap_or_default();
    format!(
        "fidelity    '{}' {} {}{unit} (target {}{unit}) over {} sample(s){worst} -> {}; {}",
        o.name,
        o.metric,
        fmt_value(o.value),
        o.target,
        o.samples,
        if o.passed { "ok" } else { "BELOW TARGET" },
        o.why
    )
}

/// Where the first probe came from, one line per probe of the fidelity-driven search, uniform
/// int8 (a reference, not written), then the choice:
/// `search      first probe 0.1730 from the error model (…)`,
/// `search      budget 0.3000: size 0.300, passed (top1 0.98) 4.2s` …,
/// `search      uniform int8: size 0.297, below target (…) 0.1s (reference, not written)`,
/// `search      chose budget 0.2375 (size 0.236)`
fn search_lines(search: &SearchInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "search      first probe {:.4} from the {}",
        search.first_probe.budget,
        match search.first_probe.source.as_str() {
            "error model" =>
                "error model (the smallest budget the ILP predicts no worse than uniform int8)",
            "latency model" =>
                "latency model (uniform int8's predicted time, as a fraction of fp32's)",
            _ => "default (no prediction)",
        }
    );
    let what = match search.axis.as_deref() {
        Some("latency") => "latency budget",
        _ => "budget",
    };
    for p in &search.probes {
        let _ = writeln!(
            out,
            "search      {what} {:.4}: {} {:.1}s",
            p.budget.unwrap_or(f64::NAN),
            probe_what(p),
            p.seconds
        );
    }
    if let Some(u) = &search.uniform_int8 {
        let _ = writeln!(
            out,
            "search      uniform int8: {} {:.1}s ({})",
            probe_what(&u.probe),
            u.probe.seconds,
            if search.chosen_note.is_some() {
                "written"
            } else {
                "reference, not written"
            }
        );
    }
    let _ = match &search.chosen_note {
        Some(note) => writeln!(
            out,
            "search      chose {note} (size {:.3})",
            search.chosen_size_fraction
        ),
        None if search.axis.is_some() => writeln!(
            out,
            "search      chose {what} {:.4} (size {:.3}): the fastest passing probe as measured",
            search.chosen_budget, search.chosen_size_fraction
        ),
        None => writeln!(
            out,
            "search      chose {what} {:.4} (size {:.3}): the smallest that passed",
            search.chosen_budget, search.chosen_size_fraction
        ),
    };
    if let Some(curve) = crate::search_curve::Curve::from_search(search) {
        out.push_str(&crate::search_curve::terminal_plot(&curve));
    }
    out
}

/// `latency     1 thread, avx2 … avx512_vnni: fp32 17.70 ms, predicted 13.72 ms, measured
/// 13.94 ms (prediction -1.6%); table measured in 4.8 s, cached`: the latency model's
/// prediction for the output beside the output's measured time.
pub fn latency_line(l: &LatencySection) -> String {
    let measured = match (l.measured_ms, l.prediction_error) {
        (Some(m), Some(e)) => format!(", measured {m:.2} ms (prediction {:+.1}%)", 100.0 * e),
        (Some(m), None) => format!(", measured {m:.2} ms"),
        _ => String::new(),
    };
    let limit = l
        .limit_ms
        .map(|x| format!(", limit {x:.2} ms"))
        .unwrap_or_default();
    let cache = match l.cache {
        CacheStatus::Hit => format!("table from the cache ({:.1} s)", l.seconds),
        CacheStatus::Miss => format!("table measured in {:.1} s, cached", l.seconds),
        CacheStatus::MissNotStored => format!("table measured in {:.1} s, not cached", l.seconds),
    };
    format!(
        "latency     objective {}, {} thread(s), {}: fp32 {:.2} ms, predicted {:.2} ms{measured}{limit}; {cache}\n",
        l.objective,
        l.threads,
        crate::runtime::host::flags_line(&l.cpu_flags),
        l.fp32_ms,
        l.predicted_ms,
    )
}

/// `size 0.300, passed ('y' 0.995, conservative 0.991)` or `infeasible`: what one probe
/// found (a probe passes on the conservative estimate, see docs/fidelity.md).
fn probe_what(p: &Probe) -> String {
    use crate::fidelity::gate::fmt_value;
    if p.infeasible.is_some() {
        return "infeasible".to_string();
    }
    let fid: Vec<String> = p
        .fidelity
        .iter()
        .flatten()
        .map(|(k, v)| {
            let c = p
                .conservative
                .as_ref()
                .and_then(|c| c.get(k).copied().flatten())
                .map(|c| format!(", conservative {}", fmt_value(c)))
                .unwrap_or_default();
            format!("'{k}' {}{c}", fmt_value(v.unwrap_or(f64::NAN)))
        })
        .collect();
    let verdict = if p.passed { "passed" } else { "below target" };
    let timed = p
        .measured_ms
        .map(|m| format!(", measured {m:.2} ms"))
        .unwrap_or_default();
    format!(
        "size {:.3}, {verdict} ({}){timed}",
        p.size_fraction.unwrap_or(0.0),
        fid.join(", ")
    )
}

/// `precision   int8 40, fp16 2, fp32 3; weights 1.2 MiB -> 330.0 KiB (0.270 of fp32); solver optimal (gap 0.0%), checker passed`
/// and, when calibration used random inputs, a warning line.
fn precision_line(section: &PrecisionSection) -> String {
    let (before, after, fraction, a) = match section {
        PrecisionSection::Skipped(s) => {
            return format!("precision   skipped, model kept fp32: {}", s.skipped)
        }
        PrecisionSection::Unchanged(u) => (
            u.weight_bytes_before,
            u.weight_bytes_after,
            u.size_fraction,
            None,
        ),
        PrecisionSection::Allocated(a) => (
            a.weight_bytes_before,
            a.weight_bytes_after,
            a.size_fraction,
            Some(a),
        ),
    };
    let mut mix: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for n in section.nodes() {
        *mix.entry(n.precision.as_str()).or_default() += 1;
    }
    let parts: Vec<String> = mix.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let mut line = if parts.is_empty() {
        "precision   no operator with constant weights to quantize".to_string()
    } else {
        format!("precision   {}", parts.join(", "))
    };
    let _ = write!(
        line,
        "; weights {} -> {} ({fraction:.3} of fp32)",
        human_bytes(before),
        human_bytes(after)
    );
    let Some(a) = a else { return line };
    let _ = write!(line, "; solver {}", a.solver.status);
    if let Some(gap) = a.solver.gap {
        let _ = write!(line, " (gap {:.1}%)", gap * 100.0);
    }
    let checker = if a.checker.passed { "passed" } else { "FAILED" };
    let _ = write!(line, ", checker {checker}");
    if let Some(w) = &a.calibration.warning {
        let _ = write!(line, "\n            warning: {w}");
    }
    if let Formats::WeightOnly { why } = &a.formats {
        let _ = write!(line, "\n            weight-only formats: {why}");
    }
    if a.errors.time_limit_hit {
        let _ = write!(
            line,
            "\n            warning: error measurement stopped at its time limit; the choice may differ on a faster or slower machine"
        );
    }
    line
}

/// `scratchpad  512.0 KiB: traffic 1.2 MiB, best baseline 3.4 MiB (64.7% less); solver optimal, checker passed`
fn schedule_line(section: &ScheduleSection) -> Option<String> {
    let (budget, best, reduction) = match section {
        ScheduleSection::Tiled(t) => (
            t.scratchpad_bytes,
            t.best_baseline_traffic_bytes,
            t.reduction_vs_best_baseline,
        ),
        ScheduleSection::Whole(w) => (
            w.scratchpad_bytes,
            w.best_baseline_traffic_bytes,
            w.reduction_vs_best_baseline,
        ),
    };
    let ours = section.traffic().ours?;
    let mut line = format!(
        "scratchpad  {}: traffic {}",
        human_bytes(budget),
        human_bytes(ours)
    );
    if let Some(best) = best {
        let _ = write!(line, ", best baseline {}", human_bytes(best));
    }
    if let Some(red) = reduction {
        let _ = write!(line, " ({:.1}% less)", red * 100.0);
    }
    match section {
        ScheduleSection::Tiled(t) => tiled_tail(&mut line, t),
        ScheduleSection::Whole(w) => {
            let _ = write!(line, "; solver {}", w.solver.status);
            if let Some(gap) = w.solver.gap {
                let _ = write!(line, " (gap {:.1}%)", gap * 100.0);
            }
        }
    }
    Some(line)
}

/// The tail of a tiled schedule's line: `; 15 cascades in 6217 tile runs, optimal residency,
/// 93.4% above the compulsory traffic (1.6 MiB), checker passed`. Its gap is to the graph's
/// inputs and outputs, a bound no tiling beats (the cascade search itself is a heuristic),
/// not an ILP's gap, so it says so.
fn tiled_tail(line: &mut String, t: &TiledSection) {
    if let Some(r) = t.runs {
        let _ = write!(line, "; {} cascades in {r} tile runs", t.cascades.len());
    }
    let _ = write!(line, ", {}", t.solver.status);
    if let Some(gap) = t.solver.gap {
        let _ = write!(
            line,
            ", {:.1}% above the compulsory traffic ({})",
            gap * 100.0,
            human_bytes(t.solver.bound_bytes)
        );
    }
    line.push_str(if t.checker.passed {
        ", checker passed"
    } else {
        ", checker FAILED"
    });
}

/// `relevance   coverage 672/672 nodes`
fn relevance_line(section: &serde_json::Value) -> Option<String> {
    let cov = section.get("coverage")?;
    Some(format!(
        "relevance   coverage {}/{} nodes",
        cov.get("covered")?.as_u64()?,
        cov.get("nodes")?.as_u64()?
    ))
}
