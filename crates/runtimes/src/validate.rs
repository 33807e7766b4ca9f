//! Validation: runs the original and the optimized model on onnxruntime with the same
//! inputs and compares every output.
//!
//! Inputs are the user's (`--inputs DIR`, e.g. a model's own `test_data_set_N`) or seeded
//! random values of the right dtype and shape. The pass criterion: every output element
//! satisfies |a − b| ≤ tolerance · max(1, |a|), with `a` the original's value. When a pass
//! changed the numbers on purpose (mixed precision), the criterion is fidelity instead:
//! every output's task metric, pooled over the samples, reaches its target (see
//! [`crate::fidelity`]). The fidelity of every output is measured and reported either way.

use crate::fidelity::measure::{score_sample, Meter};
use crate::fidelity::{FidelityReport, FidelitySpec, OutputFidelity, OutputPlan};
use crate::select::{execute, NamedOutputs, RuntimeChoice, SampleSource};
use optimize_ir::data::inputs::{
    apply_input_shapes, load_input_dir, InputSpec, RandomSamples, Sample,
};
use optimize_ir::data::{compare, HostTensor, Metrics};
use optimize_ir::error::{Error, Result};
use optimize_ir::ir::{Dim, Model, ValueType};
use serde::Serialize;
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct ValidationOptions {
    /// Folder of input samples; `None` for seeded random inputs.
    pub inputs_dir: Option<PathBuf>,
    /// Concrete dims for symbolic input dims.
    pub bindings: HashMap<String, Vec<i64>>,
    pub seed: u64,
    /// Number of random samples when no folder is given.
    pub samples: usize,
    pub tolerance: f64,
    /// Which runtime runs the models (`--runtime`).
    pub runtime: RuntimeChoice,
    /// Forces the wgpu adapter whose name contains this (`--adapter`).
    pub adapter: Option<String>,
    /// Set when the optimized model is lossy by design: pass when every output's pooled
    /// fidelity reaches its target, instead of the element-wise tolerance.
    pub lossy: bool,
    /// Each output's metric and target; empty: `auto` metrics at default targets, picked
    /// on the model given to [`validate`].
    pub fidelity: Vec<OutputPlan>,
    /// Whether a fidelity below target fails validation (see [`crate::fidelity::gate`]).
    pub fidelity_enforced: bool,
    /// Why the gate refuses or only reports, for the report.
    pub fidelity_mode: String,
    /// The single `--min-fidelity F` given for every output, for the report.
    pub min_fidelity: Option<f64>,
    /// Validate on these samples of `inputs_dir` only (by file or folder name): the part
    /// of a calibration folder held out of calibration.
    pub only_samples: Option<Vec<String>>,
    /// With `(seed, calib_used)`, validate on the samples of `inputs_dir` that
    /// [`crate::fidelity::holdout::validation_indices`] keeps out of calibration (all of
    /// them when the folder is too small to split).
    pub holdout: Option<(u64, usize)>,
}

impl Default for ValidationOptions {
    fn default() -> Self {
        ValidationOptions {
            inputs_dir: None,
            bindings: HashMap::new(),
            seed: 0,
            samples: 2,
            tolerance: 1e-4,
            runtime: RuntimeChoice::Auto,
            adapter: None,
            lossy: false,
            fidelity: Vec::new(),
            fidelity_enforced: false,
            fidelity_mode: "reports only: no --min-fidelity and a lossless run".into(),
            min_fidelity: None,
            only_samples: None,
            holdout: None,
        }
    }
}

