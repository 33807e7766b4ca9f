//! The size–fidelity curve of the fidelity-driven search, read from the report's
//! `precision.search` section: one point per probe, uniform int8 and fp32, for the first
//! output. The HTML report draws it as SVG ([`crate::html`]); [`terminal_plot`] draws it
//! in the terminal summary, where a user picks a trade-off without opening a browser.

use crate::passes::precision::section::SearchInfo;
use std::fmt::Write;

/// One probe of the search.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbePoint {
    pub size: f64,
    pub value: f64,
    pub passed: bool,
    pub budget: f64,
    /// The probe whose model was written.
    pub chosen: bool,
}

/// The points of the curve, for the output `output`.
#[derive(Clone, Debug, PartialEq)]
pub struct Curve {
    pub output: String,
    pub probes: Vec<ProbePoint>,
    /// Uniform int8 (size, value, passed), measured once as a reference.
    pub uniform_int8: Option<(f64, f64, bool)>,
    /// The lower end of the fidelity axis (1 is the top): the lowest point, at most 0.9.
    pub lo: f64,
}

impl Curve {
    /// The curve of a `precision.search` section (`None` without a measured probe).
    pub fn from_search(search: &SearchInfo) -> Option<Curve> {
        let mut output = String::new();
        let mut probes = Vec::new();
        for p in &search.probes {
            let (Some(size), Some(f)) = (p.size_fraction, p.fidelity.as_ref()) else {
                continue;
            };
            let Some((name, v)) = f.iter().next() else {
                continue;
            };
            output = name.clone();
            let budget = p.budget.unwrap_or(f64::NAN);
            probes.push(ProbePoint {
                size,
                value: v.unwrap_or(f64::NAN),
                passed: p.passed,
                budget,
                chosen: p.passed && search.chosen_budget == budget,
            });
        }
        if probes.is_empty() {
            return None;
        }
        let uniform_int8 = search.uniform_int8.as_ref().and_then(|u| {
            let v = u.probe.fidelity.as_ref()?.get(&output).copied().flatten()?;
            Some((u.probe.size_fraction?, v, u.probe.passed))
        });
        let lo = probes
            .iter()
            .map(|p| p.value)
            .chain(uniform_int8.map(|u| u.1))
            .filter(|v| v.is_finite())
            .fold(1.0f64, f64::min)
            .min(0.9);
        Some(Curve {
            output,
            probes,
            uniform_int8,
            lo,
        })
    }
}

const COLS: usize = 61;
const ROWS: usize = 9;

/// The curve as text: fidelity up (from `lo` to 1), size across (0 to 1 of fp32).
/// `o` passed, `x` below target, `@` written, `U` uniform int8, `F` fp32; a later mark in
/// that order wins a shared cell.
pub fn terminal_plot(c: &Curve) -> String {
    let mut grid = vec![vec![' '; COLS]; ROWS];
    let col = |s: f64| (s.clamp(0.0, 1.0) * (COLS - 1) as f64).round() as usize;
    let row = |v: f64| {
        let t = if v.is_finite() {
            ((v - c.lo) / (1.0 - c.lo)).clamp(0.0, 1.0)
        } else {
            0.0
        };
        ((1.0 - t) * (ROWS - 1) as f64).round() as usize
    };
    let mut put = |s: f64, v: f64, ch: char| grid[row(v)][col(s)] = ch;
    for p in &c.probes {
        put(p.size, p.value, if p.passed { 'o' } else { 'x' });
    }
    if let Some((s, v, _)) = c.uniform_int8 {
        put(s, v, 'U');
    }
    for p in c.probes.iter().filter(|p| p.chosen) {
        put(p.size, p.value, '@');
    }
    put(1.0, 1.0, 'F');
    let mut out = String::new();
    let _ = writeln!(
        out,
        "curve       '{}' fidelity up, size (fraction of fp32) across: o passed, x failed (conservative estimate below target), @ written, U uniform int8, F fp32",
        c.output
    );
    for (i, line) in grid.iter().enumerate() {
        let label = match i {
            0 => format!("{:>7.4}", 1.0),
            i if i == ROWS - 1 => format!("{:>7.4}", c.lo),
            _ => " ".repeat(7),
        };
        let cells: String = line.iter().collect();
        let _ = writeln!(out, "            {label} |{}", cells.trim_end());
    }
    let _ = writeln!(out, "                    +{}", "-".repeat(COLS));
    let _ = writeln!(
        out,
        "                     0{}0.5{}1.0",
        " ".repeat(COLS / 2 - 2),
        " ".repeat(COLS / 2 - 3)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn search() -> SearchInfo {
        serde_json::from_value(json!({
            "start": 0.2, "max": 0.5, "tolerance": 0.02, "step": 0.025,
            "first_probe": {"budget": 0.2, "source": "default", "detail": null},
            "chosen_budget": 0.25, "chosen_size_fraction": 0.25,
            "probes": [
                {"budget": 0.2, "size_fraction": 0.2, "passed": false, "seconds": 1.0, "fidelity": {"y": 0.8}},
                {"budget": 0.25, "size_fraction": 0.25, "passed": true, "seconds": 1.0, "fidelity": {"y": 1.0}},
                {"budget": 0.1, "passed": false, "seconds": 0.1, "infeasible": "below int4"},
            ],
            "uniform_int8": {"size_fraction": 0.3, "passed": true, "seconds": 1.0, "fidelity": {"y": 0.95}, "precision_used": "int8"},
        }))
        .expect("a search section")
    }

    #[test]
    fn points_come_from_the_measured_probes() {
        let c = Curve::from_search(&search()).expect("curve");
        assert_eq!(c.output, "y");
        assert_eq!(c.probes.len(), 2, "the infeasible probe has no point");
        assert!(c.probes[1].chosen && !c.probes[0].chosen);
        assert_eq!(c.uniform_int8, Some((0.3, 0.95, true)));
        assert!((c.lo - 0.8).abs() < 1e-12);
        let none = SearchInfo {
            probes: Vec::new(),
            ..search()
        };
        assert!(Curve::from_search(&none).is_none());
    }

    #[test]
    fn the_plot_puts_each_mark_where_its_point_is() {
        let c = Curve::from_search(&search()).expect("curve");
        let text = terminal_plot(&c);
        let rows: Vec<&str> = text.lines().skip(1).take(ROWS).collect();
        let at = |r: usize, s: f64| {
            let cells = rows[r].split_once('|').expect("axis").1;
            cells.chars().nth((s * (COLS - 1) as f64).round() as usize)
        };
        assert_eq!(at(0, 0.25), Some('@'), "{text}");
        assert_eq!(at(ROWS - 1, 0.2), Some('x'), "{text}");
        assert_eq!(at(0, 1.0), Some('F'), "{text}");
        // 0.95 of the way from 0.8 to 1: three quarters up.
        assert_eq!(at(2, 0.3), Some('U'), "{text}");
        assert_eq!(
            text.matches('@').count(),
            2,
            "one mark and one legend entry: {text}"
        );
    }
}
