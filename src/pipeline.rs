//! The default pipeline as a library API: import, shape inference, passes, export,
//! validation, report. The CLI is a thin layer over [`run_pipeline`].

use crate::error::{Error, Result};
use crate::ir::Model;
use crate::onnx_io::export::writes_external_data;
use crate::onnx_io::{load_model, save_model, ExportOptions};
use crate::output_policy::Outputs;
use crate::pass_manager::{PassManager, PassRecord, ReportSection};
use crate::passes::precision::options::apply_options as apply_precision_options;
use crate::passes::precision::pass::PrecisionConfig;
use crate::passes::registry::{self, PassSettings};
use crate::report::{ModelSummary, Report};
use crate::run_args::PassSpec;
use crate::shape::{infer, Bindings};
use crate::summary::render_summary;
use crate::validate::{validate, ValidationOptions};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct PipelineOptions {
    pub model: PathBuf,
    pub output: PathBuf,
    pub report: Option<PathBuf>,
    pub inputs: Option<PathBuf>,
    pub bindings: Bindings,
    pub tolerance: f64,
    pub seed: u64,
    pub samples: usize,
    pub validate: bool,
    /// Write a self-contained HTML report here.
    pub html: Option<PathBuf>,
    /// Run everything, write nothing (no model, report or HTML).
    pub check: bool,
    /// Metrics and targets per output (`--metric`, `--min-fidelity`); any target makes a
    /// fidelity below it fail the run (exit 3).
    pub fidelity: crate::fidelity::FidelitySpec,
    /// The passes to run with their options; `None` is the default pipeline.
    pub passes: Option<Vec<PassSpec>>,
    /// Mixed precision (runs after cleanup in the default pipeline; `None` turns it off,
    /// e.g. `--no-precision`). A config file's pass list takes its options from here too.
    pub precision: Option<crate::passes::precision::pass::PrecisionConfig>,
    /// Scratchpad scheduling (runs after the other passes when set).
    pub schedule: Option<crate::passes::schedule::ScheduleConfig>,
    /// Runtime for validation: onnxruntime, the wgpu executor, or auto (ort, else wgpu).
    pub runtime: crate::runtime::select::RuntimeChoice,
    /// Forces the wgpu adapter whose name contains this.
    pub adapter: Option<String>,
    /// Text dumps of the IR after some passes (`--dump-ir-after`, `--dump-dir`).
    pub dump_ir: Option<IrDumpOptions>,
}

/// `--dump-ir-after PASS|all --dump-dir DIR`: after each pass named (or every pass), the IR's
/// stable text dump ([`crate::ir::dump::dump`]) is written to `DIR/NN-PASS.ir.txt`, NN the
/// pass's position in the run from 01. The folder is an output like any other (see
/// [`crate::output_policy`]): staged, and committed with the other outputs.
#[derive(Clone, Debug)]
pub struct IrDumpOptions {
    /// Pass names (of [`crate::passes::registry`]) or `all`.
    pub after: Vec<String>,
    pub dir: PathBuf,
}

impl IrDumpOptions {
    /// Whether the IR is dumped after the pass `name`.
    pub fn wants(&self, name: &str) -> bool {
        self.after.iter().any(|a| a == "all" || a == name)
    }

    /// The dump's file name after the pass at `position` (from 0).
    pub fn file_name(position: usize, name: &str) -> String {
        format!("{:02}-{name}.ir.txt", position + 1)
    }
}

impl PipelineOptions {
    /// Defaults for `optimize MODEL -o OUTPUT` with no other flags.
    pub fn new(model: impl Into<PathBuf>, output: impl Into<PathBuf>) -> PipelineOptions {
        let v = ValidationOptions::default();
        PipelineOptions {
            model: model.into(),
            output: output.into(),
            report: None,
            inputs: None,
            bindings: Bindings::new(),
            tolerance: v.tolerance,
            seed: v.seed,
            samples: v.samples,
            validate: true,
            html: None,
            check: false,
            fidelity: Default::default(),
            passes: None,
            precision: Some(Default::default()),
            schedule: None,
            runtime: v.runtime,
            adapter: v.adapter.clone(),
            dump_ir: None,
        }
    }
}

