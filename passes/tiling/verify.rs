//! Runs a model and its tiled rewrite side by side on onnxruntime (the benchmark and the
//! tests use it; the pipeline validates the written output against the original itself).
//! With `optimized`, both run with onnxruntime's graph optimizations on, as deployed: that
//! is what fuses a quantized tile's DQ → op → Q into an integer kernel, so int8 tiles must
//! then match bit for bit.

use optimize_ir::data::compare::compare;
use optimize_ir::data::Metrics;
use optimize_ir::error::{Error, Result};
use optimize_ir::ir::Model;
use optimize_ir::onnx_io::{save_model, ExportOptions};
use optimize_runtimes::select::SampleSource;
use optimize_runtimes::validate::{validation_samples, ValidationOptions};
use optimize_runtimes::OrtRuntime;
use std::collections::HashMap;

/// How the tiled model's outputs compare with the untiled model's.
#[derive(Clone, Debug)]
pub struct Agreement {
    /// Largest |a − b| / max(1, |a|) over all outputs (the validation tolerance's measure).
    pub tolerance_err: f64,
    pub metrics: Metrics,
    pub samples: usize,
}

/// Compares `after` with `before` on `samples` seeded random inputs.
pub fn compare_on_ort(
    before: &Model,
    after: &Model,
    bindings: &HashMap<String, Vec<i64>>,
    samples: usize,
    optimized: bool,
) -> Result<Agreement> {
    let dir = tempfile::tempdir().map_err(|e| Error::Internal(format!("tempdir: {e}")))?;
    let (a, b) = (
        dir.path().join("before.onnx"),
        dir.path().join("after.onnx"),
    );
    save_model(before, &a, &ExportOptions::default())?;
    save_model(after, &b, &ExportOptions::default())?;
    let opts = ValidationOptions {
        bindings: bindings.clone(),
        samples,
        ..ValidationOptions::default()
    };
    let (inputs, _) = validation_samples(before, &opts)?;
    let rt = OrtRuntime::get()?;
    let open = |p: &std::path::Path| rt.large_graph_session_from_file(p, optimized);
    let (mut sa, mut sb) = (open(&a)?, open(&b)?);
    let mut metrics = Metrics::default();
    let mut tolerance_err: f64 = 0.0;
    for i in 0..inputs.len() {
        let values = inputs.get(i);
        let ra = sa.run(&values)?;
        let rb = sb.run(&values)?;
        for (name, x) in &ra {
            let y = rb
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, y)| y)
                .ok_or_else(|| {
                    Error::Internal(format!("the tiled model has no output '{name}'"))
                })?;
            metrics = metrics.merge(compare(x, y)?);
            if let (Some(u), Some(v)) = (x.to_f64(), y.to_f64()) {
                for (p, q) in u.iter().zip(&v) {
                    if p != q {
                        tolerance_err = tolerance_err.max((p - q).abs() / p.abs().max(1.0));
                    }
                }
            }
        }
    }
    Ok(Agreement {
        tolerance_err,
        metrics,
        samples: inputs.len(),
    })
}
