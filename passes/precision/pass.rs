//! The mixed-precision pass: fold BatchNorm → candidates → calibration → relevance →
//! error table → allocation (ILP, or uniform/random for ablations) → independent check →
//! rewrite → size re-check on the rewritten model → report section.

pub use super::budget::Budget;
use super::calibrate::{
    calibrate, current_bindings, drop_unranged_int8, is_float_tensor, load_calibration_samples,
    CalibMethod, Calibration,
};
use super::candidates::{candidates, shared_weight_groups, total_weight_bytes, OpCandidate};
use super::check::{check_assignment, check_rewritten_size, CheckReport};
use super::ilp::{
    check_feasible, common_precisions, greedy, infeasible_error, solve, tie_units, AllocItem,
    AllocOption, AllocProblem, AllocSolution, SolveStatus,
};
use super::section::{
    finite, Allocated, BudgetInfo, CalibrationInfo, CheckerInfo, ErrorsInfo, FirstProbeInfo,
    Formats, Holdout, LogitsAt, NodeRow, PrecisionSection, Probe, SearchInfo, Skipped, SolverInfo,
    StrategyInfo, Unchanged, UniformPoint,
};
use super::sensitivity::{error_table, relevance_weights, ErrorTable, MeasureOptions};
use super::{Assignment, Precision};
use crate::pass_manager::{Pass, PassChanges, PassContext, PassResult, ReportSection};
use crate::simplify::SimplifyStats;
use optimize_ir::error::{Error, Result};
use optimize_ir::ir::{Graph, Model};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

/// The pass's name, and the key of its report section.
pub const PASS_NAME: &str = "precision";

/// How the assignment is chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Strategy {
    /// The ILP (greedy fallback).
    Ilp,
    /// One precision everywhere (ops that lack it keep the closest smaller-error one they
    /// allow). When that misses the budget, the single precision with the lowest total
    /// estimated error that meets it is used instead. For ablations.
    Uniform(Precision),
    /// A random assignment meeting the budget and ties, from a seed. For ablations.
    Random(u64),
}

/// Which error the ILP minimizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Objective {
    /// Relevance weight × measured error (scaled proxy where unmeasured). The default.
    RelevanceMeasured,
    /// Measured error (scaled proxy where unmeasured).
    Measured,
    /// The relevance-weighted proxy only.
    Proxy,
}

impl Objective {
    pub fn name(self) -> &'static str {
        match self {
            Objective::RelevanceMeasured => "relevance_measured",
            Objective::Measured => "measured",
            Objective::Proxy => "proxy",
        }
    }
}

/// Settings of the pass.
#[derive(Clone, Debug)]
pub struct PrecisionConfig {
    pub budget: Budget,
    pub strategy: Strategy,
    pub objective: Objective,
    /// `--calib DIR`. When `None`, only weight-only formats are offered (see
    /// [`PrecisionConfig::weight_only`]) and errors are measured on seeded random inputs.
    pub calib_dir: Option<PathBuf>,
    /// `--calib-random`: without `--calib`, calibrate activation ranges on seeded random
    /// inputs and offer int8 activations anyway (the old behaviour, with its warning).
    pub calib_random: bool,
    pub calib_method: CalibMethod,
    /// Calibration samples: random ones to draw, or at most this many from the folder.
    pub calib_samples: usize,
    pub seed: u64,
    /// ILP time limit; the incumbent is used when it runs out.
    pub time_limit_s: f64,
    /// Measure errors end to end (else the proxy steers alone).
    pub measure: bool,
    /// Safety stop for measuring; the deterministic cap is `max_measurements`.
    pub measure_time_limit_s: f64,
    /// At most this many single-op measurements (most relevant ops first).
    pub max_measurements: usize,
    /// Samples per error measurement (the first K calibration samples).
    pub measure_samples: usize,
    /// Samples for the relevance sweep.
    pub relevance_samples: usize,
    /// Refuse to calibrate on random inputs, and fail when relevance fails.
    pub strict: bool,
    /// Whether the user asked for this pass's settings (a budget, `--calib`, a config-file
    /// entry). When not, the pass is the default pipeline's: a model it cannot handle (the
    /// default budget is infeasible, onnxruntime cannot run it, inputs need shapes) keeps
    /// fp32 and the report says why, instead of failing the whole run.
    pub explicit: bool,
    /// Whether the budget was given (`--size-budget`, `--avg-bits`, or a config file's key):
    /// then an output that does not meet it, for any reason, is an error naming the
    /// smallest feasible value. The default budget may be missed with a note.
    pub budget_explicit: bool,
    /// Hold a seeded quarter of the `--calib` samples out of calibration for validation
    /// (the pipeline sets it when no `--inputs` are given; see [`optimize_runtimes::fidelity::holdout`]).
    pub holdout: bool,
    /// The fidelity-driven search over size budgets (set by the pipeline when `--calib` is
    /// given without a budget); `None` runs at `budget`.
    pub search: Option<Search>,
    /// The fp32 weight bytes the size budget is a fraction of. `None`: the model's, as the
    /// pass receives it. In a pass manager's run it is the model's just before the passes
    /// precision requires (BatchNorm folding, simplification) rewrote it, so those passes do
    /// not move the budget.
    pub reference_weight_bytes: Option<u64>,
    /// `--objective speed` / `--latency-budget`: measure the latency model and use it.
    pub latency: Option<super::speed::LatencyGoal>,
}

/// What one probe measured: whether every output met its target, and each output's
/// pooled fidelity.
#[derive(Clone, Debug)]
pub struct ProbeVerdict {
    pub passed: bool,
    pub outputs: Vec<(String, f64)>,
    /// Each output's conservative estimate (what `passed` compared with the target).
    pub conservative: Vec<(String, f64)>,
}

/// Validates a candidate model (a probe of the search).
pub type Prober = Arc<dyn Fn(&Model) -> Result<ProbeVerdict> + Send + Sync>;

/// The fidelity-driven search: probes (ILP solve, rewrite, measured validation) over size
/// budgets, bisecting on the measured verdict, keeping the smallest budget that passes.
#[derive(Clone)]
pub struct Search {
    pub probe: Prober,
    /// The first budget probed.
    pub start: f64,
    /// The largest useful budget (every weight at fp16 fits): when it fails, the search fails.
    pub max: f64,
    /// Bisection stops when the passing and failing budgets are this close.
    pub tolerance: f64,
    /// The step from the first probe until the verdict flips.
    pub step: f64,
}

impl std::fmt::Debug for Search {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Search")
            .field("start", &self.start)
            .field("max", &self.max)
            .field("tolerance", &self.tolerance)
            .field("step", &self.step)
            .finish()
    }
}

/// Why a run without calibration data offers weight-only formats (report and summary).
pub const WEIGHT_ONLY_WHY: &str = "no --calib: activation ranges would come from random inputs, so only weight-only formats are offered (fp16, int8/int4 weights decoded at load, MatMulNBits, quantized embedding tables); pass --calib DIR for int8 activations, or --calib-random to calibrate on seeded random inputs";

