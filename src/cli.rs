//! Command-line interface: `optimize MODEL -o OUT` and `optimize inspect MODEL`.

use crate::data::inputs::parse_input_shapes;
use crate::error::{Error, Result};
use crate::inspect::inspect_text;
use crate::pipeline::{run_pipeline, PipelineOptions};
use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;

const AFTER_HELP: &str = "Exit codes: 0 success, 1 internal error, 2 bad input (model, flags, data, output path), \
3 validation failed (outputs differ beyond --tolerance), 4 onnxruntime unavailable or refused the model.";

/// Optimize an ONNX model: import, clean up, export, and validate on onnxruntime.
#[derive(Parser, Debug)]
#[command(name = "optimize", version, after_help = AFTER_HELP, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
    /// Largest size any tensor (or all constants together) may declare, and any file read
    /// may have, e.g. 8G, 512M (at most this machine's memory); larger models are refused
    /// before anything is allocated.
    #[arg(long, global = true, value_name = "SIZE", default_value = "8G", value_parser = crate::onnx_io::limits::parse_max_memory)]
    pub max_memory: u64,
}

#[derive(clap::Args, Debug, Default)]
pub struct RunArgs {
    /// The model to optimize (never modified).
    pub model: Option<PathBuf>,
    /// Where to write the optimized model (written to a temporary file, then renamed).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Write a JSON report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Validation inputs: a folder of .npy/.pb samples (e.g. a model's test_data_set_0).
    #[arg(long)]
    pub inputs: Option<PathBuf>,
    /// Bind symbolic input dims, e.g. `x=1x3x224x224` (repeatable).
    #[arg(long = "input-shape", value_name = "NAME=DIMS")]
    pub input_shape: Vec<String>,
    /// Largest allowed |a − b| / max(1, |a|) between original and optimized outputs [default: 1e-4].
    #[arg(long, allow_negative_numbers = true)]
    pub tolerance: Option<f64>,
    /// Seed for random validation inputs [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    pub seed: Option<u64>,
    /// Number of random validation samples when --inputs is not given [default: 2].
    #[arg(long, allow_negative_numbers = true)]
    pub samples: Option<usize>,
    /// Skip validation on onnxruntime.
    #[arg(long)]
    pub no_validate: bool,
    /// Runtime for validation: onnxruntime, the wgpu executor, or auto (onnxruntime, falling
    /// back to wgpu when it cannot be loaded or refuses the model).
    #[arg(long, value_enum, default_value = "auto")]
    pub runtime: crate::runtime::select::RuntimeChoice,
    /// Force the wgpu adapter whose name contains this (case-insensitive), e.g. `llvmpipe`.
    #[arg(long, value_name = "NAME")]
    pub adapter: Option<String>,
    /// Write a self-contained HTML report with pictures here.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Run everything but write nothing; exit 3 when fidelity is below --min-fidelity.
    #[arg(long)]
    pub check: bool,
    /// Target fidelity: `F` for every output or `OUTPUT=F` for one (repeatable), in the
    /// output's metric (a rate or cosine; dB for snr) [default: 0.99; 20 dB for snr]. Given,
    /// a run whose pooled fidelity is below it fails (exit 3); see docs/fidelity.md.
    #[arg(long, value_name = "[OUTPUT=]F", allow_negative_numbers = true)]
    pub min_fidelity: Vec<String>,
    /// Task metric: `NAME` for every output or `OUTPUT=NAME` for one (repeatable): top1,
    /// topk:K, cosine, iou:T, snr or auto (top1 for class scores, else cosine) [default: auto].
    #[arg(long, value_name = "[OUTPUT=]NAME")]
    pub metric: Vec<String>,
    /// Read settings from this file instead of `optimize.toml` beside the model.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Ignore any `optimize.toml` beside the model.
    #[arg(long, conflicts_with = "config")]
    pub no_config: bool,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
    /// Calibration inputs for mixed precision: a folder of .npy/.pb samples (real data).
    /// Without it, only weight-only formats are offered (fp16, int8/int4 weights decoded
    /// at load, MatMulNBits, quantized embedding tables): no activation range from noise.
    #[arg(long, value_name = "DIR")]
    pub calib: Option<PathBuf>,
    /// Without --calib, calibrate int8 activation ranges on seeded random inputs anyway
    /// (may be far from real data; a warning is printed).
    #[arg(long)]
    pub calib_random: bool,
    /// Activation range estimate: minmax, percentile (99.99) or percentile:P [default: minmax].
    #[arg(long, value_name = "METHOD")]
    pub calib_method: Option<String>,
    /// Weight bytes after mixed precision, as a fraction of the fp32 weight bytes
    /// (initializers and Constant tensors) [default: 0.3].
    #[arg(long, value_name = "FRACTION", allow_negative_numbers = true)]
    pub size_budget: Option<f64>,
    /// Budget as mean bits per quantizable weight instead of --size-budget, e.g. 6.
    #[arg(long, value_name = "BITS", allow_negative_numbers = true)]
    pub avg_bits: Option<f64>,
    /// Seconds for the mixed-precision ILP; its incumbent is used when it runs out [default: 20].
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub precision_time_limit: Option<f64>,
    /// Keep every operator's precision (no mixed-precision pass; lossless output).
    #[arg(long)]
    pub no_precision: bool,
    /// Scratchpad (on-chip memory) size, e.g. 512KiB: runs the scheduling pass.
    #[arg(long, value_name = "SIZE")]
    pub scratchpad: Option<String>,
    /// Accelerator target (TOML: scratchpad, alignment, bandwidth, weights_in_scratchpad).
    #[arg(long, value_name = "FILE")]
    pub target: Option<PathBuf>,
    /// Write the scratchpad memory plan (offsets, lifetimes, spills, reloads) here.
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Scheduling mode: auto, fixed, min-peak, free or windows [default: auto].
    #[arg(long, value_name = "MODE")]
    pub schedule_mode: Option<String>,
    /// Seconds for the scheduling ILP solves together [default: 60].
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub schedule_time_limit: Option<f64>,
    /// Keep weights in the scratchpad too (overrides the target file).
    #[arg(long)]
    pub weights_in_scratchpad: bool,
    /// Fused-layer tiling: auto (tile when the scratchpad is below M_R), on (also above
    /// M_R, keeping the cheaper plan), off (never; below M_R is an error) [default: auto].
    #[arg(long, value_name = "MODE")]
    pub tiling: Option<String>,
    /// Write the IR's text dump after this pass (cleanup, precision, schedule) or after
    /// `all`, as `NN-PASS.ir.txt` in --dump-dir (NN: the pass's position in the run);
    /// repeatable or comma-separated.
    #[arg(long, value_name = "PASS|all", value_delimiter = ',')]
    pub dump_ir_after: Vec<String>,
    /// The folder --dump-ir-after writes into (created when missing; written with the
    /// other outputs, only when the run succeeds or fails validation).
    #[arg(long, value_name = "DIR")]
    pub dump_dir: Option<PathBuf>,
    /// The pipeline's passes, from a config file (the default pipeline when absent).
    #[arg(skip)]
    pub passes: Option<Vec<crate::config::PassSpec>>,
    /// The config file that was read, if any.
    #[arg(skip)]
    pub config_used: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show op histogram, parameters, inputs/outputs, opsets and IR version.
    Inspect {
        model: PathBuf,
        /// Print the full IR dump with inferred types.
        #[arg(long)]
        ir: bool,
        /// Bind symbolic input dims, e.g. `x=1x3x224x224` (repeatable).
        #[arg(long = "input-shape", value_name = "NAME=DIMS")]
        input_shape: Vec<String>,
    },
    /// Explain a prediction with operator-level LRP: per-operator relevance table, input
    /// relevance as .npy, heatmap PNGs for image inputs.
    Explain(Box<crate::passes::relevance::explain::ExplainArgs>),
}

