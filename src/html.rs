//! `--html report.html`: one self-contained page (inline CSS and SVG, no network) with
//! pictures of what the run did: fidelity per output, pass timings, and — when those passes
//! ran — relevance per operator along the graph, the precision chosen per operator, the
//! scratchpad memory plan as a timeline, and traffic against the baselines.
//!
//! A small inline script marks each figure `data-rendered="yes"` once the browser has laid
//! it out with a non-empty box, which the headless-browser test checks.

use crate::error::Result;
use crate::passes::precision::section::{PrecisionSection, SearchInfo};
use crate::passes::schedule::section::ScheduleSection;
use crate::report::{write_atomic, Report};
use serde_json::Value;
use std::fmt::Write;
use std::path::Path;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A horizontal bar chart: one labelled bar per (label, value), scaled to the largest value.
pub fn bar_chart(id: &str, title: &str, rows: &[(String, f64)], unit: &str) -> String {
    let height = 24 * rows.len().max(1) + 30;
    let max = rows
        .iter()
        .map(|r| r.1)
        .fold(0.0f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let mut svg = format!(
        r#"<figure id="{id}" class="picture"><figcaption>{}</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="760" height="{height}" role="img">"#,
        esc(title)
    );
    for (i, (label, v)) in rows.iter().enumerate() {
        let y = 10 + 24 * i;
        let w = (v / max * 420.0).max(1.0);
        let _ = write!(
            svg,
            r#"<text x="0" y="{}" class="lbl">{}</text><rect x="220" y="{y}" width="{w:.1}" height="18" class="bar"><title>{}: {v} {unit}</title></rect><text x="{:.1}" y="{}" class="val">{}</text>"#,
            y + 14,
            esc(&truncate(label, 30)),
            esc(label),
            226.0 + w,
            y + 14,
            esc(&format_value(*v, unit))
        );
    }
    svg.push_str("</svg></figure>\n");
    svg
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

fn format_value(v: f64, unit: &str) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 && !unit.is_empty() {
        format!("{} {unit}", v as i64)
    } else if v != 0.0 && (v.abs() < 1e-3 || v.abs() >= 1e6) {
        format!("{v:.3e} {unit}")
    } else {
        format!("{v:.4} {unit}")
    }
}

/// Relevance share of every operator in graph order, as a column strip.
fn relevance_picture(section: &Value) -> Option<String> {
    let nodes = section.get("nodes")?.as_array()?;
    if nodes.is_empty() {
        return None;
    }
    let vals: Vec<(String, f64, f64)> = nodes
        .iter()
        .map(|n| {
            let name = n
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let op = n.get("op").and_then(Value::as_str).unwrap_or("");
            let r = n
                .get("relevance_share")
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
            let w = n
                .get("weight_relevance_share")
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
            (format!("{op} {name}"), r, w)
        })
        .collect();
    let max = vals
        .iter()
        .map(|v| v.1.max(v.2))
        .fold(0.0f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let width = 760.0;
    let step = width / vals.len() as f64;
    let mut svg = String::from(
        r#"<figure id="relevance" class="picture"><figcaption>Relevance per operator along the graph (blue: output relevance share, orange: weight relevance share)</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="760" height="220" role="img">"#,
    );
    for (i, (label, r, w)) in vals.iter().enumerate() {
        let x = i as f64 * step;
        let hr = r / max * 180.0;
        let hw = w / max * 180.0;
        let _ = write!(
            svg,
            r#"<rect x="{x:.2}" y="{:.2}" width="{:.2}" height="{hr:.2}" class="bar"><title>{}: relevance {r:.4}</title></rect><rect x="{:.2}" y="{:.2}" width="{:.2}" height="{hw:.2}" class="bar2"><title>{}: weight relevance {w:.4}</title></rect>"#,
            200.0 - hr,
            (step * 0.5).max(0.5),
            esc(label),
            x + step * 0.5,
            200.0 - hw,
            (step * 0.5).max(0.5),
            esc(label)
        );
    }
    svg.push_str(r#"<line x1="0" y1="200" x2="760" y2="200" class="axis"/></svg></figure>"#);
    Some(svg)
}

/// The precision chosen for each operator, as a coloured strip in graph order.
fn precision_picture(section: &PrecisionSection) -> Option<String> {
    let nodes = section.nodes();
    if nodes.is_empty() {
        return None;
    }
    let step = 760.0 / nodes.len() as f64;
    let mut svg = String::from(
        r#"<figure id="precision" class="picture"><figcaption>Precision chosen per operator, in graph order (fp32 grey, fp16 green, int8 blue, int4 purple)</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="760" height="60" role="img">"#,
    );
    for (i, n) in nodes.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<rect x="{:.2}" y="5" width="{:.2}" height="40" class="p-{}"><title>{}: {}</title></rect>"#,
            i as f64 * step,
            step.max(0.5),
            esc(&n.precision),
            esc(&n.name),
            esc(&n.precision)
        );
    }
    svg.push_str("</svg></figure>");
    Some(svg)
}

/// Uniform int8 (`search.uniform_int8`) as a green diamond, when it was measured on `output`.
fn uniform_int8_marker(
    svg: &mut String,
    uniform_int8: Option<(f64, f64, bool)>,
    x: &dyn Fn(f64) -> f64,
    y: &dyn Fn(f64) -> f64,
) {
    let Some((size, v, passed)) = uniform_int8 else {
        return;
    };
    let (cx, cy) = (x(size), y(v));
    let verdict = if passed { "passed" } else { "below target" };
    let _ = write!(
        svg,
        r##"<rect class="uniform-int8" x="{:.1}" y="{:.1}" width="10" height="10" fill="#2ca02c" transform="rotate(45 {cx:.1} {cy:.1})"><title>uniform int8: size {size:.3}: {v:.4} ({verdict})</title></rect>"##,
        cx - 5.0,
        cy - 5.0,
    );
}

/// The scratchpad plan as rectangles of residency (steps, x) × address range (y): one
/// rectangle per placement of a tensor (a reloaded tensor can sit at a new address).
fn memory_plan_picture(section: &ScheduleSection) -> Option<String> {
    let plan = section.plan()?;
    let tensors = plan.get("tensors")?.as_array()?;
    let scratchpad = match section {
        ScheduleSection::Tiled(t) => t.scratchpad_bytes,
        ScheduleSection::Whole(w) => w.scratchpad_bytes,
    };
    let scratch = plan
        .get("scratchpad_bytes")
        .and_then(Value::as_f64)
        .unwrap_or(scratchpad as f64)
        .max(1.0);
    let steps = plan
        .get("order")
        .and_then(Value::as_array)
        .map(|o| o.len() as f64)
        .unwrap_or(1.0)
        .max(1.0);
    let (w, h) = (760.0, 300.0);
    let mut svg = format!(
        r#"<figure id="memory-plan" class="picture"><figcaption>Memory plan: each rectangle is a tensor resident on chip, over steps (left to right, {} operators) and scratchpad addresses (bottom to top, {} bytes)</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="760" height="300" role="img"><rect x="0" y="0" width="{w}" height="{h}" class="frame"/>"#,
        steps as u64, scratch as u64
    );
    for t in tensors {
        let name = t.get("name").and_then(Value::as_str).unwrap_or("");
        let Some(size) = t.get("size").and_then(Value::as_f64) else {
            continue;
        };
        for p in t
            .get("placements")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(from), Some(to), Some(off)) = (
                p.get("from").and_then(Value::as_f64),
                p.get("to").and_then(Value::as_f64),
                p.get("offset").and_then(Value::as_f64),
            ) else {
                continue;
            };
            let x = from / steps * w;
            let rw = ((to - from + 1.0) / steps * w).max(1.0);
            let rh = (size / scratch * h).max(1.0);
            let y = h - (off + size) / scratch * h;
            let _ = write!(
                svg,
                r#"<rect x="{x:.2}" y="{y:.2}" width="{rw:.2}" height="{rh:.2}" class="tensor"><title>{}: {} bytes at {}, steps {}–{}</title></rect>"#,
                esc(name),
                size as u64,
                off as u64,
                from as u64,
                to as u64
            );
        }
    }
    svg.push_str("</svg></figure>");
    Some(svg)
}