impl PrecisionConfig {
    /// Whether only weight-only formats are offered: no calibration folder and no
    /// `--calib-random`. Like onnxruntime's `quantize_dynamic`, these need no activation
    /// ranges, so nothing is calibrated on noise.
    pub fn weight_only(&self) -> bool {
        self.calib_dir.is_none() && !self.calib_random
    }
}

impl Default for PrecisionConfig {
    /// Size budget 0.30 of the fp32 weight bytes: a bit below what uniform int8 reaches
    /// (~0.26–0.27 of fp32 with scales on the PP-OCR models), so int8 everywhere fits and the
    /// ILP has room to keep sensitive operators wider or push big tolerant ones to int4.
    fn default() -> Self {
        PrecisionConfig {
            budget: Budget::SizeFraction(0.30),
            strategy: Strategy::Ilp,
            objective: Objective::RelevanceMeasured,
            calib_dir: None,
            calib_random: false,
            calib_method: CalibMethod::MinMax,
            calib_samples: 8,
            seed: 0,
            time_limit_s: 20.0,
            measure: true,
            measure_time_limit_s: 600.0,
            max_measurements: 200,
            measure_samples: 2,
            relevance_samples: 2,
            strict: false,
            explicit: false,
            budget_explicit: false,
            holdout: false,
            search: None,
            reference_weight_bytes: None,
            latency: None,
        }
    }
}

/// Everything one run produced.
#[derive(Clone, Debug)]
pub struct PrecisionOutcome {
    pub assignment: Assignment,
    pub rewrite: Option<super::rewrite::RewriteStats>,
    pub errors: ErrorTable,
    pub solver: Option<AllocSolution>,
    pub checker: CheckReport,
    /// Constant bytes of the input model (the budget's reference) and of the result.
    pub weight_bytes_before: u64,
    pub weight_bytes_after: u64,
    pub section: PrecisionSection,
}

/// The precision pass for the pass manager.
pub struct PrecisionPass {
    pub config: PrecisionConfig,
}

impl Pass for PrecisionPass {
    fn name(&self) -> &'static str {
        PASS_NAME
    }

    fn run(&self, model: &mut Model) -> Result<PassResult> {
        self.run_config(model, &self.config)
    }

    fn run_in(&self, model: &mut Model, ctx: &PassContext) -> Result<PassResult> {
        let mut config = self.config.clone();
        if let Some(before) = ctx.weight_bytes_before(crate::fold_batchnorm::PASS_NAME) {
            config.reference_weight_bytes = config.reference_weight_bytes.or(Some(before));
        }
        self.run_config(model, &config)
    }
}

impl PrecisionPass {
    fn run_config(&self, model: &mut Model, config: &PrecisionConfig) -> Result<PassResult> {
        let mut work = model.clone();
        let out = match run_precision(&mut work, config) {
            Ok(out) => out,
            Err(e @ (Error::Usage(_) | Error::Input { .. } | Error::Runtime(_)))
                if !config.explicit =>
            {
                let body = PrecisionSection::Skipped(Skipped {
                    skipped: optimize_ir::error::one_line(&e.to_string()),
                    hint: "the model keeps fp32; give --size-budget/--avg-bits, --calib or --input-shape to run mixed precision (errors are then reported)".into(),
                    nodes: Vec::new(),
                });
                return Ok(PassResult {
                    changes: PassChanges::default(),
                    section: Some(ReportSection::new(PASS_NAME, body.to_json())),
                });
            }
            Err(e) => return Err(e),
        };
        *model = work;
        let mut changes = PassChanges::default();
        for p in Precision::ALL {
            if p != Precision::Fp32 {
                let n = out.assignment.values().filter(|&&q| q == p).count();
                changes.add(&format!("{}_nodes", p.name()), n as u64);
            }
        }
        if let Some(r) = &out.rewrite {
            changes.add("inserted_nodes", r.inserted_nodes as u64);
        }
        // Validation reuses the calibration folder, and the samples held out of it, that an
        // allocation was calibrated on.
        let (calibration_dir, held_out_samples) = match &out.section {
            PrecisionSection::Allocated(a) => (
                config.calib_dir.clone(),
                a.calibration
                    .holdout
                    .as_ref()
                    .map(|h| h.validation_samples.clone())
                    .unwrap_or_default(),
            ),
            _ => (None, Vec::new()),
        };
        let section = ReportSection {
            // Any operator off fp32 changes the numbers by design.
            lossy: changes.changed(),
            calibration_dir,
            held_out_samples,
            ..ReportSection::new(PASS_NAME, out.section.to_json())
        };
        Ok(PassResult {
            changes,
            section: Some(section),
        })
    }
}

/// Ops a precision-domain boundary passes through: one dynamic input, data movement or
/// elementwise (onnxruntime drops or fuses Q/DQ around them).
const PASS_THROUGH: &[&str] = &[
    "Relu",
    "Clip",
    "LeakyRelu",
    "HardSigmoid",
    "HardSwish",
    "Sigmoid",
    "Identity",
    "Reshape",
    "Transpose",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Mul",
    "Add",
    "Div",
    "Sub",
    "BatchNormalization",
];

/// The dynamic (non-constant, non-empty) inputs of a node.
fn dynamic_inputs<'a>(g: &Graph, n: &'a optimize_ir::ir::Node) -> Vec<&'a String> {
    n.inputs
        .iter()
        .filter(|i| !i.is_empty() && g.constant_tensor(i).is_none())
        .collect()
}

fn is_pass_through(g: &Graph, n: &optimize_ir::ir::Node) -> bool {
    n.domain.is_empty()
        && PASS_THROUGH.contains(&n.op_type.as_str())
        && dynamic_inputs(g, n).len() == 1
}

/// The candidate producing `t`, directly or through pass-through ops.
fn candidate_producer(g: &Graph, t: &str, by_key: &HashMap<&str, usize>) -> Option<usize> {
    let mut t = t.to_string();
    for _ in 0..16 {
        if let Some(&i) = by_key.get(t.as_str()) {
            return Some(i);
        }
        let n = &g.ops[g.producer(&t)?];
        if !is_pass_through(g, n) {
            return None;
        }
        t = dynamic_inputs(g, n)[0].clone();
    }
    None
}

/// Edges between candidates (through pass-through ops) and int8 tie groups (candidate
/// producers of one Concat's inputs or of a two-sided Add).
fn structure(model: &Model, cands: &[OpCandidate]) -> (Vec<(usize, usize)>, Vec<Vec<usize>>) {
    let g = &model.graph;
    let by_key: HashMap<&str, usize> = cands
        .iter()
        .enumerate()
        .map(|(i, c)| (c.key.as_str(), i))
        .collect();
    let mut edges = BTreeSet::new();
    for (v, c) in cands.iter().enumerate() {
        for x in &c.activation_inputs {
            if let Some(u) = candidate_producer(g, x, &by_key) {
                if u != v {
                    edges.insert((u.min(v), u.max(v)));
                }
            }
        }
    }
    let mut ties = Vec::new();
    for &idx in &g.order {
        let n = &g.ops[idx];
        let joins = n.domain.is_empty()
            && (n.op_type == "Concat" || (n.op_type == "Add" && dynamic_inputs(g, n).len() == 2));
        if !joins {
            continue;
        }
        let mut group: Vec<usize> = dynamic_inputs(g, n)
            .iter()
            .filter_map(|t| candidate_producer(g, t, &by_key))
            .filter(|&i| cands[i].bytes_at(Precision::Int8).is_some())
            .collect();
        group.sort_unstable();
        group.dedup();
        if group.len() > 1 {
            ties.push(group);
        }
    }
    (edges.into_iter().collect(), ties)
}