/// Runs the CLI on `args` and returns the process exit code.
pub fn run(args: impl IntoIterator<Item = OsString>) -> i32 {
    let cli = match parse(args) {
        Ok(c) => c,
        Err((0, text)) => {
            println!("{text}");
            return 0;
        }
        Err((code, text)) => {
            eprintln!("{text}");
            return code;
        }
    };
    crate::heap::keep_freed_memory();
    crate::onnx_io::limits::set_max_memory(cli.max_memory);
    crate::interrupt::install();
    // A panic anywhere is a bug: report it as one line and exit 1, never as a crash dump.
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(|| dispatch(cli)).unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(Error::Internal(msg))
    });
    match result {
        Ok(()) => {
            for w in crate::progress::take_warnings() {
                eprintln!("warning: {w}");
            }
            0
        }
        Err(e) => {
            eprintln!("error: {}", crate::error::one_line(&e.to_string()));
            e.exit_code()
        }
    }
}

/// Parses a command line. A parsing error comes back as its exit code and its text: one
/// line for a usage error (exit 2); help and version as clap renders them (exit 0).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> std::result::Result<Cli, (i32, String)> {
    use clap::error::ErrorKind;
    Cli::try_parse_from(args).map_err(|e| {
        if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
            (0, e.to_string().trim_end().to_string())
        } else {
            (2, clap_one_line(&e.to_string()))
        }
    })
}

