//! `optimize.toml`: settings for a pipeline step, so that a build step is one short command.
//!
//! The file beside the model (or `--config FILE`) gives defaults; flags on the command line
//! win. Paths in the file are relative to the file's folder. Example:
//!
//! ```toml
//! output = "model.opt.onnx"
//! report = "report.json"
//! html = "report.html"
//! input-shape = ["x=1x3x48x192"]
//! tolerance = 1e-4
//! min-fidelity = 0.999        # or a list: ["0.99", "prob=0.98"] (see docs/fidelity.md)
//! metric = "auto"             # or a list: ["top1", "map=iou:0.3"]
//! calib = "calib/"            # mixed precision: calibration inputs
//! size-budget = 0.3           # or avg-bits = 6; precision = false turns the pass off
//! scratchpad = "512KiB"       # scheduling: or target = "npu.toml"; plan = "plan.json"
//! dump-ir-after = "all"       # or a list of passes; with dump-dir = "ir/"
//!
//! [[pass]]
//! name = "cleanup"
//! [[pass]]
//! name = "schedule"           # options: the scheduling keys above, e.g. scratchpad
//! ```

use crate::error::{Error, Result};
use crate::passes::registry;
pub use crate::run_args::PassSpec;
use crate::run_args::RunArgs;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The file name looked up beside the model.
pub const CONFIG_FILE_NAME: &str = "optimize.toml";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ConfigFile {
    output: Option<PathBuf>,
    report: Option<PathBuf>,
    html: Option<PathBuf>,
    inputs: Option<PathBuf>,
    #[serde(default)]
    input_shape: Vec<String>,
    tolerance: Option<f64>,
    seed: Option<u64>,
    samples: Option<usize>,
    validate: Option<bool>,
    min_fidelity: Option<Entries>,
    metric: Option<Entries>,
    calib: Option<PathBuf>,
    calib_method: Option<String>,
    size_budget: Option<f64>,
    avg_bits: Option<f64>,
    precision: Option<bool>,
    // The fields of `ScheduleKeys`, repeated: serde cannot combine `flatten` with
    // `deny_unknown_fields`, and unknown keys must stay errors.
    scratchpad: Option<SizeValue>,
    target: Option<PathBuf>,
    plan: Option<PathBuf>,
    schedule_mode: Option<String>,
    schedule_time_limit: Option<f64>,
    weights_in_scratchpad: Option<bool>,
    tiling: Option<String>,
    dump_ir_after: Option<Entries>,
    dump_dir: Option<PathBuf>,
    #[serde(rename = "pass")]
    passes: Option<Vec<PassSpec>>,
}

/// A key that takes one entry or a list, like the repeatable flags (`--metric`,
/// `--min-fidelity`): `0.99`, `"top1"`, or `["top1", "prob=iou:0.3"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Entries {
    One(Entry),
    Many(Vec<Entry>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Entry {
    Number(f64),
    Text(String),
}

impl Entries {
    /// The entries as the flags would give them (numbers as messages show them).
    fn strings(&self) -> Vec<String> {
        let one = |e: &Entry| match e {
            Entry::Number(x) => crate::value_checks::Shown::shown(*x),
            Entry::Text(t) => t.clone(),
        };
        match self {
            Entries::One(e) => vec![one(e)],
            Entries::Many(v) => v.iter().map(one).collect(),
        }
    }
}

/// The scheduling settings, at the top level of the file or as the options of
/// `[[pass]] name = "schedule"` (same names as the command-line flags).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ScheduleKeys {
    scratchpad: Option<SizeValue>,
    target: Option<PathBuf>,
    plan: Option<PathBuf>,
    schedule_mode: Option<String>,
    schedule_time_limit: Option<f64>,
    weights_in_scratchpad: Option<bool>,
    tiling: Option<String>,
}

/// A scratchpad size: a string with a unit ("512KiB") or a number of bytes.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SizeValue {
    Text(String),
    Bytes(u64),
}

impl ScheduleKeys {
    /// Reads the options of a `[[pass]] name = "schedule"` entry.
    fn from_options(options: &toml::Table, path: &Path) -> Result<ScheduleKeys> {
        toml::Value::Table(options.clone())
            .try_into()
            .map_err(|e: toml::de::Error| {
                let msg = e.to_string();
                let first = msg.lines().next().unwrap_or("bad option").trim();
                Error::input(path, format!("pass 'schedule': {first}"))
            })
    }

