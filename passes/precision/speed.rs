//! Speed in the allocation: the latency model ([`super::latency`]) turned into the ILP's
//! terms, the latency axis of the fidelity search (`--objective speed` with `--calib`),
//! and the report's latency section with the output's measured time.

use super::candidate::OpCandidate;
use super::ilp::{min_latency, AllocProblem, LatencyTerms};
use super::latency::{measure, Boundary, LatencySettings, Measured};
use super::section::{LatencyRow, LatencySection};
use super::{Assignment, Precision, Ranges};
use optimize_ir::data::HostTensor;
use optimize_ir::error::{Error, Result};
use optimize_ir::ir::Model;
use optimize_ir::onnx_io::export::{to_bytes, ExportOptions};
use std::collections::BTreeMap;

/// `--objective speed` / `--latency-budget`: the latency model and what to do with it.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyGoal {
    pub settings: LatencySettings,
    /// The predicted time must not exceed this fraction of fp32's.
    pub budget: Option<f64>,
    /// Minimize the predicted time (within the size budget; with a fidelity search, the
    /// search runs over latency budgets instead of size budgets).
    pub speed: bool,
}

/// The measured table with the per-option deltas the ILP reads.
pub struct LatencyModel {
    pub measured: Measured,
    /// Per candidate (in candidate order), per allowed precision: ms against fp32.
    pub deltas: Vec<BTreeMap<Precision, f64>>,
    /// The input the variants were timed on (the output is timed on it too).
    pub input: Vec<(String, HostTensor)>,
    /// The edges between candidates with their elements, as the boundary cost was fitted.
    pub boundaries: Vec<Boundary>,
}

/// Measures (or reads from the cache) the latency table for `model` and its candidates,
/// timing on the first calibration sample.
pub fn prepare(
    model: &Model,
    cands: &[OpCandidate],
    ranges: &Ranges,
    first_sample: Option<&[(String, HostTensor)]>,
    goal: &LatencyGoal,
    edges: &[(usize, usize)],
) -> Result<LatencyModel> {
    let input = first_sample
        .ok_or_else(|| Error::Usage("the latency model needs one input sample to time on".into()))?
        .to_vec();
    let boundaries = boundaries(model, cands, edges);
    let measured = measure(model, cands, ranges, &input, &goal.settings, &boundaries)?;
    let deltas = measured.table.option_deltas(cands);
    Ok(LatencyModel {
        measured,
        deltas,
        input,
        boundaries,
    })
}

/// The edges with the elements of the tensor each carries (`v`'s activation input, else
/// `u`'s output). When any of them has no static shape (a model with dynamic input sizes),
/// every edge counts 1: the boundary cost is then fitted per boundary, not per element.
fn boundaries(model: &Model, cands: &[OpCandidate], edges: &[(usize, usize)]) -> Vec<Boundary> {
    let elements = |u: usize, v: usize| -> Option<u64> {
        let t = cands[v]
            .activation_inputs
            .first()
            .or(cands[u].outputs.first())?;
        let dims = model.graph.value_type(t)?.static_dims()?;
        Some(dims.iter().map(|&x| x.max(1) as u64).product())
    };
    let known: Option<Vec<u64>> = edges.iter().map(|&(u, v)| elements(u, v)).collect();
    match known {
        Some(e) => edges.iter().zip(e).map(|(&(u, v), e)| (u, v, e)).collect(),
        None => edges.iter().map(|&(u, v)| (u, v, 1)).collect(),
    }
}