/// Builds the allocation problem from candidates and the error table.
pub fn build_problem(
    model: &Model,
    cands: &[OpCandidate],
    errors: &ErrorTable,
    objective: Objective,
    budget: Budget,
    reference_bytes: u64,
) -> AllocProblem {
    let index: HashMap<&str, usize> = cands
        .iter()
        .enumerate()
        .map(|(i, c)| (c.key.as_str(), i))
        .collect();
    let shared = shared_weight_groups(cands);
    // Members after the first of a shared-weight group store nothing of their own.
    let mut secondary = BTreeSet::new();
    let mut same_precision = Vec::new();
    for grp in &shared {
        let ids: Vec<usize> = grp
            .iter()
            .filter_map(|k| index.get(k.as_str()).copied())
            .collect();
        secondary.extend(ids.iter().skip(1).copied());
        same_precision.push(ids);
    }
    let mut cand_bytes = 0u64;
    let items: Vec<AllocItem> = cands
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let sec = secondary.contains(&i);
            if !sec {
                cand_bytes += c.fp32_bytes;
            }
            let options = c
                .options
                .iter()
                .map(|&(p, bytes)| {
                    let e = errors.get(&c.key, p);
                    let cost = match (objective, e) {
                        (_, None) => 0.0,
                        (Objective::RelevanceMeasured, Some(e)) => {
                            errors.relevance_of(&c.key) * e.estimated
                        }
                        (Objective::Measured, Some(e)) => e.estimated,
                        (Objective::Proxy, Some(e)) => e.proxy,
                    };
                    AllocOption {
                        precision: p,
                        bytes: if sec { 0 } else { bytes },
                        cost: if cost.is_finite() { cost } else { 1e6 },
                    }
                })
                .collect();
            AllocItem {
                key: c.key.clone(),
                elements: c.weight_shape.iter().map(|&d| d as u64).product(),
                options,
            }
        })
        .collect();
    let fixed_bytes = total_weight_bytes(model).saturating_sub(cand_bytes);
    let (edges, int8_ties) = structure(model, cands);
    // λ: one precision-domain change (an extra Q/DQ pair) costs 1% of the mean over
    // operators of their largest error: enough to break ties toward contiguous int8
    // regions, too small to override a real error difference.
    let mean_max: f64 = items
        .iter()
        .map(|it| it.options.iter().map(|o| o.cost).fold(0.0, f64::max))
        .sum::<f64>()
        / items.len().max(1) as f64;
    let lambda = if mean_max > 0.0 {
        0.01 * mean_max
    } else {
        1e-9
    };
    AllocProblem {
        items,
        fixed_bytes,
        total_weight_bytes: reference_bytes,
        budget,
        same_precision,
        int8_ties,
        edges,
        lambda,
        latency: None,
    }
}

fn option_for(it: &AllocItem, want: Precision) -> usize {
    if let Some(o) = it.options.iter().position(|o| o.precision == want) {
        return o;
    }
    // The allowed precision nearest in bits above `want` (fp32 is always there).
    let mut best = 0;
    for (o, opt) in it.options.iter().enumerate() {
        let b = opt.precision.weight_bits();
        if b > want.weight_bits()
            && (it.options[best].precision.weight_bits() <= want.weight_bits()
                || b < it.options[best].precision.weight_bits())
        {
            best = o;
        }
    }
    best
}

fn fits(p: &AllocProblem, choice: &[usize]) -> bool {
    let (used, limit) = p.budget_use(choice);
    used <= limit * (1.0 + 1e-9)
}