    /// Sets the scheduling flags the command line left unset; `rel` resolves paths
    /// against the config file's folder.
    fn fill(self, a: &mut RunArgs, rel: &dyn Fn(Option<PathBuf>) -> Option<PathBuf>) {
        if a.scratchpad.is_none() && a.target.is_none() {
            a.scratchpad = self.scratchpad.map(|s| match s {
                SizeValue::Text(t) => t,
                SizeValue::Bytes(b) => b.to_string(),
            });
            a.target = rel(self.target);
        }
        a.plan = a.plan.take().or(rel(self.plan));
        a.schedule_mode = a.schedule_mode.take().or(self.schedule_mode);
        a.schedule_time_limit = a.schedule_time_limit.or(self.schedule_time_limit);
        a.weights_in_scratchpad =
            a.weights_in_scratchpad || self.weights_in_scratchpad.unwrap_or(false);
        a.tiling = a.tiling.take().or(self.tiling);
    }
}

/// A TOML error as one line naming the key it is about and its line: serde's messages
/// name the key only for unknown ones, so the key is read from the line the error's span
/// points into.
pub fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> Error {
    let msg = e.message().trim().replace("field", "key");
    let msg = msg
        .lines()
        .next()
        .unwrap_or("invalid TOML")
        .trim()
        .to_string();
    let Some(span) = e.span() else {
        return Error::input(path, msg);
    };
    let start = span.start.min(text.len());
    let line_no = text[..start].matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    match key {
        Some(k) if !msg.contains(&format!("`{k}`")) => {
            Error::input(path, format!("key '{k}' (line {line_no}): {msg}"))
        }
        _ => Error::input(path, format!("line {line_no}: {msg}")),
    }
}

fn read_config(path: &Path) -> Result<ConfigFile> {
    let text =
        crate::bounded_read::read_text(path, "config file", crate::bounded_read::MAX_TEXT_FILE)?;
    let cfg: ConfigFile = toml::from_str(&text).map_err(|e| toml_error(path, &text, &e))?;
    check_values(&cfg, path)?;
    Ok(cfg)
}

/// Range checks of the file's numeric values, naming the file and the key.
fn check_values(cfg: &ConfigFile, path: &Path) -> Result<()> {
    use crate::value_checks as v;
    v::key(path, "tolerance", cfg.tolerance, v::tolerance)?;
    let strings = |e: &Option<Entries>| e.as_ref().map(Entries::strings).unwrap_or_default();
    crate::fidelity::FidelitySpec::parse(&strings(&cfg.metric), &strings(&cfg.min_fidelity))
        .map_err(|e| v::key_error(path, e.key, e.value, e.why))?;
    v::key(path, "samples", cfg.samples, v::samples)?;
    v::key(path, "size-budget", cfg.size_budget, v::size_budget)?;
    v::key(path, "avg-bits", cfg.avg_bits, v::avg_bits)?;
    v::key(
        path,
        "schedule-time-limit",
        cfg.schedule_time_limit,
        v::time_limit,
    )?;
    if cfg.size_budget.is_some() && cfg.avg_bits.is_some() {
        return Err(Error::input(
            path,
            "give either key 'size-budget' or key 'avg-bits', not both",
        ));
    }
    if let Some(SizeValue::Text(s)) = &cfg.scratchpad {
        v::scratchpad(s).map_err(|why| v::key_error(path, "scratchpad", s, why))?;
    }
    if let Some(SizeValue::Bytes(b)) = &cfg.scratchpad {
        v::scratchpad(&b.to_string()).map_err(|why| v::key_error(path, "scratchpad", b, why))?;
    }
    for spec in cfg.passes.iter().flatten() {
        check_pass_values(spec, path)?;
    }
    for name in cfg.dump_ir_after.iter().flat_map(Entries::strings) {
        v::dump_pass(&name).map_err(|why| v::key_error(path, "dump-ir-after", &name, why))?;
    }
    Ok(())
}

