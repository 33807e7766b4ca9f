//! Input data for running a model: folders of `.npy`/`.pb` files, random inputs, and
//! `--input-shape` overrides.
//!
//! # Folder format
//!
//! * **Single-input models**: a folder with one `.npy` or `.pb` file per sample; samples are
//!   the files in natural name order (`s2` before `s10`). A folder of subfolders, one per
//!   sample, each holding one file, is accepted too.
//! * **Models with several inputs**: one subfolder per sample (natural name order), each
//!   holding one file per runtime input, named after the input (`state.npy`, `state.pb`) or
//!   `input_K.npy`/`input_K.pb` where K is the index among the model's runtime inputs, as in
//!   ONNX's own `test_data_set_N` folders. Characters that cannot appear in file names
//!   (`/ \ : * ? " < > |`) are replaced by `_` before matching names. When a file name is both
//!   an input's name and of the `input_K` form, the name wins.
//! * A folder that is itself one sample (holds `input_0.pb`… directly, or, for a model with
//!   several inputs, files named after the inputs) is taken as a single sample.
//! * `output_K.pb`/`output_K.npy` files (reference outputs), hidden files and `.onnx` files
//!   are ignored; any other file is an error. See [`load_expected_outputs`] for the outputs.
//!
//! Every file is checked against the model's [`InputSpec`]s (element type, rank, every
//! known dimension) while loading, before anything runs.

use super::{npy, pb, HostTensor};
use crate::error::{Error, Result};
use crate::ir::DataType;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What the model expects for one runtime input: name, element type, dims (None = symbolic/unknown).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputSpec {
    pub name: String,
    pub elem: DataType,
    pub dims: Vec<Option<i64>>,
}

impl InputSpec {
    pub fn new(name: impl Into<String>, elem: DataType, dims: Vec<Option<i64>>) -> InputSpec {
        InputSpec {
            name: name.into(),
            elem,
            dims,
        }
    }

    /// A spec whose dims are all known.
    pub fn fixed(name: impl Into<String>, elem: DataType, dims: &[i64]) -> InputSpec {
        InputSpec::new(name, elem, dims.iter().map(|&d| Some(d)).collect())
    }

    /// The type as in error messages: `float[1,3,?,?]` (`?` for an unknown dimension).
    pub fn type_string(&self) -> String {
        let dims: Vec<String> = self
            .dims
            .iter()
            .map(|d| known(*d).map_or("?".to_string(), |v| v.to_string()))
            .collect();
        format!("{}[{}]", self.elem, dims.join(","))
    }

    /// The file stem this input's files are matched against: the name with characters that
    /// are not allowed in file names replaced by `_`.
    pub fn file_stem(&self) -> String {
        sanitize_file_name(&self.name)
    }

