//! Error per candidate operator and precision, two ways:
//! * `proxy`: relevance weight × (relative weight error + for int8 the relative
//!   quantization noise of the op's calibrated input and output activations). Cheap.
//! * `measured`: end-to-end output error with only that operator changed: a clone of the
//!   model is rewritten with the one-op assignment, run on onnxruntime over up to K
//!   calibration samples, error = mean over float outputs and samples of ‖y_q − y‖²/‖y‖².
//!
//! Measurement stops at a time limit. Operators are measured in a fixed order (highest
//! relevance weight first, then by key), so the most important ones are measured first;
//! those left unmeasured use their proxy scaled by the measured/proxy ratio of the measured
//! ones at the same precision (their `measured` stays `None` in the report).

use super::calibrate::Calibration;
use super::candidates::OpCandidate;
use super::quantize::relative_activation_error;
use super::suffix::Captures;
use super::{Assignment, NodeKey, Precision};
use crate::relevance::{explain, summarize, RuleConfig, Target};
use optimize_ir::data::{HostTensor, Sample};
use optimize_ir::error::{Error, Result};
use optimize_ir::ir::Model;
use optimize_ir::onnx_io::export::to_bytes;
use optimize_ir::onnx_io::ExportOptions;
use optimize_runtimes::OrtRuntime;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// Relevance weights below this (after normalizing to mean 1) are raised to it, so an op
/// the relevance sweep did not reach still pays for its error.
pub const RELEVANCE_FLOOR: f64 = 0.05;

/// Both error numbers of one (operator, precision). `proxy` includes the relevance weight;
/// `measured` and `estimated` do not (they are output errors).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ErrorEntry {
    pub proxy: f64,
    /// `None` when the measurement time ran out before this op.
    pub measured: Option<f64>,
    /// `measured`, or the unweighted proxy scaled by the measured/proxy ratio.
    pub estimated: f64,
}

/// The error table of all candidates.
#[derive(Clone, Debug, Default)]
pub struct ErrorTable {
    pub entries: BTreeMap<(NodeKey, Precision), ErrorEntry>,
    /// Relevance weight per op (mean 1 over the candidates, floored).
    pub relevance: BTreeMap<NodeKey, f64>,
    /// Ops × precisions measured / left to the scaled proxy.
    pub measured: usize,
    pub unmeasured: usize,
    /// Set when the time limit (a safety stop) rather than the count cap ended measuring:
    /// then which ops were measured depends on machine speed, and so may the output.
    pub time_limit_hit: bool,
    /// Measurements that changed no output although the weight did change (the op did not
    /// run on the samples, e.g. an `If` branch not taken): left to the scaled proxy.
    pub unexercised: usize,
    /// Whether measurements ran suffixes of the rewritten models (see [`super::suffix`]).
    pub suffix_measured: bool,
    pub seconds: f64,
    /// Outputs whose errors were measured at their logits: (output, logits tensor).
    pub measured_at_logits: Vec<(String, String)>,
}

impl ErrorTable {
    pub fn get(&self, key: &str, p: Precision) -> Option<&ErrorEntry> {
        self.entries.get(&(key.to_string(), p))
    }
    pub fn relevance_of(&self, key: &str) -> f64 {
        self.relevance.get(key).copied().unwrap_or(1.0)
    }
}