fn fixed_solution(
    p: &AllocProblem,
    choice: Vec<usize>,
    start: std::time::Instant,
) -> AllocSolution {
    let objective = p.objective(&choice);
    AllocSolution {
        choice,
        status: SolveStatus::Optimal,
        objective,
        bound: None,
        gap: None,
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// Uniform allocation (see [`Strategy::Uniform`]); returns the precision used.
pub fn uniform(p: &AllocProblem, want: Precision) -> Result<(AllocSolution, Precision)> {
    let start = std::time::Instant::now();
    let make =
        |q: Precision| -> Vec<usize> { p.items.iter().map(|it| option_for(it, q)).collect() };
    let first = make(want);
    if fits(p, &first) {
        return Ok((fixed_solution(p, first, start), want));
    }
    let mut fitting: Vec<(f64, Precision, Vec<usize>)> = Precision::ALL
        .into_iter()
        .map(|q| {
            let c = make(q);
            (p.objective(&c), q, c)
        })
        .filter(|(_, _, c)| fits(p, c))
        .collect();
    fitting.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    match fitting.into_iter().next() {
        Some((_, q, c)) => Ok((fixed_solution(p, c, start), q)),
        None => Err(Error::Usage(format!(
            "no single precision meets the budget: {}",
            infeasible_error(p, 5.0)
        ))),
    }
}

/// A random allocation meeting the ties and the budget: every tie unit draws one common
/// precision; while over budget, a random unit not yet at its smallest option moves there.
pub fn random(p: &AllocProblem, seed: u64) -> Result<AllocSolution> {
    let start = std::time::Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let units = tie_units(p);
    let common = common_precisions(p, &units);
    let mut choice = vec![0usize; p.items.len()];
    let set = |choice: &mut Vec<usize>, u: usize, q: Precision| {
        for &i in &units[u] {
            choice[i] = option_for(&p.items[i], q);
        }
    };
    let unit_bits = |u: usize, q: Precision| -> u64 {
        units[u]
            .iter()
            .map(|&i| p.items[i].options[option_for(&p.items[i], q)].bytes)
            .sum::<u64>()
    };
    let mut smallest = Vec::new();
    for (u, qs) in common.iter().enumerate() {
        if qs.is_empty() {
            return Err(Error::Internal("a tie unit has no common precision".into()));
        }
        let q = qs[rng.random_range(0..qs.len())];
        set(&mut choice, u, q);
        let small = *qs
            .iter()
            .min_by_key(|&&q| match p.budget {
                Budget::SizeFraction(_) => unit_bits(u, q),
                Budget::AvgBits(_) => q.weight_bits() as u64,
            })
            .unwrap_or(&qs[0]);
        smallest.push(small);
    }
    let mut open: Vec<usize> = (0..units.len()).collect();
    while !fits(p, &choice) {
        open.retain(|&u| choice[units[u][0]] != option_for(&p.items[units[u][0]], smallest[u]));
        if open.is_empty() {
            return Err(infeasible_error(p, 5.0));
        }
        let u = open[rng.random_range(0..open.len())];
        set(&mut choice, u, smallest[u]);
    }
    let mut s = fixed_solution(p, choice, start);
    s.status = SolveStatus::Optimal;
    Ok(s)
}

/// Picks an assignment with the configured strategy, checks it independently, and falls
/// back to greedy (checked again) when the check fails.
fn allocate(
    p: &AllocProblem,
    cfg: &PrecisionConfig,
) -> Result<(AllocSolution, CheckReport, Option<Precision>)> {
    let (sol, uni) = match cfg.strategy {
        Strategy::Ilp => (solve(p, cfg.time_limit_s)?, None),
        Strategy::Uniform(q) => {
            let (s, used) = uniform(p, q)?;
            (s, Some(used))
        }
        Strategy::Random(seed) => (random(p, seed)?, None),
    };
    let report = check_assignment(p, &p.assignment(&sol.choice), sol.objective);
    if report.passed {
        return Ok((sol, report, uni));
    }
    let Some(g) = greedy(p) else {
        return Err(Error::Internal(format!(
            "the allocation failed the checker ({}) and greedy found none",
            report.problems.join("; ")
        )));
    };
    let second = check_assignment(p, &p.assignment(&g.choice), g.objective);
    if !second.passed {
        return Err(Error::Internal(format!(
            "the allocation and the greedy fallback both failed the checker: {}; {}",
            report.problems.join("; "),
            second.problems.join("; ")
        )));
    }
    let mut problems = report.problems;
    problems.insert(0, "solver result rejected; greedy used".into());
    Ok((
        g,
        CheckReport {
            passed: true,
            problems,
        },
        None,
    ))
}

/// An explicit budget on a model without candidate operators (no Conv/MatMul/Gemm with
/// constant weights, in the graph or its subgraphs): met only when the unchanged weights
/// (`after` of `before` bytes, subgraphs included) already meet it; a model without
/// weights meets any.
fn no_candidate_budget(budget: Budget, before: u64, after: u64) -> Result<()> {
    const WHY: &str = "the model has no operator with constant weights to quantize (Conv, MatMul or Gemm with constant weights), so its weights stay as they are";
    match budget {
        Budget::SizeFraction(f) => {
            let frac = after as f64 / before.max(1) as f64;
            if frac > f {
                let smallest = (frac * 1e4).ceil() / 1e4;
                return Err(Error::Usage(format!(
                    "size budget {f} is infeasible: {WHY}, at {frac:.4} of the fp32 weight bytes; the smallest feasible size budget is {smallest:.4} (pass --size-budget {smallest:.4} or more, or --no-precision)"
                )));
            }
        }
        _ if before == 0 => {}
        Budget::AvgBits(b) if b < 32.0 => {
            return Err(Error::Usage(format!(
                "average {b} bits per weight is infeasible: {WHY}, at 32 bits; the smallest feasible average is 32 bits per weight (pass --avg-bits 32, or --no-precision)"
            )));
        }
        Budget::AvgBits(_) => {}
    }
    Ok(())
}

/// Refuses, before any calibration, an explicit budget a model without candidates cannot
/// meet, and any budget no assignment can meet (decided from byte counts alone).
fn check_budget_up_front(
    model: &Model,
    cands: &[OpCandidate],
    cfg: &PrecisionConfig,
    weight_bytes_before: u64,
) -> Result<()> {
    if cands.is_empty() {
        if cfg.budget_explicit {
            no_candidate_budget(cfg.budget, weight_bytes_before, total_weight_bytes(model))?;
        }
        return Ok(());
    }
    let sizes_only = build_problem(
        model,
        cands,
        &ErrorTable::default(),
        cfg.objective,
        cfg.budget,
        weight_bytes_before,
    );
    check_feasible(&sizes_only, cfg.time_limit_s)
}

/// The outcome for a model without candidate operators: nothing changes.
fn unchanged(
    model: &Model,
    cfg: &PrecisionConfig,
    weight_bytes_before: u64,
    folded: usize,
    simplified: &SimplifyStats,
) -> PrecisionOutcome {
    let after = total_weight_bytes(model);
    let section = PrecisionSection::Unchanged(Unchanged {
        budget: BudgetInfo {
            bytes: None,
            ..budget_info(cfg, weight_bytes_before)
        },
        weight_bytes_before,
        weight_bytes_after: after,
        size_fraction: after as f64 / weight_bytes_before.max(1) as f64,
        nodes: Vec::new(),
        note: "no candidate operators (Conv/MatMul/Gemm with constant weights): nothing to change"
            .into(),
        folded_batchnorms: folded,
        simplified: simplified.clone(),
    });
    PrecisionOutcome {
        assignment: Assignment::new(),
        rewrite: None,
        errors: ErrorTable::default(),
        solver: None,
        checker: CheckReport {
            passed: true,
            problems: Vec::new(),
        },
        weight_bytes_before,
        weight_bytes_after: after,
        section,
    }
}

/// Loads the calibration samples and calibrates the tensors int8 would quantize.
fn calibrate_candidates(
    model: &Model,
    cands: &[OpCandidate],
    cfg: &PrecisionConfig,
) -> Result<(Vec<optimize_ir::data::Sample>, Calibration)> {
    if cfg.strict && cfg.calib_dir.is_none() {
        return Err(Error::Usage(
            "no calibration data: pass --calib DIR (strict mode refuses seeded random inputs)"
                .into(),
        ));
    }
    let split = cfg.holdout && cfg.calib_dir.is_some();
    let count = if split { 0 } else { cfg.calib_samples };
    let (mut samples, warning) =
        load_calibration_samples(model, cfg.calib_dir.as_deref(), cfg.seed, count)?;
    let mut holdout = None;
    if split {
        let total = samples.len();
        let validation = optimize_runtimes::fidelity::holdout::validation_indices(
            total,
            cfg.seed,
            cfg.calib_samples,
        );
        holdout = Some(match validation {
            Some(idx) => {
                let mut held = Vec::new();
                let mut kept = Vec::new();
                for (i, s) in samples.into_iter().enumerate() {
                    if idx.binary_search(&i).is_ok() {
                        held.push(s.id);
                    } else {
                        kept.push(s);
                    }
                }
                samples = kept;
                Holdout {
                    seed: cfg.seed,
                    folder_samples: total,
                    validation_samples: held,
                    calibration_pool: samples.len(),
                    rule: optimize_runtimes::fidelity::holdout::rule(),
                    not_split: None,
                }
            }
            None => Holdout {
                seed: cfg.seed,
                folder_samples: total,
                validation_samples: Vec::new(),
                calibration_pool: total,
                rule: optimize_runtimes::fidelity::holdout::rule(),
                not_split: Some(format!(
                    "{total} samples: too few to hold out; validation reuses the calibration samples (pass --inputs for held-apart ones)"
                )),
            },
        });
        if cfg.calib_samples > 0 {
            samples.truncate(cfg.calib_samples);
        }
    }
    let warning = warning.filter(|_| !cfg.weight_only());
    if let Some(w) = &warning {
        optimize_ir::progress::warn(w);
    }
    let mut tensors: BTreeSet<String> = BTreeSet::new();
    for c in cands {
        if c.bytes_at(Precision::Int8).is_some() {
            tensors.extend(c.activation_inputs.iter().chain(&c.outputs).cloned());
        }
    }
    if cfg.latency.is_some() {
        // The int8 glue pass (speed objectives) quantizes the outputs of the ops between
        // int8 operators: they need ranges too.
        for (_, n) in model.graph.nodes() {
            if n.domain.is_empty() && super::int8_glue::needs_range(&n.op_type) {
                tensors.extend(n.outputs.iter().cloned());
            }
        }
    }
    let tensors: Vec<String> = tensors
        .into_iter()
        .filter(|t| is_float_tensor(model, t))
        .collect();
    let mut calib: Calibration = calibrate(model, &samples, &tensors, cfg.calib_method)?;
    calib.source = match &cfg.calib_dir {
        Some(d) => d.display().to_string(),
        None if cfg.weight_only() => format!(
            "none (weight-only formats; errors measured on seeded random inputs, seed {})",
            cfg.seed
        ),
        None => format!("seeded random (seed {})", cfg.seed),
    };
    calib.warning = warning;
    calib.holdout = holdout;
    Ok((samples, calib))
}

/// Runs the whole flow on `model` (rewritten in place). Usable without the pass manager.
pub fn run_precision(model: &mut Model, cfg: &PrecisionConfig) -> Result<PrecisionOutcome> {
    let bad = match cfg.budget {
        Budget::SizeFraction(f) => !(f > 0.0 && f.is_finite()),
        Budget::AvgBits(b) => !(b > 0.0 && b.is_finite()),
    };
    if bad {
        return Err(Error::Usage(format!(
            "budget {:?}: must be a positive number",
            cfg.budget
        )));
    }
    let bindings = current_bindings(model);
    let weight_bytes_before = cfg
        .reference_weight_bytes
        .unwrap_or_else(|| total_weight_bytes(model));
    // The passes precision requires, for a caller without the pass manager; after them
    // (in the pipeline) these find nothing left to do.
    let folded = crate::fold_batchnorm::fold_batchnorm(model)?;
    // Lossless simplifications first: they set how fast every precision choice runs.
    let simplified = crate::simplify::simplify(model)?;
    if folded > 0 || simplified.total() > 0 {
        optimize_ir::shape::infer(model, &bindings).map_err(|e| {
            Error::Internal(format!(
                "shape inference after BatchNorm folding and simplification: {e}"
            ))
        })?;
    }
    let mut cands = candidates(model);
    super::candidates::offer_for_mode(&mut cands, cfg.weight_only(), cfg.latency.is_some());
    check_budget_up_front(model, &cands, cfg, weight_bytes_before)?;
    if cands.is_empty() {
        return Ok(unchanged(
            model,
            cfg,
            weight_bytes_before,
            folded,
            &simplified,
        ));
    }
    let (samples, calib) = calibrate_candidates(model, &cands, cfg)?;
    let unranged = drop_unranged_int8(model, &mut cands, &calib.ranges);
    // Relevance and errors.
    let (rel, rel_problem) = relevance_weights(model, &cands, &samples, cfg.relevance_samples);
    if let (Some(m), true) = (&rel_problem, cfg.strict) {
        return Err(Error::Usage(m.clone()));
    }
    let errors = error_table(
        model,
        &cands,
        &calib,
        rel,
        &samples,
        &MeasureOptions {
            measure: cfg.measure,
            samples: cfg.measure_samples,
            max_measurements: cfg.max_measurements,
            time_limit_s: cfg.measure_time_limit_s,
            suffix: true,
        },
    )?;
    let latency = match &cfg.latency {
        Some(goal) => Some(super::speed::prepare(
            model,
            &cands,
            &calib.ranges,
            samples.first().map(|s| s.values.as_slice()),
            goal,
            &structure(model, &cands).0,
        )?),
        None => None,
    };
    let ctx = AllocContext {
        model,
        cands: &cands,
        errors: &errors,
        calib: &calib,
        bindings: &bindings,
        weight_bytes_before,
        latency: latency.as_ref(),
    };
    let (alloc, search_section) = match cfg.search.as_ref().filter(|_| !cfg.budget_explicit) {
        Some(search) => {
            let (alloc, probes) = run_search(&ctx, cfg, search)?;
            (alloc, Some(probes))
        }
        None => (allocate_rewrite(&ctx, cfg, cfg.budget)?, None),
    };
    let Allocation {
        model: m,
        sol,
        checker,
        uniform_used,
        stats,
        after,
        assignment,
        overhead,
        attempt,
        predicted_ms,
        measured_ms,
    } = alloc;
    let latency_section = match (&latency, &cfg.latency, predicted_ms) {
        (Some(lm), Some(goal), Some(predicted)) => {
            let measured = match measured_ms {
                Some(ms) => ms,
                None => super::speed::time_output(&m, lm)?,
            };
            Some(super::speed::section(
                lm,
                goal,
                &cands,
                &assignment,
                (predicted, Some(measured)),
            ))
        }
        _ => None,
    };
    *model = m;
    let mut section = section(
        cfg,
        &cands,
        &assignment,
        &errors,
        &calib,
        &sol,
        &checker,
        &stats,
        (weight_bytes_before, after),
        uniform_used,
        folded,
        rel_problem,
    );
    section.rewrite_overhead_bytes = overhead;
    section.allocation_rounds = attempt;
    section.simplified = simplified;
    section.int8_without_range = unranged;
    section.search = search_section;
    section.latency = latency_section;
    let section = PrecisionSection::Allocated(Box::new(section));
    Ok(PrecisionOutcome {
        assignment,
        rewrite: Some(stats),
        errors,
        solver: Some(sol),
        checker,
        weight_bytes_before,
        weight_bytes_after: after,
        section,
    })
}

/// What every allocation at some budget shares: the analysed model and its error table.
struct AllocContext<'a> {
    model: &'a Model,
    cands: &'a [OpCandidate],
    errors: &'a ErrorTable,
    calib: &'a Calibration,
    bindings: &'a optimize_ir::shape::Bindings,
    weight_bytes_before: u64,
    latency: Option<&'a super::speed::LatencyModel>,
}

impl AllocContext<'_> {
    /// The allocation problem of the analysed model at `budget`.
    fn problem(&self, objective: Objective, budget: Budget) -> AllocProblem {
        build_problem(
            self.model,
            self.cands,
            self.errors,
            objective,
            budget,
            self.weight_bytes_before,
        )
    }
}

