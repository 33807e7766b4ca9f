//! Command-line interface: `optimize MODEL -o OUT` and `optimize inspect MODEL`.

use crate::data::inputs::parse_input_shapes;
use crate::error::{Error, Result};
use crate::inspect::inspect_text;
use crate::pipeline::{run_pipeline, PipelineOptions};
pub use crate::run_args::RunArgs;
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
    Explain(Box<crate::explain::ExplainArgs>),
    /// List the passes a run or optimize.toml can name: what each does, its options, what
    /// it requires and ensures, and whether the default pipeline runs it.
    Passes,
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
        Some(Command::Explain(args)) => crate::explain::run_cli(*args),
        Some(Command::Passes) => {
            print!("{}", crate::pass_catalog::catalog_text());
            Ok(())
        }
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

/// The mixed-precision settings of a run (`None` with `--no-precision`): the flags (and
/// the config file's keys, already merged into them) as the pass reads them.
fn precision_config(
    a: &RunArgs,
    default_seed: u64,
) -> Result<Option<crate::passes::precision::pass::PrecisionConfig>> {
    let cfg = crate::passes::precision::options::PrecisionFlags {
        off: a.no_precision,
        size_budget: a.size_budget,
        avg_bits: a.avg_bits,
        calib: a.calib.clone(),
        calib_random: a.calib_random,
        calib_method: a.calib_method.clone(),
        time_limit_s: a.precision_time_limit,
        seed: a.seed.unwrap_or(default_seed),
        objective: a.objective.clone(),
        latency_budget: a.latency_budget,
        threads: a.threads,
    }
    .config()?;
    if let Some(dir) = cfg.as_ref().and_then(|c| c.calib_dir.as_ref()) {
        crate::data::inputs::check_folder(dir, "calibration folder")?;
    }
    Ok(cfg)
}
