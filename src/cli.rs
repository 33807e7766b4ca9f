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
    /// Largest allowed |a − b| / max(1, |a|) between original and optimized outputs.
    #[arg(long, default_value_t = 1e-4)]
    pub tolerance: f64,
    /// Seed for random validation inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Number of random validation samples when --inputs is not given.
    #[arg(long, default_value_t = 2)]
    pub samples: usize,
    /// Skip validation on onnxruntime.
    #[arg(long)]
    pub no_validate: bool,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
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
}

/// Runs the CLI on `args` and returns the process exit code.
pub fn run(args: impl IntoIterator<Item = OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
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
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
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
        None => {
            let a = cli.run;
            let model = a.model.ok_or_else(|| {
                Error::Usage("no model given; usage: optimize MODEL -o OUT".into())
            })?;
            let output = a.output.ok_or_else(|| {
                Error::Usage("no output given; usage: optimize MODEL -o OUT".into())
            })?;
            let opts = PipelineOptions {
                model,
                output,
                report: a.report,
                inputs: a.inputs,
                bindings: parse_input_shapes(&a.input_shape)?,
                tolerance: a.tolerance,
                seed: a.seed,
                samples: a.samples,
                validate: !a.no_validate,
            };
            let outcome = run_pipeline(&opts)?;
            if !a.quiet {
                print!("{}", outcome.summary);
            }
            outcome.into_result()
        }
    }
}
