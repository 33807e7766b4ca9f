//! The tiles picture of a tiled schedule: each cascade's last output as a grid of its
//! bands (columns) and stripes (rows), next to the cascade's operators, bands, stripe
//! height and halo recompute. Drawn from the report's `schedule.cascades`.

use crate::passes::schedule::section::Cascade;
use std::fmt::Write;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One figure with up to 8 cascades, or None when the schedule has none.
pub fn tiles_picture(cascades: &[Cascade]) -> Option<String> {
    if cascades.is_empty() {
        return None;
    }
    let shown = cascades.len().min(8);
    let (cell, gap): (f64, f64) = (120.0, 30.0);
    let width: f64 = 760.0;
    let per_row = ((width + gap) / (cell + gap)).floor().max(1.0) as usize;
    let rows = shown.div_ceil(per_row);
    let height = rows as f64 * (cell + 74.0);
    let mut svg = format!(
        r#"<figure id="tiles" class="picture"><figcaption>Tiles: each cascade's output (the first {shown} of {}) cut into bands (W) and stripes (H); a stripe's input rows overlap the previous stripe's (the halo, kept in a ring), a band recomputes its halo columns</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">"#,
        cascades.len()
    );
    for (i, c) in cascades.iter().take(shown).enumerate() {
        let (x0, y0) = (
            (i % per_row) as f64 * (cell + gap),
            (i / per_row) as f64 * (cell + 74.0),
        );
        let h = (c.sink.h as f64).max(1.0);
        let w = (c.sink.w as f64).max(1.0);
        let scale = cell / h.max(w);
        let (pw, ph) = (w * scale, h * scale);
        let _ = write!(
            svg,
            r#"<rect x="{x0:.1}" y="{y0:.1}" width="{pw:.1}" height="{ph:.1}" class="frame"/>"#
        );
        let stripe = c.stripe_rows.map_or(h, |r| r as f64).max(1.0);
        let mut r = stripe;
        while r < h {
            let y = y0 + r * scale;
            let _ = write!(
                svg,
                r#"<line x1="{x0:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" class="axis" stroke-width="0.5"/>"#,
                x0 + pw
            );
            r += stripe;
        }
        for b in c.band_cols.iter().skip(1) {
            let x = x0 + b[0] as f64 * scale;
            let _ = write!(
                svg,
                r##"<line x1="{x:.1}" y1="{y0:.1}" x2="{x:.1}" y2="{:.1}" stroke="#e8913a" stroke-width="1.5"/>"##,
                y0 + ph
            );
        }
        // Three short lines: a label as wide as the cell's gap overlaps its neighbour.
        let label = format!("{} ops, {} bands", c.operators, c.bands);
        let rows = c.stripe_rows.map_or("null".to_string(), |r| r.to_string());
        let stripes = format!("{rows}-row stripes");
        let title = format!(
            "{} … {}: {} runs, {} halo MACs of {}",
            c.first, c.last, c.runs, c.halo_macs, c.macs
        );
        let _ = write!(
            svg,
            r#"<text x="{x0:.1}" y="{:.1}" class="lbl"><title>{}</title>{}</text><text x="{x0:.1}" y="{:.1}" class="lbl">{}</text><text x="{x0:.1}" y="{:.1}" class="lbl">{}</text>"#,
            y0 + ph + 14.0,
            esc(&title),
            esc(&label),
            y0 + ph + 28.0,
            esc(&stripes),
            y0 + ph + 42.0,
            esc(&c.sink.name)
        );
    }
    svg.push_str("</svg></figure>");
    Some(svg)
}
