//! The settings of one run, as the command line's flags and `optimize.toml`'s keys both
//! give them, and a pass list's entry (`PassSpec`). The CLI, the config file reader
//! and the value checks all read these types; none of them is read by this module, so the
//! app layer has no import cycle.

use serde::Deserialize;
use std::path::PathBuf;

/// One pass of the pipeline with its options (everything but `name`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct PassSpec {
    pub name: String,
    #[serde(flatten)]
    pub options: toml::Table,
}

/// The flags of a run (`optimize MODEL -o OUT …`); `optimize.toml` fills those not given.
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
    /// What mixed precision optimizes: error (least error within the budget) or speed
    /// (fastest on this machine within the size budget, or, with --calib and no budget,
    /// within the fidelity target), by a latency model measured here [default: error].
    #[arg(long, value_name = "error|speed")]
    pub objective: Option<String>,
    /// Predicted time at most this fraction of fp32's, by the latency model measured here
    /// (e.g. 0.5); the least error within it.
    #[arg(long, value_name = "FRACTION", allow_negative_numbers = true)]
    pub latency_budget: Option<f64>,
    /// The target's onnxruntime intra-op threads, for the latency model [default: all cores].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
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
    pub passes: Option<Vec<PassSpec>>,
    /// The config file that was read, if any.
    #[arg(skip)]
    pub config_used: Option<PathBuf>,
}