/// Range checks of a `[[pass]]` entry's numeric options.
fn check_pass_values(spec: &PassSpec, path: &Path) -> Result<()> {
    use crate::value_checks as v;
    let checks: &[(&str, v::Check)] = match spec.name.as_str() {
        "precision" => &[
            ("size-budget", v::size_budget),
            ("avg-bits", v::avg_bits),
            ("time-limit", v::time_limit),
        ],
        "schedule" => &[("schedule-time-limit", v::time_limit)],
        _ => &[],
    };
    for (k, check) in checks {
        let Some(val) = spec.options.get(*k) else {
            continue;
        };
        let key = format!("[[pass]] {}: {k}", spec.name);
        let x = val
            .as_float()
            .or(val.as_integer().map(|i| i as f64))
            .ok_or_else(|| {
                v::key_error(path, &key, format!("{val:?}"), "expected a number".into())
            })?;
        check(x).map_err(|why| v::key_error(path, &key, v::Shown::shown(x), why))?;
    }
    Ok(())
}

/// Fills the settings the command line left unset from the config file, if there is one.
pub fn merge_config_file(mut a: RunArgs, model: &Path) -> Result<RunArgs> {
    let path = match (&a.config, a.no_config) {
        (Some(p), _) => p.clone(),
        (None, true) => return Ok(a),
        (None, false) => {
            let beside = model
                .parent()
                .unwrap_or(Path::new("."))
                .join(CONFIG_FILE_NAME);
            if !beside.is_file() {
                return Ok(a);
            }
            beside
        }
    };
    let cfg = read_config(&path)?;
    for spec in cfg.passes.iter().flatten() {
        if registry::find(&spec.name).is_none() {
            return Err(Error::input(
                &path,
                format!(
                    "unknown pass '{}' (known: {})",
                    spec.name,
                    registry::names().join(", ")
                ),
            ));
        }
    }
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let rel = |p: Option<PathBuf>| p.map(|p| if p.is_absolute() { p } else { base.join(p) });
    // Command-line flags win over a schedule pass's options, which win over top-level keys.
    let mut passes = cfg.passes;
    for spec in passes.iter_mut().flatten() {
        match spec.name.as_str() {
            "schedule" => {
                ScheduleKeys::from_options(&spec.options, &path)?.fill(&mut a, &rel);
                spec.options.clear();
            }
            "precision" => {
                if let Some(calib) = spec.options.get("calib").and_then(|v| v.as_str()) {
                    let resolved = rel(Some(PathBuf::from(calib))).unwrap_or_default();
                    let text = resolved.to_string_lossy().into_owned();
                    spec.options
                        .insert("calib".into(), toml::Value::String(text));
                }
            }
            _ => {}
        }
    }
    let top_level = ScheduleKeys {
        scratchpad: cfg.scratchpad,
        target: cfg.target,
        plan: cfg.plan,
        schedule_mode: cfg.schedule_mode,
        schedule_time_limit: cfg.schedule_time_limit,
        weights_in_scratchpad: cfg.weights_in_scratchpad,
        tiling: cfg.tiling,
    };
    top_level.fill(&mut a, &rel);
    a.output = a.output.or(rel(cfg.output));
    a.report = a.report.or(rel(cfg.report));
    a.html = a.html.or(rel(cfg.html));
    a.inputs = a.inputs.or(rel(cfg.inputs));
    if a.input_shape.is_empty() {
        a.input_shape = cfg.input_shape;
    }
    a.tolerance = a.tolerance.or(cfg.tolerance);
    a.seed = a.seed.or(cfg.seed);
    a.samples = a.samples.or(cfg.samples);
    a.no_validate = a.no_validate || cfg.validate == Some(false);
    if a.min_fidelity.is_empty() {
        a.min_fidelity = cfg
            .min_fidelity
            .as_ref()
            .map(Entries::strings)
            .unwrap_or_default();
    }
    if a.metric.is_empty() {
        a.metric = cfg
            .metric
            .as_ref()
            .map(Entries::strings)
            .unwrap_or_default();
    }
    a.calib = a.calib.or(rel(cfg.calib));
    a.calib_method = a.calib_method.or(cfg.calib_method);
    if a.size_budget.is_none() && a.avg_bits.is_none() {
        a.size_budget = cfg.size_budget;
        a.avg_bits = cfg.avg_bits;
    }
    a.no_precision = a.no_precision || cfg.precision == Some(false);
    if a.dump_ir_after.is_empty() {
        a.dump_ir_after = cfg
            .dump_ir_after
            .as_ref()
            .map(Entries::strings)
            .unwrap_or_default();
    }
    a.dump_dir = a.dump_dir.or(rel(cfg.dump_dir));
    if a.passes.is_none() {
        a.passes = passes;
    }
    a.config_used = Some(path);
    Ok(a)
}