/// clap's rendered error (message, tips, usage, a pointer to --help on several lines) as
/// one line: the message, its tips, and which `--help` to read.
pub fn clap_one_line(rendered: &str) -> String {
    let mut lines = rendered.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("error: invalid arguments");
    let mut out = if first.starts_with("error:") {
        first.to_string()
    } else {
        format!("error: {first}")
    };
    let mut command = "optimize".to_string();
    for l in lines {
        if let Some(tip) = l.strip_prefix("tip:") {
            out.push_str(&format!(" (tip: {})", tip.trim()));
        } else if let Some(usage) = l.strip_prefix("Usage:") {
            command = usage
                .split_whitespace()
                .take_while(|w| !w.starts_with(['[', '<', '-']))
                .collect::<Vec<_>>()
                .join(" ");
        }
    }
    out.push_str(&format!("; see '{command} --help'"));
    crate::error::one_line(&out)
}

fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Some(Command::Inspect {
            model,
            ir,
            input_shape,
        }) => {
            let bindings = parse_input_shapes(&input_shape)?;
            print!("{}", inspect_text(&model, ir, &bindings)?);
            Ok(())
        }
        Some(Command::Explain(args)) => crate::passes::relevance::explain::run_cli(*args),
        None => {
            let (opts, quiet) = run_options(cli.run)?;
            let outcome = run_pipeline(&opts)?;
            if !quiet {
                print!("{}", outcome.summary);
            }
            outcome.into_result()
        }
    }
}

/// The checked options of `optimize MODEL …` (flags checked, the config file merged and
/// checked, every value parsed) and whether the run is `--quiet`; nothing is read but the
/// config and target files. The fuzz target `cli_args` drives this.
pub fn run_options(run: RunArgs) -> Result<(PipelineOptions, bool)> {
    let model = run
        .model
        .clone()
        .ok_or_else(|| Error::Usage("no model given; usage: optimize MODEL -o OUT".into()))?;
    crate::value_checks::check_run_flags(&run)?;
    let a = crate::config::merge_config_file(run, &model)?;
    crate::progress::set_quiet(a.quiet);
    if a.no_validate && !a.min_fidelity.is_empty() {
        return Err(Error::Usage(
            "--min-fidelity needs validation: drop --no-validate (or the target)".into(),
        ));
    }
    let output = match (a.output.clone(), a.check) {
        (Some(o), _) => o,
        // --check writes nothing; the output path only names the staged file.
        (None, true) => PathBuf::from("optimize-check.onnx"),
        (None, false) => {
            return Err(Error::Usage(
                "no output given; usage: optimize MODEL -o OUT".into(),
            ))
        }
    };
    let defaults = PipelineOptions::new(&model, &output);
    let precision = precision_config(&a, defaults.seed)?;
    let dump_ir = dump_ir_options(&a)?;
    let opts = PipelineOptions {
        report: a.report,
        inputs: a.inputs,
        bindings: parse_input_shapes(&a.input_shape)?,
        tolerance: a.tolerance.unwrap_or(defaults.tolerance),
        seed: a.seed.unwrap_or(defaults.seed),
        samples: a.samples.unwrap_or(defaults.samples),
        validate: !a.no_validate,
        runtime: a.runtime,
        adapter: a.adapter,
        html: a.html,
        check: a.check,
        fidelity: crate::fidelity::FidelitySpec::parse(&a.metric, &a.min_fidelity).map_err(
            |e| crate::value_checks::flag_error(&format!("--{}", e.key), e.value, e.why),
        )?,
        passes: a.passes,
        precision,
        schedule: crate::passes::schedule::tiling_mode::apply(
            crate::passes::schedule::ScheduleConfig::from_flags(
                a.scratchpad.as_deref(),
                a.target.as_deref(),
                a.schedule_mode.as_deref(),
                a.schedule_time_limit,
                a.weights_in_scratchpad,
                a.plan,
            )?,
            a.tiling.as_deref(),
        )?,
        dump_ir,
        ..defaults
    };
    Ok((opts, a.quiet))
}