/// One allocation, rewritten.
struct Allocation {
    model: Model,
    sol: AllocSolution,
    checker: CheckReport,
    uniform_used: Option<Precision>,
    stats: super::rewrite::RewriteStats,
    after: u64,
    assignment: Assignment,
    overhead: u64,
    attempt: usize,
    /// The latency model's prediction for this allocation.
    predicted_ms: Option<f64>,
    /// The rewritten model timed as the latency table was (a passing probe of the search
    /// on the latency axis; `None` when it was not timed).
    measured_ms: Option<f64>,
}

/// Solve → rewrite a copy → re-check the real bytes. The rewrite also stores activation
/// scales and zero points the candidates' byte counts do not see; when the rewritten model
/// overshoots a size budget, that overshoot is added to the fixed bytes and the allocation
/// is solved again (a few rounds at most).
fn allocate_rewrite(
    ctx: &AllocContext,
    cfg: &PrecisionConfig,
    budget: Budget,
) -> Result<Allocation> {
    let mut problem = ctx.problem(cfg.objective, budget);
    if let (Some(lm), Some(goal)) = (ctx.latency, &cfg.latency) {
        super::speed::attach(&mut problem, lm, goal.budget, goal.speed);
    }
    let mut overhead = 0u64;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let progress = optimize_ir::progress::spinner("precision");
        progress.set_message(format!("allocating {} operators", ctx.cands.len()));
        let allocated = allocate(&problem, cfg);
        progress.finish_and_clear();
        let (sol, checker, uniform_used) = allocated?;
        let assignment = problem.assignment(&sol.choice);
        let mut m = ctx.model.clone();
        let stats = super::rewrite::apply_with(
            &mut m,
            &assignment,
            &ctx.calib.ranges,
            cfg.latency.is_some(),
        )?;
        optimize_ir::shape::infer(&mut m, ctx.bindings).map_err(|e| {
            Error::Internal(format!("shape inference after the precision rewrite: {e}"))
        })?;
        let after = total_weight_bytes(&m);
        if let Budget::SizeFraction(f) = budget {
            let post = check_rewritten_size(after, ctx.weight_bytes_before, f);
            if !post.passed {
                let predicted = problem.budget_use(&sol.choice).0 as u64;
                let extra = after.saturating_sub(predicted).max(1);
                if attempt >= 8 {
                    // The quantization parameters the rewrite adds keep the output above the
                    // budget: the budget, with them counted, is infeasible.
                    problem.fixed_bytes += extra;
                    return Err(infeasible_error(&problem, cfg.time_limit_s));
                }
                overhead += extra;
                problem.fixed_bytes += extra;
                continue;
            }
        }
        let predicted_ms = problem.predicted_ms(&sol.choice);
        return Ok(Allocation {
            model: m,
            sol,
            checker,
            uniform_used,
            stats,
            after,
            assignment,
            overhead,
            attempt,
            predicted_ms,
            measured_ms: None,
        });
    }
}

