//! `optimize explain`: relevance of every input sample, saved as .npy (and a heatmap PNG
//! for image inputs), a per-operator table, and the report's `relevance` section.

use crate::data::inputs::sanitize_file_name;
use crate::data::{load_input_dir, require_finite, write_npy, HostTensor, RandomSamples};
use crate::error::{Error, Result};
use crate::output_policy::Outputs;
use crate::passes::relevance::activations::Collector;
use crate::passes::relevance::config::{Rule, RuleConfig};
use crate::passes::relevance::heatmap::{is_image, write_heatmap};
use crate::passes::relevance::scores::{summarize, RelevanceSummary};
use crate::passes::relevance::sweep::SampleRelevance;
use crate::passes::relevance::sweep::{explain_with, Target};
use crate::pipeline::load_and_infer;
use crate::report::{ModelSummary, Report};
use crate::shape::Bindings;
use crate::validate::input_specs;
use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// What `optimize explain` was asked to do.
#[derive(Clone, Debug)]
pub struct ExplainOptions {
    pub model: PathBuf,
    /// Input samples; seeded random inputs when `None`.
    pub inputs: Option<PathBuf>,
    pub bindings: Bindings,
    pub target: Target,
    pub cfg: RuleConfig,
    pub strict: bool,
    /// Where relevance files go; nothing is written when `None`.
    pub out: Option<PathBuf>,
    pub report: Option<PathBuf>,
    /// Write an HTML report (relevance per operator along the graph) here.
    pub html: Option<PathBuf>,
    pub seed: u64,
    pub samples: usize,
}

/// The result: the summary and the text to print.
pub struct ExplainOutcome {
    pub summary: RelevanceSummary,
    pub text: String,
    pub written: Vec<PathBuf>,
}

/// Applies `--preset`, `--conv-rule`, `--linear-rule`, `--epsilon` to a rule config.
pub fn rule_config(
    preset: &str,
    conv: Option<&str>,
    linear: Option<&str>,
    eps: Option<f64>,
) -> Result<RuleConfig> {
    let mut cfg = RuleConfig::preset(preset).map_err(Error::Usage)?;
    if let Some(c) = conv {
        cfg.conv = Rule::parse(c).map_err(|e| Error::Usage(format!("--conv-rule: {e}")))?;
    }
    if let Some(l) = linear {
        cfg.linear = Rule::parse(l).map_err(|e| Error::Usage(format!("--linear-rule: {e}")))?;
    }
    if let Some(e) = eps {
        if !(e >= 0.0 && e.is_finite()) {
            return Err(Error::Usage(format!("--epsilon {e}: must be ≥ 0")));
        }
        // An explicit absolute ε replaces the preset's relative one.
        cfg.eps = e;
        cfg.eps_rel = 0.0;
    }
    Ok(cfg)
}

fn to_f32_tensor(r: &crate::passes::relevance::tensor::T) -> HostTensor {
    let v: Vec<f32> = r.iter().map(|&x| x as f32).collect();
    HostTensor::from_f32(r.shape().to_vec(), &v)
}

/// Most samples one explanation runs (each keeps its per-operator table until the end).
pub const MAX_EXPLAIN_SAMPLES: usize = 10_000;

/// Flags of the files explain writes, as [`Outputs`] names them.
const OUT_DIR: &str = "--out";
const OUT_REPORT: &str = "--report";
const OUT_HTML: &str = "--html";

/// Checks every destination before any work (see [`crate::output_policy`]).
fn plan_outputs(opts: &ExplainOptions) -> Result<Outputs> {
    let mut outs = Outputs::new(&opts.model);
    if let Some(out) = &opts.out {
        outs.add_folder(OUT_DIR, out)?;
    }
    for (flag, path) in [(OUT_REPORT, &opts.report), (OUT_HTML, &opts.html)] {
        if let Some(p) = path {
            outs.add_file(flag, p)?;
        }
    }
    Ok(outs)
}

/// Writes one sample's input relevance (and heatmaps) into the staged `--out` folder.
fn write_sample_files(staged: &Path, id: &str, r: &SampleRelevance) -> Result<()> {
    let stem = sanitize_file_name(id.trim_end_matches(".npy").trim_end_matches(".pb"));
    for (name, rel) in &r.inputs {
        let base = format!("{stem}.{}", sanitize_file_name(name));
        write_npy(
            &staged.join(format!("{base}.relevance.npy")),
            &to_f32_tensor(rel),
        )?;
        if is_image(rel.shape()) {
            write_heatmap(&staged.join(format!("{base}.heatmap.png")), rel)?;
        }
    }
    Ok(())
}

