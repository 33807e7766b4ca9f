//! The default pipeline as a library API: import, shape inference, passes, export,
//! validation, report. The CLI is a thin layer over [`run_pipeline`].

use crate::error::{Error, Result};
use crate::ir::Model;
use crate::onnx_io::{load_model, save_model, ExportOptions};
use crate::pass_manager::PassManager;
use crate::passes::cleanup::Cleanup;
use crate::report::{ModelSummary, Report};
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

/// The passes of the default pipeline, in order.
pub fn default_passes() -> PassManager {
    let mut pm = PassManager::new();
    pm.add(Cleanup);
    pm
}

fn check_output_path(model: &Path, output: &Path) -> Result<PathBuf> {
    let dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(Error::input(
            output,
            "cannot write output: its folder does not exist",
        ));
    }
    if output.is_dir() {
        return Err(Error::input(output, "cannot write output: it is a folder"));
    }
    if let (Ok(a), Ok(b)) = (model.canonicalize(), output.canonicalize()) {
        if a == b {
            return Err(Error::input(
                output,
                "is the input model; refusing to overwrite the input",
            ));
        }
    }
    Ok(dir.to_path_buf())
}

/// Loads a model and runs shape inference with the given bindings.
pub fn load_and_infer(path: &Path, bindings: &Bindings) -> Result<Model> {
    let mut model = load_model(path)?;
    infer(&mut model, bindings).map_err(|e| Error::input(path, e))?;
    Ok(model)
}

/// Runs the whole default pipeline.
pub fn run_pipeline(opts: &PipelineOptions) -> Result<PipelineOutcome> {
    let out_dir = check_output_path(&opts.model, &opts.output)?;
    let mut model = load_and_infer(&opts.model, &opts.bindings)?;
    let mut report = Report::new(ModelSummary::of(&model, &opts.model));
    report.passes = default_passes().run(&mut model)?;

    // Stage the output in a private folder beside the destination, validate the staged
    // file, and only then move it (and its external data, if any) into place.
    let file_name = opts
        .output
        .file_name()
        .ok_or_else(|| Error::input(&opts.output, "output path has no file name"))?;
    let werr = |e: std::io::Error| Error::input(&opts.output, format!("cannot write output: {e}"));
    let stage = tempfile::Builder::new()
        .prefix(".optimize-")
        .tempdir_in(&out_dir)
        .map_err(werr)?;
    let staged = stage.path().join(file_name);
    save_model(&model, &staged, &ExportOptions::default())?;

    let mut failure = None;
    if opts.validate {
        let vopts = ValidationOptions {
            inputs_dir: opts.inputs.clone(),
            bindings: opts.bindings.clone(),
            seed: opts.seed,
            samples: opts.samples,
            tolerance: opts.tolerance,
        };
        let v = validate(&opts.model, &staged, &model, &vopts)?;
        if !v.passed {
            failure = Some(Error::Validation(format!(
                "outputs differ by {:.3e} (relative to max(1,|x|)), above --tolerance {:.3e}; max_abs_err {:.3e}; no output written",
                v.tolerance_err, v.tolerance, v.max_abs_err
            )));
        }
        report.validation = Some(v);
    }
    if failure.is_none() {
        for entry in std::fs::read_dir(stage.path()).map_err(werr)? {
            let entry = entry.map_err(werr)?;
            std::fs::rename(entry.path(), out_dir.join(entry.file_name())).map_err(werr)?;
        }
        report.output = Some(ModelSummary::of(&model, &opts.output));
    }
    if let Some(path) = &opts.report {
        report.write(path)?;
    }
    let summary = render_summary(&report, &opts.output);
    Ok(PipelineOutcome {
        report,
        summary,
        failure,
    })
}