/// Agreement of one output over all samples.
#[derive(Clone, Debug, Serialize)]
pub struct OutputAgreement {
    pub name: String,
    pub max_abs_err: f64,
    pub max_rel_err: f64,
    pub cosine: f64,
    pub bit_identical: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct ValidationReport {
    pub runtime: String,
    /// Why `--runtime auto` did not use onnxruntime (null when it did).
    pub fallback_reason: Option<String>,
    /// False when no runtime could run the models (`auto` only): then `passed` is false too.
    pub done: bool,
    pub max_abs_err: f64,
    pub max_rel_err: f64,
    pub cosine: f64,
    /// Where the inputs came from, e.g. `seeded random (seed 0)` or a folder path.
    pub inputs_used: String,
    pub samples: usize,
    pub tolerance: f64,
    /// Largest |a − b| / max(1, |a|) over all outputs: the number compared with `tolerance`.
    pub tolerance_err: f64,
    /// `tolerance` (element-wise, for lossless passes) or `fidelity` (task metrics pooled
    /// over the samples, for lossy ones).
    pub criterion: String,
    /// The `--min-fidelity F` given for every output, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_fidelity: Option<f64>,
    pub bit_identical: bool,
    pub passed: bool,
    pub outputs: Vec<OutputAgreement>,
    /// Each output's task metric pooled over the samples, its target and worst sample
    /// (absent when validation was not done).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fidelity: Option<FidelityReport>,
}

/// The runtime inputs a model expects, with bindings applied to symbolic dims.
pub fn input_specs(model: &Model, bindings: &HashMap<String, Vec<i64>>) -> Result<Vec<InputSpec>> {
    let g = &model.graph;
    let mut specs = Vec::new();
    for name in g.runtime_inputs() {
        let ty = g.value_type(name);
        let (elem, dims) = match ty {
            Some(ValueType::Tensor { elem, shape }) => (*elem, shape.clone()),
            Some(other) => {
                return Err(Error::Usage(format!(
                    "input '{name}' has type {other}; only tensor inputs can be fed"
                )))
            }
            None => return Err(Error::Usage(format!("input '{name}' has no declared type"))),
        };
        let dims: Vec<Option<i64>> = match dims {
            Some(d) => d.iter().map(Dim::known).collect(),
            None => match bindings.get(name) {
                Some(b) => vec![None; b.len()],
                None => {
                    return Err(Error::Usage(format!(
                        "input '{name}' has unknown rank; pass --input-shape {name}=..."
                    )))
                }
            },
        };
        specs.push(InputSpec {
            name: name.to_string(),
            elem,
            dims,
        });
    }
    // Binding the symbolic dims is the data layer's job (the same check `--calib` gets).
    apply_input_shapes(&specs, bindings)
}

/// The samples validation feeds: a folder's (loaded, checked) or seeded random ones (made
/// one at a time).
pub enum ValidationSamples {
    Loaded(Vec<Sample>),
    Random(RandomSamples, usize),
}

impl SampleSource for ValidationSamples {
    fn len(&self) -> usize {
        match self {
            ValidationSamples::Loaded(v) => v.len(),
            ValidationSamples::Random(_, n) => *n,
        }
    }

    fn get(&self, i: usize) -> Cow<'_, [(String, HostTensor)]> {
        match self {
            ValidationSamples::Loaded(v) => Cow::Borrowed(&v[i].values),
            ValidationSamples::Random(g, _) => Cow::Owned(g.sample(i).values),
        }
    }
}

impl ValidationSamples {
    /// Sample `i`'s file or folder name (`random_K` for random samples).
    pub fn id(&self, i: usize) -> String {
        match self {
            ValidationSamples::Loaded(v) => v.get(i).map(|s| s.id.clone()).unwrap_or_default(),
            ValidationSamples::Random(..) => format!("random_{i}"),
        }
    }
}