/// Runs the explanation over all samples. Nothing is written unless every sample was
/// explained: the files are staged and moved into place together at the end.
pub fn run_explain(opts: &ExplainOptions) -> Result<ExplainOutcome> {
    if opts.inputs.is_none() && !(1..=MAX_EXPLAIN_SAMPLES).contains(&opts.samples) {
        return Err(Error::Usage(format!(
            "--samples {}: expected 1 to {MAX_EXPLAIN_SAMPLES}",
            opts.samples
        )));
    }
    let mut outs = plan_outputs(opts)?;
    explain_planned(opts, &mut outs).map_err(|e| outs.name_destinations(e))
}

/// [`run_explain`] once its outputs are planned.
fn explain_planned(opts: &ExplainOptions, outs: &mut Outputs) -> Result<ExplainOutcome> {
    let model = load_and_infer(&opts.model, &opts.bindings)?;
    for f in &model.external_data_files {
        outs.protect("the input model's external data", f)?;
    }
    let specs = input_specs(&model, &opts.bindings).map_err(|e| match e {
        Error::Usage(m) => Error::input(&opts.model, m),
        other => other,
    })?;
    let loaded = match &opts.inputs {
        Some(dir) => {
            let s = load_input_dir(dir, &specs)?;
            require_finite(dir, &s, "relevance")?;
            Some(s)
        }
        None => None,
    };
    let random = match loaded {
        Some(_) => None,
        None => Some(RandomSamples::new(&specs, opts.seed)?),
    };
    let count = loaded.as_ref().map_or(opts.samples, Vec::len);
    let mut results = Vec::with_capacity(count);
    let progress = crate::progress::bar("relevance", count as u64, "samples");
    // One session for all samples.
    let mut collector = Collector::for_config(&model, &opts.cfg)?;
    for i in 0..count {
        let s = match (&loaded, &random) {
            (Some(l), _) => Cow::Borrowed(&l[i]),
            (None, Some(g)) => Cow::Owned(g.sample(i)),
            (None, None) => return Err(Error::Internal("no samples to explain".into())),
        };
        progress.set_message(s.id.clone());
        let r = collector
            .run(&s.values)
            .and_then(|acts| explain_with(&model, &acts, &opts.target, &opts.cfg, opts.strict));
        progress.inc(1);
        let mut r = r?;
        if let Some(staged) = outs.staged(OUT_DIR) {
            write_sample_files(staged, &s.id, &r)?;
        }
        // Only the sums of the input relevance are summarized: keep those, not the arrays.
        for (_, rel) in r.inputs.iter_mut() {
            *rel = crate::passes::relevance::tensor::T::from_elem(ndarray::IxDyn(&[1]), rel.sum());
        }
        results.push(r);
    }
    progress.finish_and_clear();
    let summary = summarize(&results);
    let section = summary.to_json(&opts.cfg.preset);
    if opts.report.is_some() || opts.html.is_some() {
        let mut report = Report::new(ModelSummary::of(&model, &opts.model));
        report.sections.insert("relevance".into(), section);
        if let Some(p) = outs.staged(OUT_REPORT) {
            report.write(p)?;
        }
        if let Some(p) = outs.staged(OUT_HTML) {
            crate::html::write_html(&report, p)?;
        }
    }
    let written = outs.commit(|_| true)?;
    let mut text = format!(
        "explained {} sample(s) of {} with preset '{}' (conv {}, linear {}, ε {:e} + {}·std(z))\n",
        count,
        opts.model.display(),
        opts.cfg.preset,
        opts.cfg.conv,
        opts.cfg.linear,
        opts.cfg.eps,
        opts.cfg.eps_rel
    );
    text.push_str(&summary.table(25));
    for p in &written {
        text.push_str(&format!("wrote {}\n", p.display()));
    }
    Ok(ExplainOutcome {
        summary,
        text,
        written,
    })
}