/// Adds the latency model's terms to `p` (built from the candidates `lm` was measured
/// for, in order): the limit `limit_fraction` × fp32's time, and whether to minimize time.
pub fn attach(
    p: &mut AllocProblem,
    lm: &LatencyModel,
    limit_fraction: Option<f64>,
    minimize: bool,
) {
    let table = &lm.measured.table;
    let base_ms = table.fp32_ms();
    let elements: BTreeMap<(usize, usize), u64> =
        lm.boundaries.iter().map(|&(u, v, e)| ((u, v), e)).collect();
    let option_ms: Vec<Vec<f64>> = p
        .items
        .iter()
        .zip(&lm.deltas)
        .map(|(it, d)| {
            it.options
                .iter()
                .map(|o| d.get(&o.precision).copied().unwrap_or(0.0))
                .collect()
        })
        .collect();
    let int8 = |i: usize| p.option_of(i, Precision::Int8).is_some();
    let edge_ms: Vec<f64> = p
        .edges
        .iter()
        .map(|&(u, v)| {
            if !(int8(u) && int8(v)) {
                return 0.0;
            }
            table.boundary_ms(elements.get(&(u, v)).copied().unwrap_or(1))
        })
        .collect();
    // The error only breaks ties between equally fast choices: all of it together may
    // move the objective by 1% of fp32's time at most.
    let max_error: f64 = p
        .items
        .iter()
        .map(|it| it.options.iter().map(|o| o.cost).fold(0.0, f64::max))
        .sum::<f64>()
        + p.lambda * p.edges.len() as f64;
    let error_weight = if max_error > 0.0 && max_error.is_finite() {
        0.01 * base_ms / max_error
    } else {
        0.0
    };
    p.latency = Some(LatencyTerms {
        base_ms,
        option_ms,
        edge_ms,
        limit_ms: limit_fraction.map(|f| f * base_ms),
        minimize,
        error_weight,
    });
}

/// The latency axis of the fidelity search: `(floor, start, max)` as fractions of fp32's
/// time. The floor is the fastest assignment within the size budget `p` carries; the start
/// is uniform int8's predicted time (the conventional safe point), the max fp32's.
pub fn axis(p: &AllocProblem, int8_choice: Option<&[usize]>, time_limit_s: f64) -> (f64, f64, f64) {
    let base = p.latency.as_ref().map_or(1.0, |l| l.base_ms.max(1e-12));
    let round_up = |x: f64| (x * 1e3).ceil() / 1e3;
    let floor = min_latency(p, time_limit_s).map_or(0.1, |t| round_up(t / base));
    let max = 1.0f64.max(floor);
    let start = int8_choice
        .and_then(|c| p.predicted_ms(c))
        .map_or(max, |t| round_up(t / base))
        .clamp(floor, max);
    (floor, start, max)
}

/// Times the rewritten model as the variants were timed (same input, threads, runs).
pub fn time_output(model: &Model, lm: &LatencyModel) -> Result<f64> {
    let bytes = to_bytes(model, &ExportOptions::default())?;
    let table = &lm.measured.table;
    let t = optimize_runtimes::profile::time_model(
        &bytes,
        "the output model",
        &lm.input,
        table.key.threads,
        table.runs,
    )?;
    Ok(t.wall_ms)
}

/// The report's latency section.
pub fn section(
    lm: &LatencyModel,
    goal: &LatencyGoal,
    cands: &[OpCandidate],
    assignment: &Assignment,
    (predicted_ms, measured_ms): (f64, Option<f64>),
) -> LatencySection {
    let m = &lm.measured;
    let t = &m.table;
    LatencySection {
        cpu_model: m.cpu.model.clone(),
        cpu_flags: m.cpu.flags.clone(),
        threads: t.key.threads,
        onnxruntime: t.key.onnxruntime.clone(),
        objective: if goal.speed { "speed" } else { "error" }.into(),
        budget: goal.budget,
        limit_ms: goal.budget.map(|f| f * t.fp32_ms()),
        cache: m.cache,
        cache_file: m.cache_file.as_ref().map(|p| p.display().to_string()),
        cache_note: m.cache_note.clone(),
        seconds: m.seconds,
        runs: t.runs,
        fp32_ms: t.fp32_ms(),
        predicted_ms,
        measured_ms,
        prediction_error: measured_ms
            .filter(|&x| x > 0.0)
            .map(|x| (predicted_ms - x) / x),
        variants: t.variants.clone(),
        operators: cands
            .iter()
            .zip(&lm.deltas)
            .map(|(c, d)| LatencyRow {
                key: c.key.clone(),
                op: c.op.clone(),
                chosen: assignment
                    .get(&c.key)
                    .copied()
                    .unwrap_or(Precision::Fp32)
                    .name()
                    .into(),
                delta_ms: d.iter().map(|(p, v)| (p.name().to_string(), *v)).collect(),
            })
            .collect(),
        qdq_ms_per_melem: t.qdq_ms_per_melem,
        boundary_ms_per_melem: t.boundary_ms_per_melem,
        boundary_fit: t.boundary_fit.clone(),
    }
}