/// The samples validation will feed, and where they come from.
pub fn validation_samples(
    model: &Model,
    opts: &ValidationOptions,
) -> Result<(ValidationSamples, String)> {
    let specs = input_specs(model, &opts.bindings)?;
    match &opts.inputs_dir {
        Some(dir) => {
            let mut samples = load_input_dir(dir, &specs)?;
            let mut used = dir.display().to_string();
            if let Some(idx) = opts.holdout.and_then(|(seed, calib_used)| {
                crate::fidelity::holdout::validation_indices(samples.len(), seed, calib_used)
            }) {
                let total = samples.len();
                let mut i = 0;
                samples.retain(|_| {
                    i += 1;
                    idx.binary_search(&(i - 1)).is_ok()
                });
                used = format!(
                    "{used} (held out of calibration: {} of {total} samples)",
                    samples.len()
                );
            }
            if let Some(only) = &opts.only_samples {
                let total = samples.len();
                samples.retain(|s| only.contains(&s.id));
                used = format!(
                    "{used} (held out of calibration: {} of {total} samples)",
                    samples.len()
                );
            }
            Ok((ValidationSamples::Loaded(samples), used))
        }
        None => {
            if opts.samples == 0 {
                return Err(Error::Usage(
                    "--samples 0: validation needs at least one sample (or pass --no-validate)"
                        .into(),
                ));
            }
            Ok((
                ValidationSamples::Random(RandomSamples::new(&specs, opts.seed)?, opts.samples),
                format!("seeded random (seed {})", opts.seed),
            ))
        }
    }
}

/// Agreement of every output, folded over the samples as they run.
#[derive(Default)]
struct Agreement {
    /// Per output: its metrics and its largest tolerance error.
    per_output: Vec<(String, Metrics, f64)>,
    /// Per output (in plan order): its fidelity meter.
    meters: Vec<(OutputPlan, Meter)>,
    /// Sample names, by index.
    ids: Vec<String>,
    /// Samples added so far (the index of the next one).
    next: usize,
    /// Output elements compared over all samples.
    compared: u64,
    /// The first output the optimized model lacks or that cannot be compared.
    error: Option<Error>,
    progress: Option<indicatif::ProgressBar>,
}

impl Agreement {
    fn add(&mut self, ra: &NamedOutputs, rb: &NamedOutputs) {
        if let Some(p) = &self.progress {
            p.inc(1);
        }
        let index = self.next;
        self.next += 1;
        if self.error.is_some() {
            return;
        }
        for (name, ta) in ra {
            let Some(tb) = rb.iter().find(|(n, _)| n == name).map(|(_, t)| t) else {
                self.error = Some(Error::Validation(format!(
                    "the optimized model has no output '{name}'"
                )));
                return;
            };
            let m = match compare(ta, tb) {
                Ok(m) => m,
                Err(Error::Validation(msg)) => {
                    self.error = Some(Error::Validation(format!("output '{name}': {msg}")));
                    return;
                }
                Err(other) => {
                    self.error = Some(other);
                    return;
                }
            };
            self.compared += ta.element_count() as u64;
            if let Some((plan, meter)) = self.meters.iter_mut().find(|(p, _)| &p.name == name) {
                let id = self.ids.get(index).map(String::as_str).unwrap_or("");
                let (s, extra) = score_sample(plan.metric, ta, tb, m.cosine);
                meter.add_sample(index, id, s, extra);
            }
            let tol = tolerance_error(ta, tb);
            match self.per_output.iter_mut().find(|(n, _, _)| n == name) {
                Some((_, acc, t)) => {
                    *acc = acc.merge(m);
                    *t = t.max(tol);
                }
                None => self.per_output.push((name.clone(), m, tol)),
            }
        }
    }
}

/// Largest |a − b| / max(1, |a|) between two tensors of the same shape.
fn tolerance_error(reference: &HostTensor, candidate: &HostTensor) -> f64 {
    match (reference.to_f64(), candidate.to_f64()) {
        (Some(a), Some(b)) => a
            .iter()
            .zip(&b)
            .map(|(x, y)| {
                if x.is_nan() && y.is_nan() || x == y {
                    0.0
                } else {
                    let d = (x - y).abs() / x.abs().max(1.0);
                    if d.is_nan() {
                        f64::INFINITY
                    } else {
                        d
                    }
                }
            })
            .fold(0.0, f64::max),
        _ if reference == candidate => 0.0,
        _ => f64::INFINITY,
    }
}

fn criterion(opts: &ValidationOptions) -> &'static str {
    if opts.lossy {
        "fidelity"
    } else {
        "tolerance"
    }
}