/// `optimize explain` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ExplainArgs {
    /// The model to explain (never modified).
    pub model: PathBuf,
    /// Input samples: a folder of .npy/.pb files (one sample per file or per subfolder).
    /// Without it, seeded random inputs are used.
    #[arg(long)]
    pub inputs: Option<PathBuf>,
    /// Flat index of the output element to explain (default: the argmax).
    #[arg(long, allow_negative_numbers = true)]
    pub target: Option<usize>,
    /// The output to explain (default: the first float output).
    #[arg(long = "target-output")]
    pub target_output: Option<String>,
    /// Bind symbolic input dims, e.g. `x=1x3x224x224` (repeatable).
    #[arg(long = "input-shape", value_name = "NAME=DIMS")]
    pub input_shape: Vec<String>,
    /// Folder for the input relevance (.npy) and heatmaps (.png).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write a JSON report with a `relevance` section here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write a self-contained HTML report with relevance per operator here.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Rule preset. auto (default): γ = 0.25 on convolutions, ε on dense layers, a
    /// stabilizer of 0.25·std(z) per layer, AttnLRP on softmax when the graph has
    /// attention; faithful on deep CNNs. Others: epsilon (ε = 1e-9 everywhere), lrp0, cnn,
    /// transformer, uniform.
    #[arg(long, default_value = "auto")]
    pub preset: String,
    /// Rule for Conv/ConvTranspose: epsilon, gamma[:G], zplus, alphabeta[:A:B], identity.
    #[arg(long = "conv-rule")]
    pub conv_rule: Option<String>,
    /// Rule for Gemm/MatMul with a constant operand.
    #[arg(long = "linear-rule")]
    pub linear_rule: Option<String>,
    /// Rule for a Conv reading a model input directly, e.g. `zbox:-1:1` (the pixel range
    /// after preprocessing); default: the conv rule.
    #[arg(long = "first-conv-rule")]
    pub first_conv_rule: Option<String>,
    /// Absolute stabilizer ε; replaces the preset's relative one.
    #[arg(long, allow_negative_numbers = true)]
    pub epsilon: Option<f64>,
    /// Relative stabilizer: ε = E·std(z) per layer (added to --epsilon).
    #[arg(
        long = "relative-epsilon",
        value_name = "E",
        allow_negative_numbers = true
    )]
    pub relative_epsilon: Option<f64>,
    /// Fail on an operator without a rule instead of splitting relevance evenly.
    #[arg(long)]
    pub strict: bool,
    /// Seed for random inputs.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub seed: u64,
    /// Number of random samples when --inputs is not given (1 to 10000).
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub samples: usize,
}

/// Runs `optimize explain` and prints its table.
pub fn run_cli(a: ExplainArgs) -> Result<()> {
    let outcome = run_explain(&options(a)?)?;
    print!("{}", outcome.text);
    Ok(())
}

/// The checked options of `optimize explain` (nothing is read). The fuzz target
/// `cli_args` drives this.
pub fn options(a: ExplainArgs) -> Result<ExplainOptions> {
    if a.inputs.is_none() && !(1..=MAX_EXPLAIN_SAMPLES).contains(&a.samples) {
        return Err(Error::Usage(format!(
            "--samples {}: expected 1 to {MAX_EXPLAIN_SAMPLES}",
            a.samples
        )));
    }
    let first_conv = match a.first_conv_rule.as_deref() {
        Some(r) => {
            Some(Rule::parse(r).map_err(|e| Error::Usage(format!("--first-conv-rule: {e}")))?)
        }
        None => None,
    };
    let opts = ExplainOptions {
        model: a.model,
        inputs: a.inputs,
        bindings: crate::data::parse_input_shapes(&a.input_shape)?,
        target: Target {
            output: a.target_output,
            index: a.target,
        },
        cfg: rule_config(
            &a.preset,
            a.conv_rule.as_deref(),
            a.linear_rule.as_deref(),
            a.epsilon,
        )
        .and_then(|mut c| {
            c.first_conv = first_conv.or(c.first_conv);
            if let Some(e) = a.relative_epsilon {
                if !(e >= 0.0 && e.is_finite()) {
                    return Err(Error::Usage(format!("--relative-epsilon {e}: must be ≥ 0")));
                }
                c.eps_rel = e;
            }
            Ok(c)
        })?,
        strict: a.strict,
        out: a.out,
        report: a.report,
        html: a.html,
        seed: a.seed,
        samples: a.samples,
    };
    Ok(opts)
}