/// `--dump-ir-after PASS --dump-dir DIR` (the flags or the config file's keys): both or
/// neither, and never with `--check`, which writes nothing.
fn dump_ir_options(a: &RunArgs) -> Result<Option<crate::pipeline::IrDumpOptions>> {
    match (a.dump_ir_after.is_empty(), &a.dump_dir) {
        (true, None) => Ok(None),
        (true, Some(_)) => Err(Error::Usage(
            "--dump-dir needs --dump-ir-after PASS (or all)".into(),
        )),
        (false, None) => Err(Error::Usage(
            "--dump-ir-after needs --dump-dir DIR, the folder the dumps go to".into(),
        )),
        (false, Some(_)) if a.check => Err(Error::Usage(
            "--check writes nothing; drop --dump-ir-after/--dump-dir".into(),
        )),
        (false, Some(dir)) => Ok(Some(crate::pipeline::IrDumpOptions {
            after: a.dump_ir_after.clone(),
            dir: dir.clone(),
        })),
    }
}

/// The mixed-precision settings of a run (`None` with `--no-precision`).
fn precision_config(
    a: &RunArgs,
    default_seed: u64,
) -> Result<Option<crate::passes::precision::pass::PrecisionConfig>> {
    if a.no_precision {
        if a.calib.is_some() || a.calib_random || a.size_budget.is_some() || a.avg_bits.is_some() {
            return Err(Error::Usage(
                "--no-precision turns mixed precision off; drop --calib/--calib-random/--size-budget/--avg-bits"
                    .into(),
            ));
        }
        return Ok(None);
    }
    if a.calib_random && a.calib.is_some() {
        return Err(Error::Usage(
            "--calib-random is for runs without calibration data; drop it or --calib".into(),
        ));
    }
    let mut cfg = crate::passes::precision::pass::PrecisionConfig::default();
    if let Some(b) = crate::pipeline::parse_budget(a.size_budget, a.avg_bits)? {
        cfg.budget = b;
    }
    if let Some(m) = &a.calib_method {
        cfg.calib_method = crate::pipeline::parse_calib_method(m)?;
    }
    if let Some(t) = a.precision_time_limit {
        cfg.time_limit_s = t;
    }
    if let Some(dir) = &a.calib {
        crate::data::inputs::check_folder(dir, "calibration folder")?;
    }
    cfg.budget_explicit = a.size_budget.is_some() || a.avg_bits.is_some();
    cfg.explicit = a.calib.is_some()
        || cfg.budget_explicit
        || a.calib_random
        || a.calib_method.is_some()
        || a.precision_time_limit.is_some();
    cfg.calib_dir = a.calib.clone();
    cfg.calib_random = a.calib_random;
    cfg.seed = a.seed.unwrap_or(default_seed);
    Ok(Some(cfg))
}