/// What a run produced. A validation failure still yields a report and a summary; the
/// optimized model is then not written, and [`PipelineOutcome::into_result`] is an error.
pub struct PipelineOutcome {
    pub report: Report,
    pub summary: String,
    pub failure: Option<Error>,
}

impl PipelineOutcome {
    pub fn into_result(self) -> Result<()> {
        match self.failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The pass manager for a config file's pass list (see [`crate::passes::registry`]): each
/// pass with its `[[pass]]` options, in order, checked against what each requires;
/// scheduling is appended when configured and not listed.
pub fn passes_from_specs(specs: &[PassSpec], settings: &PassSettings) -> Result<PassManager> {
    let list: Vec<(&str, &toml::Table)> = specs
        .iter()
        .map(|s| (s.name.as_str(), &s.options))
        .collect();
    registry::from_list(&list, settings)
}

/// Loads a model and runs shape inference with the given bindings.
pub fn load_and_infer(path: &Path, bindings: &Bindings) -> Result<Model> {
    let mut model = load_model(path)?;
    infer(&mut model, bindings).map_err(|e| Error::input(path, e))?;
    crate::onnx_io::limits::check_inferred(&model, path)?;
    Ok(model)
}

/// Flags of the files a run writes, as [`Outputs`] names them.
const OUT_MODEL: &str = "-o";
const OUT_DATA: &str = "-o's external data";
const OUT_REPORT: &str = "--report";
const OUT_HTML: &str = "--html";
const OUT_PLAN: &str = "--plan";
const OUT_DUMP: &str = "--dump-dir";

/// Checks every destination of the run before any work (see [`crate::output_policy`]).
/// With `--check` nothing is written: the model is staged in a private scratch folder.
fn plan_outputs(opts: &PipelineOptions) -> Result<Outputs> {
    let mut outs = Outputs::new(&opts.model);
    if opts.check {
        outs.add_scratch(OUT_MODEL, &opts.output)?;
        return Ok(outs);
    }
    outs.add_file(OUT_MODEL, &opts.output)?;
    let plan = opts.schedule.as_ref().and_then(|s| s.plan.as_ref());
    for (flag, path) in [
        (OUT_REPORT, opts.report.as_ref()),
        (OUT_HTML, opts.html.as_ref()),
        (OUT_PLAN, plan),
    ] {
        if let Some(p) = path {
            outs.add_file(flag, p)?;
        }
    }
    if let Some(d) = &opts.dump_ir {
        outs.add_folder(OUT_DUMP, &d.dir)?;
    }
    Ok(outs)
}

/// Adds `OUT.data` (the external data beside `-o`) as a destination, once.
fn add_data_output(opts: &PipelineOptions, outs: &mut Outputs) -> Result<()> {
    if opts.check || outs.staged(OUT_DATA).is_some() {
        return Ok(());
    }
    let mut data = opts.output.clone().into_os_string();
    data.push(".data");
    outs.add_file(OUT_DATA, Path::new(&data))?;
    Ok(())
}

/// Writes the model into its staging folder (and its external data beside it, a
/// destination of its own); returns the staged model file.
fn stage_model(model: &Model, opts: &PipelineOptions, outs: &mut Outputs) -> Result<PathBuf> {
    let export = ExportOptions::default();
    if writes_external_data(model, &export) {
        add_data_output(opts, outs)?;
    }
    let staged = outs
        .staged(OUT_MODEL)
        .ok_or_else(|| Error::Internal("the model has no staged path".into()))?
        .to_path_buf();
    save_model(model, &staged, &export)?;
    Ok(staged)
}

/// Writes the report, HTML and plan into their staging folders.
fn stage_side_outputs(
    report: &Report,
    plan: Option<&serde_json::Value>,
    outs: &Outputs,
) -> Result<()> {
    if let Some(p) = outs.staged(OUT_HTML) {
        crate::html::write_html(report, p)?;
    }
    if let Some(p) = outs.staged(OUT_REPORT) {
        report.write(p)?;
    }
    if let (Some(p), Some(plan)) = (outs.staged(OUT_PLAN), plan) {
        let text = serde_json::to_string_pretty(plan)
            .map_err(|e| Error::Internal(format!("plan JSON: {e}")))?;
        crate::report::write_atomic(p, text.as_bytes())?;
    }
    Ok(())
}

/// Writes the IR dump after the pass at `position` into the staged dump folder, when the
/// options ask for it.
fn dump_after(
    opts: &PipelineOptions,
    outs: &Outputs,
    position: usize,
    name: &str,
    model: &Model,
) -> Result<()> {
    let (Some(d), Some(dir)) = (&opts.dump_ir, outs.staged(OUT_DUMP)) else {
        return Ok(());
    };
    if !d.wants(name) {
        return Ok(());
    }
    let path = dir.join(IrDumpOptions::file_name(position, name));
    std::fs::write(&path, crate::ir::dump::dump(model)).map_err(|e| {
        Error::input(
            &path,
            format!("cannot write --dump-dir: {}", crate::error::io_reason(&e)),
        )
    })
}

/// Warns about the passes `--dump-ir-after` named that did not run.
fn warn_undumped(opts: &PipelineOptions, ran: &[&str]) {
    let Some(d) = &opts.dump_ir else { return };
    for name in d.after.iter().filter(|a| *a != "all") {
        if !ran.contains(&name.as_str()) {
            crate::progress::warn(&format!(
                "--dump-ir-after {name}: the pass did not run in this pipeline; nothing dumped"
            ));
        }
    }
}

/// What the passes left for the steps after them (read from their typed report sections,
/// not from the report's JSON).
#[derive(Default)]
struct PassFacts {
    /// A pass changed the numbers by design: validation judges fidelity.
    lossy: bool,
    calibration_dir: Option<PathBuf>,
    held_out_samples: Vec<String>,
    /// The plan for `--plan`.
    plan: Option<serde_json::Value>,
}

impl PassFacts {
    /// Moves every pass's section into the report and keeps what later steps need.
    fn collect(records: &mut [PassRecord], report: &mut Report) -> PassFacts {
        let mut facts = PassFacts::default();
        for section in records.iter_mut().filter_map(|r| r.section.take()) {
            let ReportSection {
                key,
                body,
                lossy,
                calibration_dir,
                held_out_samples,
                plan,
            } = section;
            facts.lossy |= lossy;
            if lossy {
                facts.calibration_dir = facts.calibration_dir.or(calibration_dir);
                if facts.held_out_samples.is_empty() {
                    facts.held_out_samples = held_out_samples;
                }
            }
            facts.plan = plan.or(facts.plan);
            report.sections.insert(key.into(), body);
        }
        facts
    }
}

/// Runs the passes the options ask for; fills the report's pass records and sections, and
/// writes the IR dumps into their staging folder.
fn run_passes(
    model: &mut Model,
    opts: &PipelineOptions,
    plans: &[crate::fidelity::OutputPlan],
    report: &mut Report,
    outs: &Outputs,
) -> Result<PassFacts> {
    // Calibration data is not validation data: without --inputs, part of it is held out.
    let precision = opts.precision.clone().map(|p| {
        let mut p = with_pass_options(p, opts);
        p.holdout = opts.inputs.is_none() && opts.validate;
        p.search = search_for(opts, &p, plans);
        p
    });
    let settings = PassSettings {
        precision,
        schedule: opts.schedule.clone(),
    };
    let passes = match &opts.passes {
        Some(specs) => passes_from_specs(specs, &settings)?,
        None => registry::default_list(&settings)?,
    };
    warn_undumped(opts, &passes.names());
    let mut records = passes.run_with(model, |position, name, m| {
        dump_after(opts, outs, position, name, m)
    })?;
    let facts = PassFacts::collect(&mut records, report);
    report.passes = records;
    Ok(facts)
}

/// The first budget the search probes: the default budget, where uniform int8 fits.
pub const SEARCH_START: f64 = 0.30;
/// The largest useful budget: every weight at fp16 fits in half the fp32 bytes.
pub const SEARCH_MAX: f64 = 0.5;
/// The search stops when the smallest passing and the largest failing budget are this close.
pub const SEARCH_TOLERANCE: f64 = 0.02;
/// The search's step from its first probe until the verdict flips.
pub const SEARCH_STEP: f64 = 0.025;

/// The fidelity-driven search, when it applies: mixed precision with `--calib`, no explicit
/// budget, and validation on. Each probe stages the candidate in a temporary folder and
/// validates it as the final model will be (same samples: `--inputs`, else the held-out
/// quarter of `--calib`; same metrics and targets).
fn search_for(
    opts: &PipelineOptions,
    cfg: &PrecisionConfig,
    plans: &[crate::fidelity::OutputPlan],
) -> Option<crate::passes::precision::pass::Search> {
    use crate::passes::precision::pass::{ProbeVerdict, Search};
    let calib = cfg.calib_dir.clone()?;
    if !opts.validate || cfg.budget_explicit {
        return None;
    }
    let vopts = ValidationOptions {
        inputs_dir: Some(opts.inputs.clone().unwrap_or(calib)),
        bindings: opts.bindings.clone(),
        seed: opts.seed,
        samples: opts.samples,
        tolerance: opts.tolerance,
        runtime: opts.runtime,
        adapter: opts.adapter.clone(),
        lossy: true,
        fidelity: plans.to_vec(),
        fidelity_enforced: true,
        fidelity_mode: "search probe".into(),
        min_fidelity: opts.fidelity.target_all,
        only_samples: None,
        holdout: opts
            .inputs
            .is_none()
            .then_some((cfg.seed, cfg.calib_samples)),
    };
    let original = opts.model.clone();
    let probe = move |m: &Model| -> Result<ProbeVerdict> {
        let dir = tempfile::tempdir()
            .map_err(|e| Error::Internal(format!("a folder for the search's probe: {e}")))?;
        let path = dir.path().join("probe.onnx");
        save_model(m, &path, &ExportOptions::default())?;
        let v = validate(&original, &path, m, &vopts)?;
        let outs: Vec<_> = v.fidelity.iter().flat_map(|f| &f.outputs).collect();
        // A probe passes on the conservative estimates (the final gate on the pooled
        // values): the smallest budget that barely passes a small held-out set is the one
        // most likely to miss on unseen data (see docs/fidelity.md).
        let robust = outs.iter().all(|o| o.conservative >= o.target);
        Ok(ProbeVerdict {
            passed: v.done && v.passed && robust,
            outputs: outs.iter().map(|o| (o.name.clone(), o.value)).collect(),
            conservative: outs
                .iter()
                .map(|o| (o.name.clone(), o.conservative))
                .collect(),
        })
    };
    Some(Search {
        probe: std::sync::Arc::new(probe),
        start: SEARCH_START,
        max: SEARCH_MAX,
        tolerance: SEARCH_TOLERANCE,
        step: SEARCH_STEP,
    })
}

/// `cfg` with the options of the pass list's `[[pass]] name = "precision"` entry applied,
/// as the pass will apply them (its calib, its budget decide whether the search runs and
/// what the gate does, as the same flags would). A bad option is reported when the pass
/// list is built.
fn with_pass_options(mut cfg: PrecisionConfig, opts: &PipelineOptions) -> PrecisionConfig {
    let spec = opts.passes.iter().flatten().find(|s| s.name == "precision");
    if let Some(spec) = spec {
        let _ = apply_precision_options(&mut cfg, &spec.options);
    }
    cfg
}

/// Whether a fidelity below target refuses the run, and why (see [`crate::fidelity::gate`]).
fn gate_mode(opts: &PipelineOptions, lossy: bool) -> (bool, String) {
    let precision = opts.precision.clone().unwrap_or_default();
    let budget_explicit = with_pass_options(precision, opts).budget_explicit;
    if opts.fidelity.has_targets() {
        (true, "refuses: --min-fidelity given".into())
    } else if lossy && !budget_explicit {
        (
            true,
            "refuses: mixed precision without an explicit budget (the search with --calib, else the default budget) at the default targets".into(),
        )
    } else if lossy {
        (
            false,
            "reports only: explicit --size-budget/--avg-bits without --min-fidelity".into(),
        )
    } else {
        (
            false,
            "reports only: lossless run without --min-fidelity (the tolerance decides)".into(),
        )
    }
}

/// The report's `inputs` section when a dynamic batch dimension was bound to 1.
fn batch_section(batch: &[crate::data::batch::BatchBinding]) -> serde_json::Value {
    let bound: Vec<serde_json::Value> = batch
        .iter()
        .map(|b| serde_json::json!({"input": b.input, "symbol": b.symbol, "bound_to": b.dims}))
        .collect();
    serde_json::json!({
        "batch_bound_to_1": bound,
        "note": "a dynamic batch dimension was bound to 1 (no --inputs, --calib or --input-shape says otherwise); pass --input-shape NAME=DIMS to choose another",
    })
}

/// What a finished validation means for the run: `Some` refuses it (nothing written but
/// the report and HTML). A fidelity below target with an explicit budget and no
/// `--min-fidelity` (not `enforced`), or a validation no runtime could do, only warns.
fn validation_failure(
    v: &crate::validate::ValidationReport,
    lossy: bool,
    enforced: bool,
    real_inputs: bool,
) -> Option<Error> {
    let below: Vec<String> = v
        .fidelity
        .iter()
        .flat_map(|f| f.failing())
        .map(|o| o.describe())
        .collect();
    if !v.done {
        // `--runtime auto` found no runtime able to run the models: reported as not
        // done (never as passed); the output is written as with --no-validate.
        crate::progress::warn(&format!(
            "validation not done: {}",
            v.fallback_reason.as_deref().unwrap_or("no runtime")
        ));
    } else if lossy && !below.is_empty() && !enforced {
        crate::progress::warn(&format!(
            "fidelity below target ({}); written anyway: an explicit --size-budget/--avg-bits is the contract (give --min-fidelity to refuse)",
            below.join("; ")
        ));
    } else if !v.passed && lossy {
        let hint = if real_inputs {
            "raise --size-budget, or lower --min-fidelity"
        } else {
            "raise --size-budget, pass --calib with real inputs, or lower --min-fidelity"
        };
        return Some(Error::Validation(format!(
            "fidelity of the mixed-precision output below target: {}; no output written ({hint})",
            below.join("; ")
        )));
    } else if !v.passed && v.tolerance_err > v.tolerance {
        return Some(Error::Validation(format!(
            "outputs differ by {:.3e} (relative to max(1,|x|)), above --tolerance {:.3e}; max_abs_err {:.3e}; no output written",
            v.tolerance_err, v.tolerance, v.max_abs_err
        )));
    } else if !v.passed {
        return Some(Error::Validation(format!(
            "fidelity below --min-fidelity: {}; no output written",
            below.join("; ")
        )));
    }
    None
}

/// Runs the whole default pipeline.
pub fn run_pipeline(opts: &PipelineOptions) -> Result<PipelineOutcome> {
    let mut outs = plan_outputs(opts)?;
    run_planned(opts, &mut outs).map_err(|e| outs.name_destinations(e))
}

/// [`run_pipeline`] once its outputs are planned.
fn run_planned(opts: &PipelineOptions, outs: &mut Outputs) -> Result<PipelineOutcome> {
    let loaded = load_model(&opts.model)?;
    // Without data, a dynamic batch dimension is bound to 1 (with a note).
    let no_data = opts.inputs.is_none()
        && opts
            .precision
            .as_ref()
            .and_then(|p| p.calib_dir.as_ref())
            .is_none();
    let batch = if no_data {
        crate::data::batch::batch_bindings(&loaded, &opts.bindings)
    } else {
        Vec::new()
    };
    let bound_opts;
    let opts = if batch.is_empty() {
        opts
    } else {
        let mut o = opts.clone();
        for b in &batch {
            o.bindings.insert(b.input.clone(), b.dims.clone());
        }
        bound_opts = o;
        &bound_opts
    };
    let mut model = loaded;
    infer(&mut model, &opts.bindings).map_err(|e| Error::input(&opts.model, e))?;
    crate::onnx_io::limits::check_inferred(&model, &opts.model)?;
    for f in &model.external_data_files {
        outs.protect("the input model's external data", f)?;
    }
    // The passes never enlarge the weights: a model that writes external data now is
    // checked for it before any work (a `.data` that would replace the input's, say).
    if writes_external_data(&model, &ExportOptions::default()) {
        add_data_output(opts, outs)?;
    }
    let mut report = Report::new(ModelSummary::of(&model, &opts.model));
    if !batch.is_empty() {
        report
            .sections
            .insert("inputs".into(), batch_section(&batch));
    }
    // Metrics are picked on the original graph, and bad output names refused before any work.
    let plans = if opts.validate {
        opts.fidelity.resolve(&model)?
    } else {
        Vec::new()
    };
    let facts = run_passes(&mut model, opts, &plans, &mut report, outs)?;
    // Quantized output is lossy by design: validation then checks fidelity, not tolerance.
    let lossy = facts.lossy;

    // The model is validated as staged, and moved into place only when everything passed.
    let staged = stage_model(&model, opts, outs)?;
    // Without --inputs, a quantized model is validated on its calibration inputs when it
    // had real ones: seeded random inputs say little about fidelity (a detector's map on
    // noise is near zero everywhere, so its cosine is noise too).
    let validation_dir = opts.inputs.clone().or(facts.calibration_dir.clone());
    // The held-out part of the calibration folder, when it was split (and validates here).
    let held_out =
        Some(facts.held_out_samples.clone()).filter(|h| !h.is_empty() && opts.inputs.is_none());
    let mut failure = None;
    if opts.validate {
        let (enforced, mode) = gate_mode(opts, lossy);
        let vopts = ValidationOptions {
            inputs_dir: validation_dir.clone(),
            bindings: opts.bindings.clone(),
            seed: opts.seed,
            samples: opts.samples,
            tolerance: opts.tolerance,
            runtime: opts.runtime,
            adapter: opts.adapter.clone(),
            lossy,
            fidelity: plans,
            fidelity_enforced: enforced,
            fidelity_mode: mode,
            min_fidelity: opts.fidelity.target_all,
            only_samples: held_out,
            holdout: None,
        };
        let mut v = validate(&opts.model, &staged, &model, &vopts)?;
        // Why `auto` left onnxruntime may name the staged file: name the destination.
        v.fallback_reason = v.fallback_reason.map(|s| {
            s.replace(
                &staged.display().to_string(),
                &opts.output.display().to_string(),
            )
        });
        failure = validation_failure(&v, lossy, enforced, validation_dir.is_some());
        report.validation = Some(v);
    }
    if !opts.check {
        if failure.is_none() {
            let mut written = ModelSummary::of(&model, &staged);
            written.path = opts.output.display().to_string();
            report.output = Some(written);
        }
        stage_side_outputs(&report, facts.plan.as_ref(), outs)?;
        // A validation failure writes the report and HTML (they say why), not the model.
        let ok = failure.is_none();
        // The IR dumps too: they help find why.
        outs.commit(|flag| ok || flag == OUT_REPORT || flag == OUT_HTML || flag == OUT_DUMP)?;
    }
    let summary = render_summary(&report, &opts.output);
    Ok(PipelineOutcome {
        report,
        summary,
        failure,
    })
}
