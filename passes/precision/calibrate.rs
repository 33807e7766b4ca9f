//! Calibration: real ranges (and RMS) of the activation tensors the int8 choices quantize,
//! from onnxruntime runs over calibration samples with those tensors exposed as outputs.
//!
//! Ranges are MinMax (global min and max over all samples) or a percentile per sample
//! (exact selection of the low and high percentiles of each tensor's values, averaged over
//! samples, so one outlier does not stretch the range). Everything is deterministic: the
//! samples are taken in order, and selection is exact.

use super::{Range, Ranges};
use optimize_ir::data::{load_input_dir, HostTensor, RandomSamples, Sample};
use optimize_ir::error::{Error, Result};
use optimize_ir::ir::{Model, ValueType};
use optimize_ir::onnx_io::export::to_bytes;
use optimize_ir::onnx_io::ExportOptions;
use optimize_runtimes::intermediates::expose_intermediates;
use optimize_runtimes::OrtRuntime;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// How a tensor's range is taken from its calibration values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CalibMethod {
    /// Smallest and largest value seen.
    MinMax,
    /// The `p`-th and `(100 − p)`-th percentiles (e.g. 99.99), per sample, averaged.
    Percentile(f64),
}

impl CalibMethod {
    pub fn name(&self) -> String {
        match self {
            CalibMethod::MinMax => "minmax".into(),
            CalibMethod::Percentile(p) => format!("percentile {p}"),
        }
    }
}

/// Ranges and RMS of the calibrated tensors.
#[derive(Clone, Debug)]
pub struct Calibration {
    pub ranges: Ranges,
    /// Root mean square of each tensor's values over all samples.
    pub rms: HashMap<String, f64>,
    pub samples: usize,
    /// Where the samples came from: the folder, or `seeded random (seed S)`.
    pub source: String,
    /// Set when the ranges come from random inputs (they may be far from real data).
    pub warning: Option<String>,
    /// The calibration hold-out, when one was asked for.
    pub holdout: Option<super::section::Holdout>,
}

/// Running statistics of one tensor.
#[derive(Default)]
struct Acc {
    min: f32,
    max: f32,
    lo_sum: f64,
    hi_sum: f64,
    runs: usize,
    sq_sum: f64,
    count: u64,
}

/// Exact `q`-quantile (0..=1) of `v` by selection; reorders `v`.
fn quantile(v: &mut [f32], q: f64) -> f32 {
    let k = ((v.len() - 1) as f64 * q).round() as usize;
    let k = k.min(v.len() - 1);
    let (_, x, _) = v.select_nth_unstable_by(k, |a, b| a.total_cmp(b));
    *x
}