/// Relevance weight per candidate: mean of `relevance_share` and `weight_relevance_share`
/// over up to `max_samples` samples, normalized to mean 1 over the candidates and floored
/// at [`RELEVANCE_FLOOR`]. A model the sweep cannot explain gets weight 1 everywhere.
pub fn relevance_weights(
    model: &Model,
    cands: &[OpCandidate],
    samples: &[Sample],
    max_samples: usize,
) -> (BTreeMap<NodeKey, f64>, Option<String>) {
    // Pinned to the `epsilon` preset rather than the relevance pass's default: the
    // allocation's must-holds (ILP ≥ uniform int8 and random at equal size) were measured
    // with it, and the `auto` default (γ on convolutions) dropped det's ILP fidelity from
    // 0.860 to 0.792, below uniform int8's 0.834 (scripts/bench_precision.sh det).
    let cfg = RuleConfig::preset("epsilon").unwrap_or_default();
    let mut results = Vec::new();
    let mut failure = None;
    let take = samples.len().min(max_samples.max(1));
    let progress = optimize_ir::progress::bar("relevance", take as u64, "samples");
    for s in &samples[..take] {
        match explain(model, &s.values, &Target::default(), &cfg, false) {
            Ok(r) => results.push(r),
            Err(e) => {
                failure = Some(format!("relevance failed ({e}); every operator weighs 1"));
                break;
            }
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    let mut raw: BTreeMap<NodeKey, f64> = cands.iter().map(|c| (c.key.clone(), 0.0)).collect();
    if failure.is_none() && !results.is_empty() {
        let summary = summarize(&results);
        let mut by_label: HashMap<&str, f64> = HashMap::new();
        for n in &summary.nodes {
            by_label
                .entry(n.name.as_str())
                .or_insert(0.5 * (n.relevance_share + n.weight_relevance_share));
        }
        for c in cands {
            if let Some(v) = by_label.get(c.label.as_str()) {
                raw.insert(c.key.clone(), *v);
            }
        }
    }
    let mean = raw.values().sum::<f64>() / raw.len().max(1) as f64;
    let weights = raw
        .into_iter()
        .map(|(k, v)| {
            let w = if mean > 0.0 && v.is_finite() {
                v / mean
            } else {
                1.0
            };
            (k, w.max(RELEVANCE_FLOOR))
        })
        .collect();
    (weights, failure)
}

/// Proxy error of `c` at `p` (without the relevance weight).
pub fn proxy_error(model: &Model, c: &OpCandidate, p: Precision, calib: &Calibration) -> f64 {
    if p == Precision::Fp32 {
        return 0.0;
    }
    let mut e = match c.weight_f32(&model.graph) {
        Some((w, _)) => c.weight_error(&w, p),
        None => 0.0,
    };
    // Calibrated formats quantize inputs and outputs; the dynamic one its input, with a
    // range per call that the calibrated range stands in for.
    let quantized: Vec<&String> = match p {
        _ if p.quantizes_activations() => c.activation_inputs.iter().chain(&c.outputs).collect(),
        Precision::Int8Dyn => c.activation_inputs.iter().collect(),
        _ => Vec::new(),
    };
    for t in quantized {
        if let (Some(r), Some(rms)) = (calib.ranges.get(t), calib.rms.get(t)) {
            e += relative_activation_error(*r, *rms);
        }
    }
    e
}

/// Ops whose output is a squashed form of their input: near saturation a tiny change of the
/// input flips the output (PP-OCR det's Sigmoid is steep, k = 50), so an error measured after
/// them is noise that does not grow with the quantization noise.
const SQUASHING: [&str; 3] = ["Sigmoid", "Softmax", "LogSoftmax"];

/// `model` with each output produced by a squashing op (see [`SQUASHING`]) replaced by that
/// op's float input (the logits): single-operator errors are measured there, where they grow
/// smoothly with the quantization noise. Returns the copy and the pairs (output, logits)
/// replaced; `None` (and no copy of the weights) when no output qualifies.
pub fn measured_at_logits(model: &Model) -> Option<(Model, Vec<(String, String)>)> {
    let g = &model.graph;
    let swaps: Vec<(usize, String, String)> = g
        .outputs
        .iter()
        .enumerate()
        .filter_map(|(i, y)| {
            let n = &g.ops[g.producer(y)?];
            let x = n.inputs.first()?;
            let usable = n.domain.is_empty()
                && SQUASHING.contains(&n.op_type.as_str())
                && !x.is_empty()
                && !g.outputs.contains(x)
                && !g.inputs.contains(x)
                && super::calibrate::is_float_tensor(model, x);
            usable.then(|| (i, y.clone(), x.clone()))
        })
        .collect();
    if swaps.is_empty() {
        return None;
    }
    let mut m = model.clone();
    for (i, _, x) in &swaps {
        m.graph.outputs[*i] = x.clone();
    }
    m.graph.relink().ok()?;
    Some((m, swaps.into_iter().map(|(_, y, x)| (y, x)).collect()))
}

/// Runs a serialized model on samples; the float outputs, per sample, in output order.
fn run_float_outputs(bytes: &[u8], samples: &[Sample], what: &str) -> Result<Vec<Vec<Vec<f32>>>> {
    let mut session = OrtRuntime::get()?.session_from_bytes(bytes, what)?;
    let mut all = Vec::with_capacity(samples.len());
    for s in samples {
        let outs = session.run(&s.values)?;
        all.push(
            outs.iter()
                .filter_map(|(_, t): &(String, HostTensor)| t.as_f32())
                .collect(),
        );
    }
    Ok(all)
}

/// Mean over samples and float outputs of ‖y_q − y‖² / ‖y‖².
pub fn output_error(reference: &[Vec<Vec<f32>>], got: &[Vec<Vec<f32>>]) -> f64 {
    let mut sum = 0.0;
    let mut n = 0usize;
    for (rs, gs) in reference.iter().zip(got) {
        for (r, g) in rs.iter().zip(gs) {
            let num: f64 = if r.len() == g.len() {
                r.iter()
                    .zip(g)
                    .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
                    .sum()
            } else {
                f64::INFINITY
            };
            let den: f64 = r.iter().map(|&a| (a as f64).powi(2)).sum();
            sum += if den > 0.0 { num / den } else { num };
            n += 1;
        }
    }
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// The float outputs per sample of a one-operator rewrite: its suffix when captures
/// serve, the whole model otherwise.
fn measure_rewrite(
    m: Model,
    captures: Option<&Captures>,
    eval: &[Sample],
) -> Result<Vec<Vec<Vec<f32>>>> {
    let m = match captures {
        Some(c) => match c.run_suffix(m) {
            Ok(got) => return got,
            Err(m) => *m,
        },
        None => m,
    };
    let bytes = to_bytes(&m, &ExportOptions::default())?;
    run_float_outputs(&bytes, eval, "a one-operator rewrite")
}

/// How [`error_table`] measures.
#[derive(Clone, Debug)]
pub struct MeasureOptions {
    pub measure: bool,
    /// Samples per measurement (the first K calibration samples).
    pub samples: usize,
    /// At most this many single-op measurements, most relevant ops first: a deterministic
    /// cap (the time limit is only a safety stop).
    pub max_measurements: usize,
    pub time_limit_s: f64,
    /// Run only the part of each rewritten model its change reaches, fed from one capture
    /// run per sample (see [`super::suffix`]); whole models otherwise.
    pub suffix: bool,
}

/// Builds the error table: proxies for all, measurements while time lasts.
pub fn error_table(
    model: &Model,
    cands: &[OpCandidate],
    calib: &Calibration,
    relevance: BTreeMap<NodeKey, f64>,
    samples: &[Sample],
    opts: &MeasureOptions,
) -> Result<ErrorTable> {
    let start = Instant::now();
    let mut table = ErrorTable {
        relevance,
        ..Default::default()
    };
    // Unweighted proxies; the table's `proxy` is these times the relevance weight.
    let mut proxies: BTreeMap<(NodeKey, Precision), f64> = BTreeMap::new();
    for c in cands {
        for &(p, _) in &c.options {
            proxies.insert((c.key.clone(), p), proxy_error(model, c, p, calib));
        }
    }
    let mut measured: BTreeMap<(NodeKey, Precision), f64> = BTreeMap::new();
    if opts.measure && !samples.is_empty() {
        let k = samples.len().min(opts.samples.max(1));
        let eval = &samples[..k];
        let at_logits = measured_at_logits(model);
        let model = at_logits.as_ref().map_or(model, |(m, _)| m);
        table.measured_at_logits = at_logits.as_ref().map_or(Vec::new(), |(_, s)| s.clone());
        // A capture that fails (or would not fit) leaves the whole-model measurement.
        let captures = opts
            .suffix
            .then(|| Captures::collect(model, eval).ok())
            .flatten();
        table.suffix_measured = captures.is_some();
        let reference = match &captures {
            Some(c) => c.reference(),
            None => {
                let base = to_bytes(model, &ExportOptions::default())?;
                run_float_outputs(&base, eval, "the fp32 model")?
            }
        };
        // Most relevant first, then by key: a deterministic order.
        let mut order: Vec<&OpCandidate> = cands.iter().collect();
        order.sort_by(|a, b| {
            table
                .relevance_of(&b.key)
                .total_cmp(&table.relevance_of(&a.key))
                .then_with(|| a.key.cmp(&b.key))
        });
        let total: usize = order.iter().map(|c| c.options.len() - 1).sum();
        let progress = optimize_ir::progress::bar("errors", total as u64, "measurements");
        let mut done = 0usize;
        'outer: for c in order {
            for &(p, _) in &c.options {
                if p == Precision::Fp32 {
                    measured.insert((c.key.clone(), p), 0.0);
                    continue;
                }
                if done >= opts.max_measurements {
                    break 'outer;
                }
                if start.elapsed().as_secs_f64() > opts.time_limit_s {
                    table.time_limit_hit = true;
                    break 'outer;
                }
                progress.set_message(format!("{} {}", c.key, p.name()));
                let mut m = model.clone();
                let single: Assignment = [(c.key.clone(), p)].into_iter().collect();
                super::rewrite::apply(&mut m, &single, &calib.ranges)?;
                let got = measure_rewrite(m, captures.as_ref(), eval).map_err(|e| {
                    Error::Internal(format!(
                        "onnxruntime refused the rewrite of '{}' at {}: {e}",
                        c.key,
                        p.name()
                    ))
                })?;
                measured.insert((c.key.clone(), p), output_error(&reference, &got));
                done += 1;
                progress.inc(1);
            }
        }
        progress.finish_and_clear();
    }
    // A zero error where the weight changed means the samples never ran the op: no
    // measurement at all.
    let before = measured.len();
    measured.retain(|k, m| k.1 == Precision::Fp32 || *m != 0.0 || proxies[k] <= 0.0);
    table.unexercised = before - measured.len();
    // measured / proxy ratio per precision, for the unmeasured ones.
    let mut ratio: BTreeMap<Precision, (f64, f64)> = BTreeMap::new();
    for (k, m) in &measured {
        let e = ratio.entry(k.1).or_insert((0.0, 0.0));
        e.0 += m;
        e.1 += proxies.get(k).copied().unwrap_or(0.0);
    }
    let all = ratio
        .values()
        .fold((0.0, 0.0), |acc, (m, p)| (acc.0 + m, acc.1 + p));
    let scale = |p: Precision| -> f64 {
        match ratio.get(&p) {
            Some((m, q)) if *q > 0.0 => m / q,
            _ if all.1 > 0.0 => all.0 / all.1,
            _ => 1.0,
        }
    };
    for (k, raw) in proxies {
        let m = measured.get(&k).copied();
        let estimated = m.unwrap_or_else(|| raw * scale(k.1));
        let proxy = table.relevance_of(&k.0) * raw;
        if k.1 != Precision::Fp32 {
            if m.is_some() {
                table.measured += 1;
            } else {
                table.unmeasured += 1;
            }
        }
        table.entries.insert(
            k,
            ErrorEntry {
                proxy,
                measured: m,
                estimated,
            },
        );
    }
    table.seconds = start.elapsed().as_secs_f64();
    Ok(table)
}