/// Off-chip traffic of our plan against every baseline.
fn traffic_picture(section: &ScheduleSection) -> Option<String> {
    let traffic = section.traffic();
    let mut rows: Vec<(String, f64)> = vec![("ours".to_string(), traffic.ours? as f64)];
    for (k, v) in &traffic.baselines {
        if let Some(v) = v {
            rows.push((k.clone(), *v as f64));
        }
    }
    Some(bar_chart(
        "traffic",
        "Non-compulsory off-chip traffic: ours against the baselines",
        &rows,
        "bytes",
    ))
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;max-width:60em;color:#222}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}\
.bar{fill:#3b7dd8}.bar2{fill:#e8913a}.axis{stroke:#444}.lbl,.val{font-size:12px;fill:#222}\
.frame{fill:none;stroke:#888}.tensor{fill:#3b7dd8;fill-opacity:.6;stroke:#124}\
.p-fp32{fill:#aaa}.p-fp16{fill:#4caf50}.p-int8{fill:#3b7dd8}.p-int4{fill:#8e44ad}\
.missing{color:#777;font-style:italic}";

const SCRIPT: &str = "document.querySelectorAll('figure.picture').forEach(function(f){\
var s=f.querySelector('svg');var b=s?s.getBoundingClientRect():null;\
f.dataset.rendered=(b&&b.width>0&&b.height>0&&s.childElementCount>0)?'yes':'no';});\
document.body.dataset.figures=String(document.querySelectorAll('figure.picture').length);";

fn missing(what: &str, why: &str) -> String {
    format!(r#"<p class="missing">{}: {}</p>"#, esc(what), esc(why))
}

/// Renders the whole page.
pub fn render_html(r: &Report) -> String {
    let mut body = String::new();
    let m = &r.model;
    let _ = write!(body, "<h1>optimize report</h1><table><tr><th></th><th>nodes</th><th>parameters</th><th>bytes</th><th>file bytes</th></tr>");
    let _ = write!(
        body,
        "<tr><td>input {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        esc(&m.path),
        m.nodes,
        m.parameters,
        m.bytes,
        m.file_bytes
    );
    if let Some(o) = &r.output {
        let _ = write!(
            body,
            "<tr><td>output {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&o.path),
            o.nodes,
            o.parameters,
            o.bytes,
            o.file_bytes
        );
    }
    body.push_str("</table>");

    body.push_str("<h2>Fidelity</h2>");
    match &r.validation {
        Some(v) => {
            let _ = write!(
                body,
                "<p>{} on {} sample(s) ({}): max abs error {:.3e}, max rel error {:.3e}, smallest cosine {:.6}: <b>{}</b></p>",
                esc(&v.runtime),
                v.samples,
                esc(&v.inputs_used),
                v.max_abs_err,
                v.max_rel_err,
                v.cosine,
                if v.passed { "passed" } else { "FAILED" }
            );
            let rows: Vec<(String, f64)> = v
                .outputs
                .iter()
                .map(|o| (o.name.clone(), o.cosine))
                .collect();
            body.push_str(&bar_chart(
                "fidelity",
                "Cosine similarity of each output to the original's",
                &rows,
                "",
            ));
            if let Some(f) = &v.fidelity {
                body.push_str(&fidelity_table(f));
            }
        }
        None => body.push_str(&missing("Fidelity", "validation was skipped in this run")),
    }

    body.push_str("<h2>Passes</h2>");
    if r.passes.is_empty() {
        body.push_str(&missing("Passes", "no pass ran"));
    } else {
        let rows: Vec<(String, f64)> = r
            .passes
            .iter()
            .map(|p| (p.name.clone(), p.seconds))
            .collect();
        body.push_str(&bar_chart("pass-times", "Seconds per pass", &rows, "s"));
    }

    body.push_str("<h2>Relevance</h2>");
    match r.sections.get("relevance").and_then(relevance_picture) {
        Some(p) => body.push_str(&p),
        None => body.push_str(&missing("Relevance", "not computed in this run")),
    }
    body.push_str("<h2>Precision</h2>");
    let precision = r
        .sections
        .get("precision")
        .and_then(PrecisionSection::from_report);
    match precision.as_ref().and_then(precision_picture) {
        Some(p) => body.push_str(&p),
        None => body.push_str(&missing(
            "Precision",
            "mixed precision did not run in this run",
        )),
    }
    if let Some(p) = precision
        .as_ref()
        .and_then(|p| p.search())
        .and_then(search_curve_picture)
    {
        body.push_str(&p);
    }
    body.push_str("<h2>Scratchpad</h2>");
    let schedule = r
        .sections
        .get("schedule")
        .and_then(ScheduleSection::from_report);
    let schedule = schedule.as_ref();
    match schedule.and_then(memory_plan_picture) {
        Some(p) => body.push_str(&p),
        None => body.push_str(&missing("Memory plan", "no scratchpad target was given")),
    }
    let cascades = match schedule {
        Some(ScheduleSection::Tiled(t)) => t.cascades.as_slice(),
        _ => &[],
    };
    if let Some(p) = crate::html_tiles::tiles_picture(cascades) {
        body.push_str(&p);
    }
    if let Some(p) = schedule.and_then(traffic_picture) {
        body.push_str(&p);
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>optimize report: {}</title><style>{STYLE}</style></head><body>{body}<script>{SCRIPT}</script></body></html>\n",
        esc(&m.path)
    )
}

/// Writes the page atomically.
pub fn write_html(r: &Report, path: &Path) -> Result<()> {
    write_atomic(path, render_html(r).as_bytes())
}

/// Each output's task metric, pooled value, target and worst sample, and the gate's mode.
fn fidelity_table(f: &crate::fidelity::FidelityReport) -> String {
    use crate::fidelity::gate::fmt_value;
    let mut t = String::from(
        "<table><tr><th>output</th><th>metric</th><th>fidelity</th><th>target</th><th>worst sample</th><th>verdict</th><th>why this metric</th></tr>",
    );
    for o in &f.outputs {
        let unit = o.unit_suffix();
        let worst = o
            .worst
            .as_ref()
            .map(|w| format!("{}: {}{unit}", esc(&w.sample), fmt_value(w.value)))
            .unwrap_or_default();
        let _ = write!(
            t,
            "<tr><td>{}</td><td>{}</td><td>{}{unit}</td><td>{}{unit}</td><td>{worst}</td><td>{}</td><td>{}</td></tr>",
            esc(&o.name),
            esc(&o.metric),
            fmt_value(o.value),
            o.target,
            if o.passed { "ok" } else { "below target" },
            esc(&o.why)
        );
    }
    let _ = write!(
        t,
        "</table><p>Gate: <b>{}</b> ({}).</p>",
        if f.passed { "passed" } else { "below target" },
        esc(&f.mode)
    );
    t
}

/// The size–fidelity curve of the search's probes: weight size (fraction of fp32) across,
/// the first output's pooled fidelity up; passed probes blue, failed orange, the written one
/// ringed, uniform int8 (measured once beside the probes) a green diamond, fp32 (size 1,
/// fidelity 1 by definition) grey; a legend names them.
fn search_curve_picture(search: &SearchInfo) -> Option<String> {
    let curve = crate::search_curve::Curve::from_search(search)?;
    let (output, lo) = (curve.output.clone(), curve.lo);
    let (w, h, left, bottom) = (700.0, 240.0, 50.0, 30.0);
    let x = |s: f64| left + s.clamp(0.0, 1.0) * (w - left - 10.0);
    let y = |v: f64| 10.0 + (1.0 - ((v - lo) / (1.0 - lo)).clamp(0.0, 1.0)) * (h - bottom - 10.0);
    let mut svg = format!(
        r#"<figure id="search-curve" class="picture"><figcaption>Size–fidelity of the search's probes ('{}', fidelity up, weight size as a fraction of fp32 across): blue passed, orange failed (conservative estimate below target), ringed: written, green diamond: uniform int8, grey: fp32</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="760" height="{h}" role="img">"#,
        esc(&output)
    );
    let _ = write!(
        svg,
        r#"<line x1="{left}" y1="{b}" x2="{w}" y2="{b}" class="axis"/><line x1="{left}" y1="10" x2="{left}" y2="{b}" class="axis"/><text x="0" y="16" class="lbl">1</text><text x="0" y="{b}" class="lbl">{lo:.2}</text><text x="{left}" y="{t}" class="lbl">0</text><text x="{r}" y="{t}" class="lbl">1.0</text>"#,
        b = h - bottom,
        t = h - 12.0,
        r = w - 30.0
    );
    let _ = write!(
        svg,
        r##"<circle cx="{:.1}" cy="{:.1}" r="5" fill="#888"><title>fp32: size 1, fidelity 1</title></circle>"##,
        x(1.0),
        y(1.0)
    );
    for p in &curve.probes {
        let colour = if p.passed { "#3b7dd8" } else { "#e8913a" };
        let _ = write!(
            svg,
            r##"<circle cx="{:.1}" cy="{:.1}" r="5" fill="{colour}"><title>size {:.3}: {:.4}</title></circle>"##,
            x(p.size),
            y(p.value),
            p.size,
            p.value
        );
        if p.chosen {
            let _ = write!(
                svg,
                r##"<circle cx="{:.1}" cy="{:.1}" r="9" fill="none" stroke="#222"/>"##,
                x(p.size),
                y(p.value)
            );
        }
    }
    uniform_int8_marker(&mut svg, curve.uniform_int8, &x, &y);
    let _ = write!(
        svg,
        r##"<g class="legend"><circle cx="{lx}" cy="20" r="5" fill="#3b7dd8"/><text x="{tx}" y="24" class="lbl">passed</text><circle cx="{lx}" cy="38" r="5" fill="#e8913a"/><text x="{tx}" y="42" class="lbl">below target</text><rect x="{rx}" y="51" width="10" height="10" fill="#2ca02c" transform="rotate(45 {lx} 56)"/><text x="{tx}" y="60" class="lbl">uniform int8</text><circle cx="{lx}" cy="74" r="5" fill="#888"/><text x="{tx}" y="78" class="lbl">fp32</text></g>"##,
        lx = w - 120.0,
        tx = w - 110.0,
        rx = w - 125.0,
    );
    svg.push_str("</svg></figure>");
    Some(svg)
}