    /// Checks a loaded tensor against this spec; the error names `origin` (the file).
    pub fn check(&self, origin: &Path, t: &HostTensor) -> Result<()> {
        let mismatch = |detail: String| {
            Error::input(
                origin,
                format!(
                    "input '{}' expects {}, file holds {}{detail}",
                    self.name,
                    self.type_string(),
                    t.type_string()
                ),
            )
        };
        if t.dtype != self.elem || t.shape.len() != self.dims.len() {
            return Err(mismatch(String::new()));
        }
        for (axis, (want, &have)) in self.dims.iter().zip(&t.shape).enumerate() {
            if let Some(w) = known(*want) {
                if w as u64 != have as u64 {
                    return Err(mismatch(format!(
                        " (dimension {axis} is {have}, expected {w})"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// A dimension's value when it is known (ONNX uses negative values for unknown sizes too).
fn known(d: Option<i64>) -> Option<i64> {
    d.filter(|&v| v >= 0)
}

/// One sample: a value per model input, in the model's input order.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// File or subfolder name the sample came from (`random_K` for random samples).
    pub id: String,
    pub values: Vec<(String, HostTensor)>,
}

/// Replaces characters that cannot appear in file names (`/ \ : * ? " < > |` and control
/// characters) with `_`.
pub fn sanitize_file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Loads a `.npy` or `.pb` (serialized `TensorProto`) file, chosen by extension.
pub fn load_tensor_file(path: &Path) -> Result<HostTensor> {
    match extension(path).as_deref() {
        Some("npy") => npy::read_npy(path),
        Some("pb") => Ok(pb::read_tensor_pb(path)?.1),
        Some("npz") => Err(Error::input(
            path,
            ".npz archives are not supported; save each array with numpy.save as .npy",
        )),
        _ => Err(Error::input(
            path,
            "unsupported file type; expected a .npy or .pb (ONNX TensorProto) file",
        )),
    }
}

fn extension(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
}

/// Compares names so that embedded numbers sort by value: `s2` < `s10`, `input_9` < `input_10`.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let nx = x.iter().take_while(|c| c.is_ascii_digit()).count();
                let ny = y.iter().take_while(|c| c.is_ascii_digit()).count();
                let (dx, dy) = (&x[..nx], &y[..ny]);
                let tx = &dx[dx.iter().take_while(|&&c| c == b'0').count()..];
                let ty = &dy[dy.iter().take_while(|&&c| c == b'0').count()..];
                let ord = tx.len().cmp(&ty.len()).then_with(|| tx.cmp(ty));
                if ord != Ordering::Equal {
                    return ord;
                }
                x = &x[nx..];
                y = &y[ny..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

/// What a directory entry is for input loading.
enum Entry {
    /// A `.npy`/`.pb` data file, with its stem.
    Data(PathBuf, String),
    /// A reference output `output_K.*`.
    Output(PathBuf, usize),
    Dir(PathBuf),
    Unknown(PathBuf),
}

/// `K` if `stem` is `<prefix>K`.
fn indexed(stem: &str, prefix: &str) -> Option<usize> {
    let digits = stem.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Checks that `dir` (named `what` in messages, e.g. "calibration folder") is a folder.
pub fn check_folder(dir: &Path, what: &str) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(m) => Err(Error::input(
            dir,
            format!(
                "is {}, not a folder; the {what} must be a folder of .npy/.pb files",
                crate::bounded_read::kind_of(&m)
            ),
        )),
        Err(_) => Err(Error::input(dir, format!("{what} does not exist"))),
    }
}

/// Lists a folder's entries that matter, in natural name order.
fn scan(dir: &Path) -> Result<Vec<Entry>> {
    check_folder(dir, "input folder")?;
    let rd = std::fs::read_dir(dir)
        .map_err(|e| Error::input(dir, format!("cannot list folder: {e}")))?;
    let mut paths = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::input(dir, format!("cannot list folder: {e}")))?;
        paths.push(entry.path());
    }
    paths.sort_by(|a, b| natural_cmp(&file_name(a), &file_name(b)));
    let mut out = Vec::new();
    for path in paths {
        let name = file_name(&path);
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            out.push(Entry::Dir(path));
            continue;
        }
        let ext = extension(&path);
        match ext.as_deref() {
            Some("onnx") => {}
            Some("npy" | "pb") => {
                let stem = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match indexed(&stem, "output_") {
                    Some(k) => out.push(Entry::Output(path, k)),
                    None => out.push(Entry::Data(path, stem)),
                }
            }
            _ => out.push(Entry::Unknown(path)),
        }
    }
    Ok(out)
}

fn unknown_file_error(path: &Path) -> Error {
    Error::input(
        path,
        "unexpected file in an input folder; expected only .npy or .pb files",
    )
}

/// Loads the samples in an input folder (see the module documentation for the layout),
/// checking each value against `specs` (the model's runtime inputs, in order).
pub fn load_input_dir(dir: &Path, specs: &[InputSpec]) -> Result<Vec<Sample>> {
    if specs.is_empty() {
        return Err(Error::input(
            dir,
            "the model has no runtime inputs, so it takes no input data",
        ));
    }
    let entries = scan(dir)?;
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for e in entries {
        match e {
            Entry::Data(p, stem) => files.push((p, stem)),
            Entry::Dir(p) => dirs.push(p),
            Entry::Output(..) => {}
            Entry::Unknown(p) => return Err(unknown_file_error(&p)),
        }
    }
    match (files.is_empty(), dirs.is_empty()) {
        (true, true) => Err(Error::input(
            dir,
            "no input data found; expected .npy/.pb files (single-input model) or one subfolder per sample",
        )),
        (false, false) => Err(Error::input(
            dir,
            format!(
                "mixes data files ({}) and subfolders ({}); use one file per sample for a single-input model, \
                 or one subfolder per sample",
                file_name(&files[0].0),
                file_name(&dirs[0])
            ),
        )),
        (false, true) => {
            let one_sample_folder = specs.len() > 1 || files.iter().any(|(_, stem)| indexed(stem, "input_").is_some());
            if one_sample_folder {
                return Ok(vec![load_sample_dir(dir, specs)?]);
            }
            let spec = &specs[0];
            files
                .into_iter()
                .map(|(path, _)| {
                    let t = load_tensor_file(&path)?;
                    spec.check(&path, &t)?;
                    Ok(Sample { id: file_name(&path), values: vec![(spec.name.clone(), t)] })
                })
                .collect()
        }
        (true, false) => dirs.iter().map(|d| load_sample_dir(d, specs)).collect(),
    }
}

/// Refuses samples whose float values include NaN or an infinity (`purpose` says what
/// needs finite data, e.g. "calibration"). The message names the sample's file (or its
/// folder, for a sample of several files) under `dir` and the input.
pub fn require_finite(dir: &Path, samples: &[Sample], purpose: &str) -> Result<()> {
    for s in samples {
        for (name, t) in &s.values {
            if !t.dtype.is_float() {
                continue;
            }
            let Some(v) = t.to_f64() else { continue };
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                let file = dir.join(&s.id);
                let at = if file.exists() {
                    file
                } else {
                    dir.to_path_buf()
                };
                return Err(Error::input(
                    at,
                    format!(
                        "input '{name}' holds {} at element {i}; {purpose} needs finite values",
                        if v[i].is_nan() { "NaN" } else { "an infinity" }
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Which spec a data file (by stem) feeds.
fn match_file(path: &Path, stem: &str, specs: &[InputSpec]) -> Result<usize> {
    let by_name: Vec<usize> = (0..specs.len())
        .filter(|&i| specs[i].name == stem || specs[i].file_stem() == stem)
        .collect();
    match by_name.len() {
        1 => return Ok(by_name[0]),
        0 => {}
        _ => {
            let names: Vec<String> = by_name
                .iter()
                .map(|&i| format!("'{}'", specs[i].name))
                .collect();
            return Err(Error::input(
                path,
                format!(
                    "file name matches several inputs ({}); use input_K names instead",
                    names.join(", ")
                ),
            ));
        }
    }
    if let Some(k) = indexed(stem, "input_") {
        if k < specs.len() {
            return Ok(k);
        }
        return Err(Error::input(
            path,
            format!(
                "the model has only {} runtime input(s) (input_0..input_{})",
                specs.len(),
                specs.len() - 1
            ),
        ));
    }
    let names: Vec<String> = specs.iter().map(|s| format!("'{}'", s.name)).collect();
    Err(Error::input(
        path,
        format!(
            "does not match any model input (inputs: {}); name files after the input (e.g. {}.npy) or input_K.pb",
            names.join(", "),
            specs[0].file_stem()
        ),
    ))
}

/// Loads one sample folder: one file per runtime input (see the module documentation).
pub fn load_sample_dir(dir: &Path, specs: &[InputSpec]) -> Result<Sample> {
    let mut files = Vec::new();
    for e in scan(dir)? {
        match e {
            Entry::Data(p, stem) => files.push((p, stem)),
            Entry::Output(..) => {}
            Entry::Dir(p) => {
                return Err(Error::input(p, "unexpected folder inside a sample folder"))
            }
            Entry::Unknown(p) => return Err(unknown_file_error(&p)),
        }
    }
    if files.is_empty() {
        return Err(Error::input(
            dir,
            "sample folder holds no .npy or .pb input files",
        ));
    }
    let mut slots: Vec<Option<(PathBuf, HostTensor)>> = vec![None; specs.len()];
    for (path, stem) in files {
        // A single-input model's sample file may have any name.
        let k = if specs.len() == 1 && slots[0].is_none() {
            0
        } else {
            match_file(&path, &stem, specs)?
        };
        if let Some((other, _)) = &slots[k] {
            return Err(Error::input(
                &path,
                format!(
                    "input '{}' is given twice (also by {})",
                    specs[k].name,
                    file_name(other)
                ),
            ));
        }
        let t = load_tensor_file(&path)?;
        specs[k].check(&path, &t)?;
        slots[k] = Some((path, t));
    }
    let mut values = Vec::with_capacity(specs.len());
    for (k, (spec, slot)) in specs.iter().zip(slots).enumerate() {
        match slot {
            Some((_, t)) => values.push((spec.name.clone(), t)),
            None => {
                let stem = spec.file_stem();
                return Err(Error::input(
                    dir,
                    format!(
                        "missing input '{}' (expected {stem}.npy, {stem}.pb or input_{k}.pb)",
                        spec.name
                    ),
                ));
            }
        }
    }
    Ok(Sample {
        id: file_name(dir),
        values,
    })
}

/// Loads the reference outputs (`output_K.pb`/`output_K.npy`) of a sample folder, sorted by K.
pub fn load_expected_outputs(sample_dir: &Path) -> Result<Vec<(usize, HostTensor)>> {
    let mut outs: Vec<(usize, PathBuf)> = Vec::new();
    for e in scan(sample_dir)? {
        if let Entry::Output(p, k) = e {
            if let Some((_, other)) = outs.iter().find(|(j, _)| *j == k) {
                return Err(Error::input(
                    &p,
                    format!("output {k} is given twice (also by {})", file_name(other)),
                ));
            }
            outs.push((k, p));
        }
    }
    outs.sort_by_key(|(k, _)| *k);
    outs.into_iter()
        .map(|(k, p)| Ok((k, load_tensor_file(&p)?)))
        .collect()
}

/// Largest random tensor generated, in bytes (guards against absurd shapes).
const MAX_RANDOM_BYTES: u64 = 8 << 30;

/// Whether an integer or bool input looks like an attention/padding mask (name contains
/// `mask`); such inputs are filled with ones so that no position is masked out entirely.
fn looks_like_mask(name: &str) -> bool {
    name.to_ascii_lowercase().contains("mask")
}

/// Generates `count` random samples, deterministic for a given `seed` on every platform.
///
/// Each sample `i` draws from ChaCha8 seeded with `seed` on stream `i` (so sample `i` does not
/// depend on `count`), inputs in spec order, elements in C order, using raw 32/64-bit draws
/// (no floating-point library functions):
/// * float/double: uniform in [-1, 1) (24 and 53 random bits); float16/bfloat16: a float
///   drawn the same way, rounded to the type and kept below 1;
/// * integers (all widths, signed and unsigned): uniform in [0, 10), small enough to be valid
///   indices for most gathers and embeddings;
/// * bool: uniform true/false;
/// * integer or bool inputs whose name contains `mask` (attention masks): all ones.
///
/// Every dimension must be known; strings, complex and 8/4-bit float types are refused.
pub fn random_inputs(specs: &[InputSpec], seed: u64, count: usize) -> Result<Vec<Sample>> {
    let gen = RandomSamples::new(specs, seed)?;
    Ok((0..count).map(|i| gen.sample(i)).collect())
}

/// The samples of [`random_inputs`], made one at a time: sample `i` is the same either way,
/// and a caller that runs them one by one (validation) holds one sample, not `count`.
pub struct RandomSamples {
    specs: Vec<InputSpec>,
    shapes: Vec<Vec<usize>>,
    seed: u64,
}

impl RandomSamples {
    /// Checks that every input can be generated (known dims, a supported type, a sane size).
    /// An error names `--inputs DIR` as the way to give real data instead.
    pub fn new(specs: &[InputSpec], seed: u64) -> Result<RandomSamples> {
        RandomSamples::hinting(specs, seed, "--inputs DIR")
    }

    /// [`RandomSamples::new`], an error naming `data_hint` (e.g. `--calib DIR`) as the way to
    /// give real data: the option of the caller whose data these samples stand in for.
    pub fn hinting(specs: &[InputSpec], seed: u64, data_hint: &str) -> Result<RandomSamples> {
        let mut shapes = Vec::with_capacity(specs.len());
        for spec in specs {
            let dims: Option<Vec<usize>> = spec
                .dims
                .iter()
                .map(|d| known(*d).and_then(|v| usize::try_from(v).ok()))
                .collect();
            let dims = dims.ok_or_else(|| {
                let example: Vec<String> = spec.dims.iter().map(|d| known(*d).map_or("N".into(), |v| v.to_string())).collect();
                Error::Usage(format!(
                    "input '{}' has unknown dimensions ({}); pass --input-shape {}={} to generate random data, \
                     or give data with {data_hint}",
                    spec.name,
                    spec.type_string(),
                    spec.name,
                    if example.is_empty() { "1".to_string() } else { example.join("x") }
                ))
            })?;
            let width = match spec.elem {
                DataType::Float | DataType::Double | DataType::Float16 | DataType::Bfloat16 | DataType::Bool => {
                    HostTensor::element_width(spec.elem)
                }
                dt if dt.is_integer() => HostTensor::element_width(dt),
                _ => None,
            }
            .ok_or_else(|| {
                Error::Usage(format!(
                    "cannot generate random values for input '{}' of type {}; give data with {data_hint}",
                    spec.name, spec.elem
                ))
            })?;
            let n = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64));
            if n.and_then(|n| n.checked_mul(width as u64))
                .is_none_or(|b| b > MAX_RANDOM_BYTES)
            {
                return Err(Error::Usage(format!(
                    "input '{}' of type {} is too large to generate ({} limit)",
                    spec.name,
                    spec.type_string(),
                    "8 GiB"
                )));
            }
            shapes.push(dims);
        }
        Ok(RandomSamples {
            specs: specs.to_vec(),
            shapes,
            seed,
        })
    }

    /// Sample `i` (ChaCha8 seeded with the seed, on stream `i`).
    pub fn sample(&self, i: usize) -> Sample {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(i as u64);
        let values = self
            .specs
            .iter()
            .zip(&self.shapes)
            .map(|(spec, dims)| {
                (
                    spec.name.clone(),
                    random_tensor(&mut rng, spec, dims.clone()),
                )
            })
            .collect();
        Sample {
            id: format!("random_{i}"),
            values,
        }
    }
}

fn uniform_f32(rng: &mut ChaCha8Rng) -> f32 {
    (rng.next_u32() >> 8) as f32 * (1.0 / (1u32 << 23) as f32) - 1.0
}

fn random_tensor(rng: &mut ChaCha8Rng, spec: &InputSpec, shape: Vec<usize>) -> HostTensor {
    let n: usize = shape.iter().product();
    let dt = spec.elem;
    let mask = looks_like_mask(&spec.name);
    let mut bytes = Vec::with_capacity(n * HostTensor::element_width(dt).unwrap_or(1));
    for _ in 0..n {
        match dt {
            DataType::Float => bytes.extend_from_slice(&uniform_f32(rng).to_le_bytes()),
            DataType::Double => {
                let v = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 52) as f64) - 1.0;
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            DataType::Float16 => {
                let mut h = half::f16::from_f32(uniform_f32(rng));
                if h.to_f32() >= 1.0 {
                    h = half::f16::from_bits(0x3BFF); // largest float16 below 1
                }
                bytes.extend_from_slice(&h.to_le_bytes());
            }
            DataType::Bfloat16 => {
                let mut h = half::bf16::from_f32(uniform_f32(rng));
                if h.to_f32() >= 1.0 {
                    h = half::bf16::from_bits(0x3F7F); // largest bfloat16 below 1
                }
                bytes.extend_from_slice(&h.to_le_bytes());
            }
            DataType::Bool => bytes.push(if mask { 1 } else { (rng.next_u32() & 1) as u8 }),
            _ => {
                let v = if mask { 1 } else { rng.next_u32() % 10 };
                let width = HostTensor::element_width(dt).unwrap_or(1);
                bytes.extend_from_slice(&(v as u64).to_le_bytes()[..width]);
            }
        }
    }
    HostTensor::new(dt, shape, bytes)
}

/// Parses `--input-shape` values: `name=1x3x224x224`, several per value separated by commas,
/// the flag repeated. `name=` (nothing after `=`) is a scalar. Dimensions must be non-negative
/// integers; the last `=` separates name and dims, so names may contain `=`.
pub fn parse_input_shapes(args: &[String]) -> Result<HashMap<String, Vec<i64>>> {
    let mut out: HashMap<String, Vec<i64>> = HashMap::new();
    for arg in args {
        for item in arg.split(',') {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let bad = |why: String| {
                Error::Usage(format!(
                    "--input-shape '{item}': {why}; expected name=AxBxC, e.g. input=1x3x224x224"
                ))
            };
            let (name, dims) = item
                .rsplit_once('=')
                .ok_or_else(|| bad("missing '='".into()))?;
            let name = name.trim();
            if name.is_empty() {
                return Err(bad("missing input name before '='".into()));
            }
            let dims = dims.trim();
            let parsed: Vec<i64> = if dims.is_empty() {
                Vec::new()
            } else {
                dims.split(['x', 'X', '*'])
                    .map(|d| {
                        let d = d.trim();
                        d.parse::<i64>().ok().filter(|&v| v >= 0).ok_or_else(|| {
                            bad(format!("'{d}' is not a dimension (a non-negative integer)"))
                        })
                    })
                    .collect::<Result<_>>()?
            };
            if out.insert(name.to_string(), parsed).is_some() {
                return Err(Error::Usage(format!(
                    "--input-shape: input '{name}' is given more than once"
                )));
            }
        }
    }
    Ok(out)
}

/// Applies `--input-shape` overrides to the specs. Every named input must exist; the rank must
/// match and known dimensions may not be contradicted.
pub fn apply_input_shapes(
    specs: &[InputSpec],
    shapes: &HashMap<String, Vec<i64>>,
) -> Result<Vec<InputSpec>> {
    let mut names: Vec<&String> = shapes.keys().collect();
    names.sort();
    for name in names {
        if !specs.iter().any(|s| &s.name == name) {
            let all: Vec<String> = specs.iter().map(|s| format!("'{}'", s.name)).collect();
            return Err(Error::Usage(format!(
                "--input-shape: the model has no runtime input '{name}' (inputs: {})",
                all.join(", ")
            )));
        }
    }
    specs
        .iter()
        .map(|spec| {
            let Some(dims) = shapes.get(&spec.name) else {
                return Ok(spec.clone());
            };
            let given: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
            let err = |why: &str| {
                Error::Usage(format!(
                    "--input-shape {}={}: {why}; the model declares {}",
                    spec.name,
                    given.join("x"),
                    spec.type_string()
                ))
            };
            if dims.len() != spec.dims.len() {
                return Err(err("wrong number of dimensions"));
            }
            for (want, have) in spec.dims.iter().zip(dims) {
                if known(*want).is_some_and(|w| w != *have) {
                    return Err(err("contradicts a fixed dimension"));
                }
            }
            Ok(InputSpec {
                dims: dims.iter().map(|&d| Some(d)).collect(),
                ..spec.clone()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn f32_spec(name: &str, dims: &[Option<i64>]) -> InputSpec {
        InputSpec::new(name, DataType::Float, dims.to_vec())
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["s10", "s2", "s1", "input_10", "input_9", "a", "s02"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            vec!["a", "input_9", "input_10", "s1", "s02", "s2", "s10"]
        );
    }

    #[test]
    fn sanitize() {
        assert_eq!(sanitize_file_name("encoder/input:0"), "encoder_input_0");
        assert_eq!(sanitize_file_name("plain"), "plain");
    }

    #[test]
    fn check_messages() {
        let spec = InputSpec::fixed("x", DataType::Float, &[1, 3, 224, 224]);
        let t = HostTensor::from_i64(vec![1, 3, 224, 224], &vec![0; 3 * 224 * 224]);
        let err = spec
            .check(Path::new("data/s1/x.npy"), &t)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "data/s1/x.npy: input 'x' expects float[1,3,224,224], file holds int64[1,3,224,224]"
        );
        let spec = f32_spec("x", &[None, Some(3)]);
        assert!(spec
            .check(
                Path::new("a.npy"),
                &HostTensor::from_f32(vec![7, 3], &[0.0; 21])
            )
            .is_ok());
        let err = spec
            .check(
                Path::new("a.npy"),
                &HostTensor::from_f32(vec![7, 4], &[0.0; 28]),
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "a.npy: input 'x' expects float[?,3], file holds float[7,4] (dimension 1 is 4, expected 3)"
        );
        let err = spec
            .check(
                Path::new("a.npy"),
                &HostTensor::from_f32(vec![3], &[0.0; 3]),
            )
            .unwrap_err();
        assert!(err
            .to_string()
            .ends_with("expects float[?,3], file holds float[3]"));
    }

    #[test]
    fn random_is_deterministic_and_in_range() {
        let specs = vec![
            f32_spec("x", &[Some(2), Some(50)]),
            InputSpec::fixed("ids", DataType::Int64, &[100]),
            InputSpec::fixed("attention_mask", DataType::Int64, &[4]),
            InputSpec::fixed("flag", DataType::Bool, &[64]),
            InputSpec::fixed("h", DataType::Float16, &[100]),
            InputSpec::fixed("b", DataType::Bfloat16, &[100]),
            InputSpec::fixed("d", DataType::Double, &[100]),
            InputSpec::fixed("u", DataType::Uint8, &[]),
        ];
        let a = random_inputs(&specs, 7, 3).unwrap();
        let b = random_inputs(&specs, 7, 1).unwrap();
        assert_eq!(a[0], b[0], "sample 0 does not depend on the count");
        assert_ne!(a[0], a[1]);
        assert_ne!(a[0], random_inputs(&specs, 8, 1).unwrap()[0]);
        for s in &a {
            assert_eq!(s.values.len(), specs.len());
            for (spec, (name, t)) in specs.iter().zip(&s.values) {
                assert_eq!(name, &spec.name);
                spec.check(Path::new("random"), t).unwrap();
                let v = t.to_f64().unwrap();
                match spec.elem {
                    DataType::Int64 if spec.name.contains("mask") => {
                        assert!(v.iter().all(|&x| x == 1.0))
                    }
                    DataType::Int64 | DataType::Uint8 => {
                        assert!(v.iter().all(|&x| (0.0..10.0).contains(&x)))
                    }
                    DataType::Bool => assert!(v.contains(&0.0) && v.contains(&1.0)),
                    _ => {
                        assert!(v.iter().all(|&x| (-1.0..1.0).contains(&x)), "{name}: {v:?}");
                        assert!(v.iter().any(|&x| x < 0.0) && v.iter().any(|&x| x > 0.0));
                    }
                }
            }
        }
        // Pinned values: the generator must not change across platforms and releases.
        let x = a[0].values[0].1.as_f32().unwrap();
        let ids = a[0].values[1].1.to_f64().unwrap();
        assert_eq!(&x[..3], &[-0.71999323, -0.68440783, -0.6358899]);
        assert_eq!(&ids[..5], &[1.0, 8.0, 7.0, 0.0, 3.0]);
        assert_eq!(
            random_inputs(&specs[..1], 7, 1).unwrap()[0].values[0]
                .1
                .as_f32()
                .unwrap(),
            x
        );
    }

    #[test]
    fn random_needs_known_dims() {
        let err = random_inputs(&[f32_spec("image", &[None, Some(3), Some(-1)])], 0, 1)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'image'")
                && err.contains("float[?,3,?]")
                && err.contains("--input-shape image=Nx3xN"),
            "{err}"
        );
        let err = random_inputs(&[InputSpec::fixed("s", DataType::String, &[1])], 0, 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("string"), "{err}");
    }

    #[test]
    fn input_shapes() {
        let args = vec!["x=1x3x224x224".to_string(), "a/b:0=2X5, s=".to_string()];
        let m = parse_input_shapes(&args).unwrap();
        assert_eq!(m["x"], vec![1, 3, 224, 224]);
        assert_eq!(m["a/b:0"], vec![2, 5]);
        assert_eq!(m["s"], Vec::<i64>::new());
        for bad in ["x", "=1x2", "x=1xax2", "x=1x-2", "x=1,x=2", "x=1xx2"] {
            let err = parse_input_shapes(&[bad.to_string()])
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("--input-shape"), "{bad}: {err}");
        }
        let specs = vec![
            f32_spec("x", &[None, Some(3), None, None]),
            f32_spec("y", &[Some(2)]),
        ];
        let fixed = apply_input_shapes(
            &specs,
            &m.iter()
                .filter(|(k, _)| *k == "x")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
        .unwrap();
        assert_eq!(fixed[0].type_string(), "float[1,3,224,224]");
        assert_eq!(fixed[1], specs[1]);
        let one = |k: &str, v: Vec<i64>| HashMap::from([(k.to_string(), v)]);
        assert!(apply_input_shapes(&specs, &one("z", vec![1]))
            .unwrap_err()
            .to_string()
            .contains("no runtime input 'z'"));
        assert!(apply_input_shapes(&specs, &one("x", vec![1, 4, 2, 2]))
            .unwrap_err()
            .to_string()
            .contains("contradicts"));
        assert!(apply_input_shapes(&specs, &one("y", vec![2, 2]))
            .unwrap_err()
            .to_string()
            .contains("number of dim"));
    }

    fn write(dir: &Path, name: &str, t: &HostTensor) {
        npy::write_npy(&dir.join(name), t).unwrap();
    }

    #[test]
    fn single_input_file_per_sample() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        for i in [10, 2, 1] {
            write(
                d,
                &format!("s{i}.npy"),
                &HostTensor::from_f32(vec![1, 2], &[i as f32, 0.0]),
            );
        }
        pb::write_tensor_pb(
            &d.join("s3.pb"),
            &HostTensor::from_f32(vec![5, 2], &[0.0; 10]),
            "",
        )
        .unwrap();
        fs::write(d.join(".DS_Store"), b"x").unwrap();
        let specs = vec![f32_spec("x", &[None, Some(2)])];
        let samples = load_input_dir(d, &specs).unwrap();
        let ids: Vec<&str> = samples.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, vec!["s1.npy", "s2.npy", "s3.pb", "s10.npy"]);
        assert_eq!(samples[3].values[0].1.as_f32().unwrap()[0], 10.0);

        fs::write(d.join("notes.txt"), b"hello").unwrap();
        let err = load_input_dir(d, &specs).unwrap_err().to_string();
        assert!(
            err.contains("notes.txt") && err.contains("unexpected file"),
            "{err}"
        );
        fs::remove_file(d.join("notes.txt")).unwrap();

        write(d, "s4.npy", &HostTensor::from_f32(vec![1, 3], &[0.0; 3]));
        let err = load_input_dir(d, &specs).unwrap_err().to_string();
        assert!(
            err.contains("s4.npy: input 'x' expects float[?,2], file holds float[1,3]"),
            "{err}"
        );
    }

    #[test]
    fn empty_and_missing_folders() {
        let tmp = tempfile::tempdir().unwrap();
        let specs = vec![f32_spec("x", &[Some(1)])];
        let err = load_input_dir(tmp.path(), &specs).unwrap_err().to_string();
        assert!(err.contains("no input data found"), "{err}");
        let err = load_input_dir(&tmp.path().join("nope"), &specs)
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
        fs::create_dir(tmp.path().join("s1")).unwrap();
        let err = load_input_dir(tmp.path(), &specs).unwrap_err().to_string();
        assert!(err.contains("s1: sample folder holds no"), "{err}");
    }

    #[test]
    fn multi_input_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let specs = vec![
            f32_spec("enc/x:0", &[Some(2)]),
            InputSpec::fixed("mask", DataType::Bool, &[2]),
        ];
        let s = d.join("s1");
        fs::create_dir(&s).unwrap();
        write(
            &s,
            "enc_x_0.npy",
            &HostTensor::from_f32(vec![2], &[1.0, 2.0]),
        );
        let err = load_input_dir(d, &specs).unwrap_err().to_string();
        assert!(
            err.contains("s1: missing input 'mask' (expected mask.npy, mask.pb or input_1.pb)"),
            "{err}"
        );
        write(
            &s,
            "input_1.npy",
            &HostTensor::new(DataType::Bool, vec![2], vec![1, 0]),
        );
        let samples = load_input_dir(d, &specs).unwrap();
        assert_eq!(samples[0].values[0].0, "enc/x:0");
        assert_eq!(samples[0].values[1].1.bytes, vec![1, 0]);
        write(
            &s,
            "mask.npy",
            &HostTensor::new(DataType::Bool, vec![2], vec![1, 0]),
        );
        let err = load_input_dir(d, &specs).unwrap_err().to_string();
        assert!(err.contains("is given twice"), "{err}");
        fs::remove_file(s.join("mask.npy")).unwrap();
        write(
            &s,
            "input_5.npy",
            &HostTensor::from_f32(vec![2], &[1.0, 2.0]),
        );
        let err = load_input_dir(d, &specs).unwrap_err().to_string();
        assert!(err.contains("input_5.npy: the model has only 2"), "{err}");
        fs::remove_file(s.join("input_5.npy")).unwrap();
        write(&s, "other.npy", &HostTensor::from_f32(vec![2], &[1.0, 2.0]));
        let err = load_input_dir(d, &specs).unwrap_err().to_string();
        assert!(
            err.contains("other.npy: does not match any model input"),
            "{err}"
        );
        fs::remove_file(s.join("other.npy")).unwrap();
        write(d, "stray.npy", &HostTensor::from_f32(vec![2], &[1.0, 2.0]));
        let err = load_input_dir(d, &specs).unwrap_err().to_string();
        assert!(err.contains("mixes data files"), "{err}");
    }
}