/// Where the search's first probe came from.
struct FirstProbe {
    budget: f64,
    source: &'static str,
    detail: Value,
}

impl Probe {
    /// A probe entry with only what every probe has.
    fn bare(budget: Option<f64>, passed: bool, seconds: f64) -> Probe {
        Probe {
            budget,
            passed,
            infeasible: None,
            seconds,
            size_fraction: None,
            weight_bytes: None,
            fidelity: None,
            conservative: None,
            measured_ms: None,
        }
    }
}

/// The search's first probe, from the error model: the **smallest budget at which the ILP
/// predicts no more output error than uniform int8**.
///
/// The error table's estimates are relative output errors, relevance-weighted; they are not
/// calibrated against the task metrics (a top1 rate, an IoU), so no target can be turned into
/// an allowed error directly. The one point the user's target is likely to accept is uniform
/// int8 (the conventional safe quantization), so its predicted error (the ILP objective of the
/// all-int8 assignment) is the threshold. The ILP is solved alone (no rewrite, no validation)
/// at budgets bisected between int4's floor and uniform int8's size, to 0.01; the smallest one
/// whose optimal objective is at most int8's is the first probe, clamped to [floor, `max`].
/// Falls back to `search.start` (0.30, "default") when the strategy is not the ILP, the
/// error table predicts nothing (int8's objective is 0 or not finite), or a solve fails.
fn first_probe(
    ctx: &AllocContext,
    cfg: &PrecisionConfig,
    search: &Search,
    floor: f64,
) -> FirstProbe {
    let fallback = |why: String| FirstProbe {
        budget: search.start.clamp(floor, search.max),
        source: "default",
        detail: json!({"why": why}),
    };
    if !matches!(cfg.strategy, Strategy::Ilp) {
        return fallback("the allocation strategy is not the ILP".into());
    }
    let t = std::time::Instant::now();
    let problem_at = |b: f64| ctx.problem(cfg.objective, Budget::SizeFraction(b));
    let p = problem_at(search.max);
    let Ok((int8, Precision::Int8)) = uniform(&p, Precision::Int8) else {
        return fallback("uniform int8 does not fit the largest budget".into());
    };
    let reference = int8.objective;
    let int8_size = p.budget_use(&int8.choice).0 / ctx.weight_bytes_before.max(1) as f64;
    if !(reference.is_finite() && reference > 0.0) {
        return fallback(format!(
            "the error model predicts {reference} for uniform int8"
        ));
    }
    let (mut lo, mut hi) = (floor, int8_size.clamp(floor, search.max));
    let mut solves = 0;
    while hi - lo > 0.01 {
        let mid = ((lo + hi) / 2.0 * 1e4).round() / 1e4;
        solves += 1;
        match solve(&problem_at(mid), cfg.time_limit_s) {
            Ok(s) if s.objective <= reference * (1.0 + 1e-9) => hi = mid,
            Ok(_) => lo = mid,
            Err(Error::Usage(_)) => lo = mid,
            Err(e) => {
                return fallback(format!(
                    "an ILP solve failed: {}",
                    optimize_ir::error::one_line(&e.to_string())
                ))
            }
        }
    }
    FirstProbe {
        budget: ((hi * 1e4).ceil() / 1e4).clamp(floor, search.max),
        source: "error model",
        detail: json!({
            "rule": "smallest budget whose ILP-predicted error is at most uniform int8's",
            "uniform_int8_predicted_error": reference,
            "uniform_int8_size_fraction": int8_size,
            "ilp_solves": solves,
            "seconds": t.elapsed().as_secs_f64(),
        }),
    }
}