/// Runs both models on the same samples and compares their outputs. A run in which no
/// output element was compared (every output empty, e.g. a batch of 0) is an input error,
/// never a vacuous pass.
pub fn validate(
    original: &Path,
    candidate: &Path,
    model: &Model,
    opts: &ValidationOptions,
) -> Result<ValidationReport> {
    let (samples, inputs_used) = validation_samples(model, opts).map_err(|e| match e {
        Error::Usage(msg) => Error::input(original, msg),
        other => other,
    })?;
    let plans = if opts.fidelity.is_empty() {
        FidelitySpec::default().resolve(model)?
    } else {
        opts.fidelity.clone()
    };
    let ids: Vec<String> = (0..samples.len()).map(|i| samples.id(i)).collect();
    let progress = optimize_ir::progress::bar("validation", samples.len() as u64, "samples");
    let init = || Agreement {
        progress: Some(progress.clone()),
        meters: plans
            .iter()
            .map(|p| (p.clone(), Meter::new(p.metric)))
            .collect(),
        ids: ids.clone(),
        ..Default::default()
    };
    let exec = execute(
        opts.runtime,
        original,
        candidate,
        &opts.bindings,
        opts.adapter.as_deref(),
        &samples,
        &init,
        &|acc: &mut Agreement, a, b| acc.add(a, b),
    )?;
    progress.finish_and_clear();
    let agreement = match exec.outputs {
        Ok(r) => r,
        Err(why) => {
            return Ok(ValidationReport {
                runtime: exec.runtime,
                fallback_reason: Some(format!(
                    "{}; wgpu executor: {why}",
                    exec.fallback_reason.unwrap_or_default()
                )),
                done: false,
                max_abs_err: f64::NAN,
                max_rel_err: f64::NAN,
                cosine: f64::NAN,
                inputs_used,
                samples: samples.len(),
                tolerance: opts.tolerance,
                tolerance_err: f64::NAN,
                criterion: criterion(opts).into(),
                min_fidelity: opts.min_fidelity,
                bit_identical: false,
                passed: false,
                outputs: Vec::new(),
                fidelity: None,
            })
        }
    };
    if let Some(e) = agreement.error {
        return Err(e);
    }
    if agreement.compared == 0 {
        return Err(Error::input(
            original,
            format!(
                "validation compared nothing: every output of the {} sample(s) from {inputs_used} is empty (a dimension of 0?); bind non-zero dims with --input-shape, give other --inputs, or pass --no-validate",
                samples.len()
            ),
        ));
    }
    let per_output = agreement.per_output;
    let outputs: Vec<OutputAgreement> = per_output
        .iter()
        .map(|(name, m, _)| OutputAgreement {
            name: name.clone(),
            max_abs_err: m.max_abs_err,
            max_rel_err: m.max_rel_err,
            cosine: m.cosine,
            bit_identical: m.bit_identical,
        })
        .collect();
    let tolerance_err = per_output.iter().map(|(_, _, t)| *t).fold(0.0, f64::max);
    let cosine = outputs.iter().map(|o| o.cosine).fold(1.0, f64::min);
    let fidelity = FidelityReport::new(
        agreement
            .meters
            .iter()
            .map(|(p, m)| OutputFidelity::of(p, m))
            .collect(),
        opts.fidelity_enforced,
        opts.fidelity_mode.clone(),
    );
    let passed = if opts.lossy {
        fidelity.passed
    } else {
        tolerance_err <= opts.tolerance && (fidelity.passed || !opts.fidelity_enforced)
    };
    Ok(ValidationReport {
        runtime: exec.runtime,
        fallback_reason: exec.fallback_reason,
        done: true,
        max_abs_err: outputs.iter().map(|o| o.max_abs_err).fold(0.0, f64::max),
        max_rel_err: outputs.iter().map(|o| o.max_rel_err).fold(0.0, f64::max),
        cosine,
        inputs_used,
        samples: samples.len(),
        tolerance: opts.tolerance,
        tolerance_err,
        criterion: criterion(opts).into(),
        min_fidelity: opts.min_fidelity,
        bit_identical: outputs.iter().all(|o| o.bit_identical),
        passed,
        outputs,
        fidelity: Some(fidelity),
    })
}