/// Calibrates `tensors` (float tensors of `model`) over `samples`: one onnxruntime run per
/// sample with those tensors exposed as outputs. A tensor that is not a float tensor of the
/// model, or not produced by the run, is an internal error (callers ask only for real ones).
pub fn calibrate(
    model: &Model,
    samples: &[Sample],
    tensors: &[String],
    method: CalibMethod,
) -> Result<Calibration> {
    if let CalibMethod::Percentile(p) = method {
        if !(50.0..=100.0).contains(&p) {
            return Err(Error::Usage(format!(
                "calibration percentile {p}: must be between 50 and 100"
            )));
        }
    }
    if samples.is_empty() {
        return Err(Error::Usage("calibration needs at least one sample".into()));
    }
    let wanted: BTreeSet<&str> = tensors.iter().map(String::as_str).collect();
    // Reuses the intermediates exposure and keeps only the outputs asked for.
    let (mut exposed, _) = expose_intermediates(model);
    let original: BTreeSet<&str> = model.graph.outputs.iter().map(String::as_str).collect();
    exposed
        .graph
        .outputs
        .retain(|o| original.contains(o.as_str()) || wanted.contains(o.as_str()));
    let bytes = to_bytes(&exposed, &ExportOptions::default())?;
    let mut session = OrtRuntime::get()?.session_from_bytes(&bytes, "the calibration model")?;
    let mut acc: HashMap<String, Acc> = HashMap::new();
    let progress = optimize_ir::progress::bar("calibration", samples.len() as u64, "samples");
    for s in samples {
        progress.set_message(s.id.clone());
        let outs = session.run(&s.values)?;
        let mut values: HashMap<&str, &HostTensor> = HashMap::new();
        for (n, t) in &outs {
            values.insert(n.as_str(), t);
        }
        for (n, t) in &s.values {
            values.insert(n.as_str(), t);
        }
        for name in &wanted {
            // A tensor the run did not produce, or not as floats, or empty (a dimension of
            // 0) is not observed: it gets no range, and the operators that would quantize
            // it keep a precision that needs none (see `drop_unranged_int8`).
            let Some(mut v) = values.get(name).and_then(|t| t.as_f32()) else {
                continue;
            };
            if v.is_empty() {
                continue;
            }
            let a = acc.entry(name.to_string()).or_insert(Acc {
                min: f32::INFINITY,
                max: f32::NEG_INFINITY,
                ..Default::default()
            });
            for &x in &v {
                if x.is_finite() {
                    a.min = a.min.min(x);
                    a.max = a.max.max(x);
                    a.sq_sum += (x as f64) * (x as f64);
                    a.count += 1;
                }
            }
            if let CalibMethod::Percentile(p) = method {
                v.retain(|x| x.is_finite());
                if !v.is_empty() {
                    a.hi_sum += quantile(&mut v, p / 100.0) as f64;
                    a.lo_sum += quantile(&mut v, 1.0 - p / 100.0) as f64;
                    a.runs += 1;
                }
            }
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    let mut ranges = Ranges::new();
    let mut rms = HashMap::new();
    for (name, a) in acc {
        if a.count == 0 {
            continue;
        }
        let r = match method {
            CalibMethod::MinMax => Range {
                min: a.min,
                max: a.max,
            },
            CalibMethod::Percentile(_) => Range {
                min: (a.lo_sum / a.runs.max(1) as f64) as f32,
                max: (a.hi_sum / a.runs.max(1) as f64) as f32,
            },
        };
        rms.insert(name.clone(), (a.sq_sum / a.count as f64).sqrt());
        ranges.insert(name, r);
    }
    Ok(Calibration {
        ranges,
        rms,
        samples: samples.len(),
        source: String::new(),
        warning: None,
        holdout: None,
    })
}

/// Takes int8 (the one precision that quantizes activations) out of the options of every
/// candidate with a tensor calibration did not observe (not produced, empty, or never
/// finite): such operators keep a precision that needs no range (fp32, fp16, weight-only
/// int4). Returns the operators concerned, by key (first output).
pub fn drop_unranged_int8(
    model: &Model,
    cands: &mut [super::candidates::OpCandidate],
    ranges: &Ranges,
) -> Vec<String> {
    let mut dropped = Vec::new();
    for c in cands.iter_mut() {
        let needs: Vec<&String> = c
            .activation_inputs
            .iter()
            .chain(&c.outputs)
            .filter(|t| is_float_tensor(model, t))
            .collect();
        let unranged = needs.iter().any(|t| !ranges.contains_key(t.as_str()))
            || needs.len() < c.activation_inputs.len() + c.outputs.len();
        if unranged && c.bytes_at(super::Precision::Int8).is_some() {
            c.options.retain(|(p, _)| !p.quantizes_activations());
            dropped.push(c.key.clone());
        }
    }
    dropped
}

/// The float tensors of `model` that can be calibrated (graph inputs and node outputs
/// whose element type is float), for callers that want to filter a candidate list.
pub fn is_float_tensor(model: &Model, name: &str) -> bool {
    matches!(
        model.graph.value_type(name),
        Some(ValueType::Tensor {
            elem: optimize_ir::ir::DataType::Float,
            ..
        })
    )
}

pub use optimize_ir::shape::current_bindings;

/// Calibration samples: the `--calib DIR` folder (same layout and checks as `--inputs`;
/// at most `count` samples are used when `count > 0`), or `count` seeded random samples
/// with a warning string when no folder is given.
pub fn load_calibration_samples(
    model: &Model,
    dir: Option<&Path>,
    seed: u64,
    count: usize,
) -> Result<(Vec<Sample>, Option<String>)> {
    let specs = optimize_runtimes::validate::input_specs(model, &current_bindings(model))?;
    match dir {
        Some(d) => {
            optimize_ir::data::inputs::check_folder(d, "calibration folder")?;
            let mut samples = load_input_dir(d, &specs)?;
            optimize_ir::data::require_finite(d, &samples, "calibration")?;
            if samples.is_empty() {
                return Err(Error::input(d, "the calibration folder holds no samples"));
            }
            if count > 0 {
                samples.truncate(count);
            }
            Ok((samples, None))
        }
        None => {
            let n = count.max(1);
            let gen = RandomSamples::hinting(&specs, seed, "--calib DIR")?;
            let samples: Vec<Sample> = (0..n).map(|i| gen.sample(i)).collect();
            let warning = format!(
                "no calibration data: activation ranges come from {n} seeded random inputs \
                 (seed {seed}), which may be far from real data; pass --calib DIR"
            );
            Ok((samples, Some(warning)))
        }
    }
}
