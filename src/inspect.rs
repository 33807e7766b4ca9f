//! `optimize inspect`: a readable overview of a model, or the full IR dump.

use crate::error::Result;
use crate::ir::dump::dump;
use crate::pipeline::load_and_infer;
use crate::shape::Bindings;
use std::fmt::Write;
use std::path::Path;

pub fn inspect_text(path: &Path, ir: bool, bindings: &Bindings) -> Result<String> {
    let model = load_and_infer(path, bindings)?;
    if ir {
        return Ok(dump(&model));
    }
    let g = &model.graph;
    let mut s = String::new();
    let name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let _ = writeln!(s, "model: {name}");
    let _ = writeln!(s, "ir_version: {}", model.ir_version);
    let opsets: Vec<String> = model
        .opsets
        .iter()
        .map(|(d, v)| {
            format!(
                "{}={v}",
                if crate::ir::canonical_domain(d).is_empty() {
                    "ai.onnx"
                } else {
                    d
                }
            )
        })
        .collect();
    let _ = writeln!(s, "opsets: {}", opsets.join(", "));
    if !model.producer_name.is_empty() {
        let _ = writeln!(
            s,
            "producer: {} {}",
            model.producer_name, model.producer_version
        );
    }
    let _ = writeln!(s, "inputs:");
    for i in g.runtime_inputs() {
        let t = g
            .value_type(i)
            .map(|t| t.to_string())
            .unwrap_or_else(|| "?".into());
        let _ = writeln!(s, "  {i}: {t}");
    }
    let _ = writeln!(s, "outputs:");
    for o in &g.outputs {
        let t = g
            .value_type(o)
            .map(|t| t.to_string())
            .unwrap_or_else(|| "?".into());
        let _ = writeln!(s, "  {o}: {t}");
    }
    let (count, bytes) = g.parameter_stats();
    let constants = g.nodes().filter(|(_, n)| n.is("Constant")).count();
    let _ = writeln!(
        s,
        "parameters: {count} ({bytes} bytes) in {} initializers and {constants} Constant nodes",
        g.initializers.len()
    );
    let _ = writeln!(s, "nodes: {}", g.node_count());
    let _ = writeln!(s, "op histogram:");
    let hist = g.op_histogram();
    let width = hist.keys().map(|k| k.len()).max().unwrap_or(0);
    let mut rows: Vec<_> = hist.into_iter().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    for (op, n) in rows {
        let _ = writeln!(s, "  {op:<width$}  {n}");
    }
    Ok(s)
}