/// One probe of the search: allocate at budget `b` (with `cfg`'s strategy), rewrite, and
/// validate. Pushes its report entry; returns the allocation with its verdict, or `None`
/// when the budget is infeasible.
fn probe_budget(
    ctx: &AllocContext,
    cfg: &PrecisionConfig,
    search: &Search,
    b: f64,
    probes: &mut Vec<Probe>,
) -> Result<Option<(Allocation, bool)>> {
    let t = std::time::Instant::now();
    let alloc = match allocate_probe(ctx, cfg, search, b) {
        Ok(a) => a,
        Err(e @ Error::Usage(_)) => {
            probes.push(Probe {
                infeasible: Some(optimize_ir::error::one_line(&e.to_string())),
                ..Probe::bare(Some(b), false, t.elapsed().as_secs_f64())
            });
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let mut alloc = alloc;
    let verdict = (search.probe)(&alloc.model)?;
    alloc.measured_ms = match ctx.latency {
        Some(lm) if verdict.passed && cfg.latency.as_ref().is_some_and(|g| g.speed) => {
            Some(super::speed::time_output(&alloc.model, lm)?)
        }
        _ => None,
    };
    let map = |v: &[(String, f64)]| -> BTreeMap<String, Option<f64>> {
        v.iter().map(|(n, v)| (n.clone(), finite(*v))).collect()
    };
    probes.push(Probe {
        size_fraction: Some(alloc.after as f64 / ctx.weight_bytes_before.max(1) as f64),
        weight_bytes: Some(alloc.after),
        fidelity: Some(map(&verdict.outputs)),
        conservative: Some(map(&verdict.conservative)),
        measured_ms: alloc.measured_ms,
        ..Probe::bare(Some(b), verdict.passed, t.elapsed().as_secs_f64())
    });
    Ok(Some((alloc, verdict.passed)))
}

/// Whether the search runs over latency budgets: `--objective speed` with the ILP.
fn latency_axis(ctx: &AllocContext, cfg: &PrecisionConfig) -> bool {
    ctx.latency.is_some()
        && cfg.latency.as_ref().is_some_and(|g| g.speed)
        && matches!(cfg.strategy, Strategy::Ilp)
}

/// The allocation of one probe at `b`: a size fraction, or on the latency axis a fraction
/// of fp32's predicted time (least error within it, at the largest size budget).
fn allocate_probe(
    ctx: &AllocContext,
    cfg: &PrecisionConfig,
    search: &Search,
    b: f64,
) -> Result<Allocation> {
    if !latency_axis(ctx, cfg) {
        return allocate_rewrite(ctx, cfg, Budget::SizeFraction(b));
    }
    let mut at = cfg.clone();
    if let Some(goal) = at.latency.as_mut() {
        goal.budget = Some(b);
        goal.speed = false;
    }
    allocate_rewrite(ctx, &at, Budget::SizeFraction(search.max))
}

/// The latency axis's floor, first probe and max (see [`super::speed::axis`]).
fn latency_first_probe(
    ctx: &AllocContext,
    cfg: &PrecisionConfig,
    search: &Search,
) -> (f64, FirstProbe, f64) {
    let mut p = ctx.problem(cfg.objective, Budget::SizeFraction(search.max));
    if let Some(lm) = ctx.latency {
        super::speed::attach(&mut p, lm, None, false);
    }
    let int8 = uniform(&p, Precision::Int8).ok().map(|(s, _)| s.choice);
    let (floor, start, max) = super::speed::axis(&p, int8.as_deref(), cfg.time_limit_s);
    let first = FirstProbe {
        budget: start,
        source: "latency model",
        detail: json!({
            "rule": "uniform int8's predicted time, as a fraction of fp32's",
            "fastest_within_size_budget": floor,
            "size_budget": search.max,
        }),
    };
    (floor, first, max)
}

/// Uniform int8, measured once with the probes' machinery (at the largest budget, where it
/// fits): the reference point of the size–fidelity curve. Not a candidate for writing.
fn uniform_int8_point(
    ctx: &AllocContext,
    cfg: &PrecisionConfig,
    search: &Search,
) -> Result<(Option<UniformPoint>, Option<Allocation>)> {
    let mut uni = cfg.clone();
    uni.strategy = Strategy::Uniform(Precision::Int8);
    let mut entry = Vec::new();
    let alloc = probe_budget(ctx, &uni, search, search.max, &mut entry)?;
    let used = alloc
        .as_ref()
        .and_then(|(a, _)| a.uniform_used)
        .map(|p| p.name().to_string());
    let point = entry.pop().map(|probe| UniformPoint {
        probe: Probe {
            budget: None,
            ..probe
        },
        precision_used: used,
    });
    Ok((point, alloc.and_then(|(a, passed)| passed.then_some(a))))
}

/// On the latency axis, the written model is the fastest passing one *as measured*: the
/// latency model steers the probes, but its prediction of a mixed assignment can be off,
/// so every passing probe (uniform int8 among them) was timed and the quickest wins (the
/// earliest probe among equals; uniform int8 only when strictly quicker).
fn fastest_measured(
    uniform: Option<Allocation>,
    best: (f64, Allocation),
    passing: Vec<(f64, Allocation)>,
) -> (f64, Allocation, Option<String>) {
    let ms = |a: &Allocation| a.measured_ms.unwrap_or(f64::INFINITY);
    let mut chosen = best;
    for (b, a) in passing.into_iter().rev() {
        if ms(&a) <= ms(&chosen.1) {
            chosen = (b, a);
        }
    }
    match uniform {
        Some(a) if ms(&a) < ms(&chosen.1) => {
            (chosen.0, a, Some("uniform int8 (measured fastest)".into()))
        }
        _ => (chosen.0, chosen.1, None),
    }
}

/// The fidelity-driven search. The first probe is the error model's prediction
/// ([`first_probe`]; 0.30 when there is none). When it passes, probes step down from it
/// (by `search.step`, to the narrowest precision's fraction at most) until one fails; when
/// it fails, they step up (to `max` at most) until one passes. Then bisection on measured fidelity between
/// the smallest pass and the largest fail below it, to `search.tolerance`. A budget the
/// allocation cannot meet counts as a failed probe. Uniform int8 is measured once beside
/// them. Returns the smallest passing allocation and the section (report JSON); when even
/// `max` fails, a validation error.
fn run_search(
    ctx: &AllocContext,
    cfg: &PrecisionConfig,
    search: &Search,
) -> Result<(Allocation, SearchInfo)> {
    let on_latency = latency_axis(ctx, cfg);
    let (floor, first, max) = if on_latency {
        latency_first_probe(ctx, cfg, search)
    } else {
        let floor = super::Precision::min_weight_bits() as f64 / 32.0;
        (floor, first_probe(ctx, cfg, search, floor), search.max)
    };
    let mut probes: Vec<Probe> = Vec::new();
    let mut best: Option<(f64, Allocation)> = None;
    // On the latency axis every passing allocation is kept: the fastest measured one wins.
    let mut passing: Vec<(f64, Allocation)> = Vec::new();
    let probe = |b: f64, probes: &mut Vec<Probe>| -> Result<Option<Allocation>> {
        Ok(probe_budget(ctx, cfg, search, b, probes)?.and_then(|(a, ok)| ok.then_some(a)))
    };
    let start = first.budget;
    let (mut lo, mut hi) = (floor, max);
    let mut measure = |b: f64, probes: &mut Vec<Probe>| -> Result<bool> {
        Ok(match probe(b, probes)? {
            Some(a) => {
                hi = b;
                if let (Some(old), true) = (best.replace((b, a)), on_latency) {
                    passing.push(old);
                }
                true
            }
            None => {
                lo = lo.max(b);
                false
            }
        })
    };
    // Step away from the first probe by `search.step` until the verdict flips: down while
    // probes pass (to the floor), up while they fail (to `max`). Even steps, not doubling
    // ones: fidelity is not monotone in the budget, and a long jump can land past the
    // smallest budget that passes.
    // The steps land on multiples of the step (0.025, 0.05, …), the grid a user sweeping
    // fixed budgets would try, so the first pass going up is the sweep's; the first step
    // from an off-grid start goes at least half a step.
    let first_passed = measure(start, &mut probes)?;
    let mut b = start;
    loop {
        let half = 0.5 * search.step;
        let next = if first_passed {
            ((b - half) / search.step - 1e-9).ceil() - 1.0
        } else {
            ((b + half) / search.step + 1e-9).floor() + 1.0
        } * search.step;
        let next = (next.clamp(floor, max) * 1e4).round() / 1e4;
        if next == b || measure(next, &mut probes)? != first_passed {
            break;
        }
        b = next;
    }
    if best.is_none() {
        return Err(no_budget_passes(search, &probes));
    }
    while hi - lo > search.tolerance {
        let mid = ((lo + hi) / 2.0 * 1e4).round() / 1e4;
        match probe(mid, &mut probes)? {
            Some(a) => {
                hi = mid;
                if let (Some(old), true) = (best.replace((mid, a)), on_latency) {
                    passing.push(old);
                }
            }
            None => lo = mid,
        }
    }
    let best = best.ok_or_else(|| Error::Internal("search lost its best probe".into()))?;
    let (uniform_int8, uniform_alloc) = uniform_int8_point(ctx, cfg, search)?;
    let (chosen, alloc, chosen_note) = if on_latency {
        fastest_measured(uniform_alloc, best, passing)
    } else {
        (best.0, best.1, None)
    };
    let section = SearchInfo {
        start,
        first_probe: FirstProbeInfo {
            budget: start,
            source: first.source.into(),
            detail: first.detail,
        },
        max,
        tolerance: search.tolerance,
        step: search.step,
        chosen_budget: chosen,
        chosen_size_fraction: alloc.after as f64 / ctx.weight_bytes_before.max(1) as f64,
        probes,
        axis: on_latency.then(|| "latency".to_string()),
        chosen_note,
        uniform_int8,
    };
    Ok((alloc, section))
}

/// The search's failure: even the largest budget is below target.
fn no_budget_passes(search: &Search, probes: &[Probe]) -> Error {
    let last = probes
        .last()
        .map(|p| serde_json::to_value(p).unwrap_or(Value::Null))
        .unwrap_or(Value::Null);
    Error::Validation(format!(
        "no size budget up to {} meets the fidelity targets (probed {}; at {}: {}); no output written (lower --min-fidelity, or give --size-budget to write a fixed size)",
        search.max,
        probes.len(),
        search.max,
        last.get("fidelity").map(|f| f.to_string()).unwrap_or_else(|| "infeasible".into())
    ))
}

#[allow(clippy::too_many_arguments)]
fn section(
    cfg: &PrecisionConfig,
    cands: &[OpCandidate],
    assignment: &Assignment,
    errors: &ErrorTable,
    calib: &Calibration,
    sol: &AllocSolution,
    checker: &CheckReport,
    stats: &super::rewrite::RewriteStats,
    (before, after): (u64, u64),
    uniform_used: Option<Precision>,
    folded: usize,
    relevance_problem: Option<String>,
) -> Allocated {
    let by_key: BTreeMap<&str, &super::rewrite::NodeRewrite> =
        stats.nodes.iter().map(|n| (n.key.as_str(), n)).collect();
    let nodes: Vec<NodeRow> = cands
        .iter()
        .map(|c| {
            let p = assignment.get(&c.key).copied().unwrap_or(Precision::Fp32);
            let e = errors.get(&c.key, p);
            let (bb, ba) = match by_key.get(c.key.as_str()) {
                Some(n) => (n.bytes_before, n.bytes_after),
                None => (c.fp32_bytes, c.bytes_at(p).unwrap_or(c.fp32_bytes)),
            };
            NodeRow {
                name: if c.node_name.is_empty() {
                    c.key.clone()
                } else {
                    c.node_name.clone()
                },
                key: c.key.clone(),
                op: c.op.clone(),
                precision: p.name().into(),
                bytes_before: bb,
                bytes_after: ba,
                error_measured: e.and_then(|e| e.measured).and_then(finite),
                error_proxy: e.and_then(|e| finite(e.proxy)),
                relevance: finite(errors.relevance_of(&c.key)),
            }
        })
        .collect();
    let strategy = match cfg.strategy {
        Strategy::Ilp => StrategyInfo::Ilp,
        Strategy::Uniform(q) => StrategyInfo::Uniform {
            asked: q.name().into(),
            used: uniform_used.map(|u| u.name().into()),
        },
        Strategy::Random(seed) => StrategyInfo::Random { seed },
    };
    Allocated {
        budget: budget_info(cfg, before),
        strategy,
        weight_bytes_before: before,
        weight_bytes_after: after,
        size_fraction: after as f64 / before.max(1) as f64,
        folded_batchnorms: folded,
        calibration: CalibrationInfo {
            source: calib.source.clone(),
            dir: cfg.calib_dir.as_ref().map(|d| d.display().to_string()),
            samples: calib.samples,
            method: cfg.calib_method.name(),
            warning: calib.warning.clone(),
            holdout: calib.holdout.clone(),
        },
        objective: cfg.objective.name().into(),
        errors: ErrorsInfo {
            measured: errors.measured,
            unmeasured: errors.unmeasured,
            max_measurements: cfg.max_measurements,
            time_limit_hit: errors.time_limit_hit,
            unexercised: errors.unexercised,
            suffix_measured: errors.suffix_measured,
            seconds: errors.seconds,
            relevance_problem,
            measured_at_logits: errors
                .measured_at_logits
                .iter()
                .map(|(y, x)| LogitsAt {
                    output: y.clone(),
                    logits: x.clone(),
                })
                .collect(),
        },
        nodes,
        solver: SolverInfo {
            status: sol.status.name().into(),
            objective: finite(sol.objective),
            bound: sol.bound.and_then(finite),
            seconds: sol.seconds,
            gap: sol.gap.and_then(finite),
        },
        checker: CheckerInfo {
            passed: checker.passed,
            problems: checker.problems.clone(),
        },
        inserted_nodes: stats.inserted_nodes,
        rewrite_overhead_bytes: 0,
        allocation_rounds: 0,
        simplified: SimplifyStats::default(),
        int8_without_range: Vec::new(),
        formats: if cfg.weight_only() {
            Formats::WeightOnly {
                why: WEIGHT_ONLY_WHY.into(),
            }
        } else {
            Formats::All {
                activations: calib.source.clone(),
            }
        },
        search: None,
        latency: None,
    }
}

/// The budget as the report gives it.
fn budget_info(cfg: &PrecisionConfig, before: u64) -> BudgetInfo {
    BudgetInfo {
        kind: cfg.budget.kind().into(),
        value: cfg.budget.value(),
        bytes: match cfg.budget {
            Budget::SizeFraction(f) => Some((f * before as f64).floor() as u64),
            Budget::AvgBits(_) => None,
        },
    }
}
