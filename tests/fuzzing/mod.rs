//! The fuzz harness, shared by the `cargo fuzz` targets in `fuzz/` and by `tests/hostile.rs`
//! (which replays the saved regression inputs and runs the structure-aware mutator on
//! stable Rust). Every check panics on a bug, so libFuzzer records the input as a crash.
#![allow(dead_code)]

use arbitrary::Unstructured;
use onnx_protobuf::{tensor_shape_proto::dimension, type_proto, Message, ModelProto};
use optimize::error::Error;
use optimize::ir::Model;
use optimize::onnx_io::export::to_bytes;
use optimize::onnx_io::{limits, model_from_bytes, ExportOptions};
use optimize::pass_manager::PassManager;
use optimize::shape::{infer, Bindings};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Memory limit while fuzzing: far below libFuzzer's 2 GiB RSS limit, so a model that
/// passes the limits can never make the harness run out of memory.
pub const FUZZ_MAX_MEMORY: u64 = 64 << 20;

/// The path models are "read from": a folder with no files, so external data always fails
/// cleanly (confinement itself is tested in tests/hostile.rs).
fn fuzz_path() -> &'static Path {
    Path::new("/nonexistent-optimize-fuzz/model.onnx")
}

pub fn setup() {
    limits::set_max_memory(FUZZ_MAX_MEMORY);
}

/// An import error must be a bad-input error (exit code 2), never an internal one.
fn expect_input_error(e: &Error, what: &str) {
    assert!(
        matches!(e, Error::Input { .. }),
        "{what} gave a non-input error (exit code {}): {e}",
        e.exit_code()
    );
    assert!(!e.to_string().contains('\n'), "multi-line error: {e}");
}

/// bytes → IR → export → re-import: import never panics; a model it accepts exports, the
/// export imports again, and exporting that gives the same bytes.
pub fn import_roundtrip(data: &[u8]) -> Option<Model> {
    setup();
    let model = match model_from_bytes(data, fuzz_path()) {
        Ok(m) => m,
        Err(e) => {
            expect_input_error(&e, "import");
            return None;
        }
    };
    let opts = ExportOptions {
        external_data: Some(false),
        ..Default::default()
    };
    check_tensor_lengths(&model);
    let bytes = to_bytes(&model, &opts).expect("export of an imported model");
    let again = model_from_bytes(&bytes, fuzz_path())
        .unwrap_or_else(|e| panic!("re-import of an exported model failed: {e}"));
    assert_eq!(again.graph.node_count(), model.graph.node_count());
    assert_eq!(again.graph.inputs, model.graph.inputs);
    assert_eq!(again.graph.outputs, model.graph.outputs);
    // Exporting is deterministic, and a round trip changes nothing: the same bytes, or else
    // the same messages (protobuf keeps unknown fields in a hash map, whose write order may
    // differ after a re-parse, so the bytes of a model with unknown fields can differ; the
    // bytes are compared first because a message holding a NaN never equals itself).
    assert!(
        to_bytes(&model, &opts).expect("export again") == bytes,
        "export is not deterministic"
    );
    let bytes2 = to_bytes(&again, &opts).expect("second export");
    let parse = |b: &[u8]| ModelProto::parse_from_bytes(b).expect("parse our own export");
    assert!(
        bytes == bytes2 || parse(&bytes) == parse(&bytes2),
        "a round trip changed the model"
    );
    Some(model)
}

/// Every initializer of an accepted model holds exactly the values its dims declare, in
/// `raw_data` or in its type's field (`float_data`, `int32_data`, ...): the import's limit
/// checks guarantee it, and every reader of tensor data relies on it.
fn check_tensor_lengths(model: &Model) {
    use optimize::ir::DataType;
    for (name, t) in &model.graph.initializers {
        let Some(dt) = DataType::from_onnx(t.data_type) else {
            panic!(
                "initializer '{name}' of unknown type {} was accepted",
                t.data_type
            );
        };
        let n = optimize::ir::tensor::element_count(&t.dims);
        if dt == DataType::String {
            assert_eq!(
                t.string_data.len() as u64,
                n,
                "initializer '{name}': string_data"
            );
            continue;
        }
        if !t.raw_data.is_empty() || n == 0 {
            let want = limits::checked_bytes(dt, n).expect("size fits");
            assert!(
                t.raw_data.is_empty() || t.raw_data.len() as u64 == want,
                "initializer '{name}': raw_data holds {} bytes, {dt}{:?} needs {want}",
                t.raw_data.len(),
                t.dims
            );
            continue;
        }
        let typed = [
            t.float_data.len(),
            t.int32_data.len(),
            t.int64_data.len(),
            t.double_data.len(),
            t.uint64_data.len(),
        ]
        .into_iter()
        .max()
        .unwrap_or(0) as u64;
        let want = match dt {
            DataType::Complex64 | DataType::Complex128 => n * 2,
            DataType::Uint4 | DataType::Int4 | DataType::Float4E2M1 => n.div_ceil(2),
            _ => n,
        };
        assert_eq!(
            typed, want,
            "initializer '{name}': {dt}{:?} typed data",
            t.dims
        );
    }
}

/// Binds every non-static dimension of every runtime input to `v`.
fn bind_all(model: &Model, v: i64) -> Bindings {
    let mut b = Bindings::new();
    for name in model.graph.runtime_inputs() {
        if let Some(dims) = model.graph.value_type(name).and_then(|t| t.dims()) {
            let dims: Vec<i64> = dims.iter().map(|d| d.known().unwrap_or(v)).collect();
            if dims.iter().all(|&d| d >= 0) {
                b.insert(name.to_string(), dims);
            }
        }
    }
    b
}

/// Import, then shape inference (with and without bindings), the limit checks on the
/// inferred types, and the default passes: none may panic; the passes must not fail on a
/// model that inferred cleanly.
pub fn shape_infer(data: &[u8]) {
    setup();
    let Some(model) = import_roundtrip(data) else {
        return;
    };
    let mut plain = model.clone();
    let _ = infer(&mut plain, &Bindings::new());
    let mut bound = model;
    let bindings = bind_all(&bound, 2);
    if infer(&mut bound, &bindings).is_err() {
        return;
    }
    if limits::check_inferred(&bound, fuzz_path()).is_err() {
        return;
    }
    let mut pm = PassManager::new();
    pm.add(optimize::passes::cleanup::Cleanup);
    if let Err(e) = pm.run(&mut bound) {
        panic!("a pass failed on a valid model: {e}");
    }
}

/// Small models of the test corpus (onnx backend data, under 64 KiB), the mutator's seeds.
pub fn seed_models() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let root = std::env::var_os("OPTIMIZE_FUZZ_SEEDS")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("..")
                    .join(".deps/onnx-data")
            });
        let root = if root.is_dir() {
            root
        } else {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".deps/onnx-data")
        };
        let mut files = Vec::new();
        collect_onnx(&root, &mut files);
        files.sort();
        let seeds: Vec<Vec<u8>> = files
            .iter()
            .filter_map(|p| std::fs::read(p).ok())
            .filter(|b| b.len() <= 64 << 10)
            .collect();
        assert!(
            !seeds.is_empty(),
            "no seed models under {}: run scripts/setup.sh first",
            root.display()
        );
        seeds
    })
}

fn collect_onnx(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_onnx(&p, out);
        } else if p.extension().is_some_and(|x| x == "onnx") {
            out.push(p);
        }
    }
}

const OPS: &[&str] = &[
    "Add",
    "MatMul",
    "Conv",
    "Reshape",
    "Concat",
    "Slice",
    "Gather",
    "Transpose",
    "Expand",
    "Resize",
    "Pad",
    "Split",
    "Squeeze",
    "Unsqueeze",
    "ConstantOfShape",
    "Range",
    "Tile",
    "ReduceSum",
    "Cast",
    "Shape",
    "Where",
    "If",
    "Loop",
    "Scan",
    "Einsum",
    "TopK",
    "NonZero",
    "Constant",
    "Flatten",
    "Softmax",
    "Gemm",
    "MaxPool",
    "LSTM",
    "Identity",
    "Relu",
];

fn pick<T: Copy>(u: &mut Unstructured, v: &[T]) -> arbitrary::Result<T> {
    Ok(*u.choose(v)?)
}

/// An interesting integer: small values, edges, or anything.
fn wild_int(u: &mut Unstructured) -> arbitrary::Result<i64> {
    Ok(match u.int_in_range(0..=4)? {
        0 => u.int_in_range(-3..=8)?,
        1 => pick(u, &[i64::MIN, i64::MAX, 1 << 32, 1 << 40, -(1 << 31), 0])?,
        2 => u.int_in_range(0..=1 << 20)?,
        _ => u.arbitrary()?,
    })
}

/// Applies one structural mutation to `m`.
fn mutate_once(u: &mut Unstructured, m: &mut ModelProto) -> arbitrary::Result<()> {
    let g = m.graph.mut_or_insert_default();
    match u.int_in_range(0..=13)? {
        // Drop a graph input.
        0 if !g.input.is_empty() => {
            let i = u.choose_index(g.input.len())?;
            g.input.remove(i);
        }
        // Swap an initializer's dtype.
        1 if !g.initializer.is_empty() => {
            let i = u.choose_index(g.initializer.len())?;
            g.initializer[i].data_type = u.int_in_range(0..=25)?;
        }
        // Swap a declared input/output dtype.
        2 if !g.input.is_empty() => {
            let i = u.choose_index(g.input.len())?;
            if let Some(type_proto::Value::TensorType(tt)) =
                g.input[i].type_.mut_or_insert_default().value.as_mut()
            {
                tt.elem_type = u.int_in_range(0..=25)?;
            }
        }
        // Corrupt an attribute: its type, its value, or remove it.
        3 if !g.node.is_empty() => {
            let n = u.choose_index(g.node.len())?;
            let node = &mut g.node[n];
            if node.attribute.is_empty() {
                return Ok(());
            }
            let a = u.choose_index(node.attribute.len())?;
            let attr = &mut node.attribute[a];
            match u.int_in_range(0..=4)? {
                0 => attr.type_ = protobuf::EnumOrUnknown::from_i32(u.int_in_range(0..=14)?),
                1 => attr.i = wild_int(u)?,
                2 => {
                    let len = u.int_in_range(0..=6)?;
                    attr.ints = (0..len).map(|_| wild_int(u)).collect::<Result<_, _>>()?;
                }
                3 => attr.f = u.arbitrary()?,
                _ => {
                    node.attribute.remove(a);
                }
            }
        }
        // Break a shape: an initializer dim or a declared input dim.
        4 if !g.initializer.is_empty() => {
            let i = u.choose_index(g.initializer.len())?;
            let t = &mut g.initializer[i];
            if t.dims.is_empty() || u.arbitrary()? {
                t.dims.push(wild_int(u)?);
            } else {
                let d = u.choose_index(t.dims.len())?;
                t.dims[d] = wild_int(u)?;
            }
        }
        5 if !g.input.is_empty() => {
            let i = u.choose_index(g.input.len())?;
            if let Some(type_proto::Value::TensorType(tt)) =
                g.input[i].type_.mut_or_insert_default().value.as_mut()
            {
                let shape = tt.shape.mut_or_insert_default();
                if shape.dim.is_empty() || u.arbitrary()? {
                    shape.dim.push(Default::default());
                }
                let d = u.choose_index(shape.dim.len())?;
                shape.dim[d].value = Some(if u.arbitrary()? {
                    dimension::Value::DimValue(wild_int(u)?)
                } else {
                    dimension::Value::DimParam(pick(u, &["N", "", "batch"])?.to_string())
                });
            }
        }
        // Add a cycle: a node reads the output of a later node.
        6 if g.node.len() >= 2 => {
            let a = u.choose_index(g.node.len() - 1)?;
            let b = u.int_in_range(a + 1..=g.node.len() - 1)?;
            if let Some(out) = g.node[b].output.first().cloned() {
                g.node[a].input.push(out);
            }
        }
        // Drop a node.
        7 if !g.node.is_empty() => {
            let i = u.choose_index(g.node.len())?;
            g.node.remove(i);
        }
        // Change an op type.
        8 if !g.node.is_empty() => {
            let i = u.choose_index(g.node.len())?;
            g.node[i].op_type = pick(u, OPS)?.to_string();
        }
        // Truncate or extend raw data.
        9 if !g.initializer.is_empty() => {
            let i = u.choose_index(g.initializer.len())?;
            let raw = &mut g.initializer[i].raw_data;
            let len = u.int_in_range(0..=raw.len() + 8)?;
            raw.resize(len, 0xAB);
        }
        // Rewire an input to another tensor, or to nothing.
        10 if !g.node.is_empty() => {
            let i = u.choose_index(g.node.len())?;
            let names: Vec<String> = g
                .node
                .iter()
                .flat_map(|n| n.output.iter().cloned())
                .chain(g.input.iter().map(|v| v.name.clone()))
                .chain(g.initializer.iter().map(|t| t.name.clone()))
                .chain([String::new()])
                .collect();
            let name = u.choose(&names)?.clone();
            let node = &mut g.node[i];
            if node.input.is_empty() || u.arbitrary()? {
                node.input.push(name);
            } else {
                let s = u.choose_index(node.input.len())?;
                node.input[s] = name;
            }
        }
        // Change the opset version.
        11 if !m.opset_import.is_empty() => {
            let i = u.choose_index(m.opset_import.len())?;
            m.opset_import[i].version = u.int_in_range(-1..=30)?;
        }
        // Duplicate a node (its outputs are then defined twice).
        12 if !g.node.is_empty() => {
            let i = u.choose_index(g.node.len())?;
            let n = g.node[i].clone();
            g.node.push(n);
        }
        // Flip a byte of the serialized model (done by the caller).
        _ => {}
    }
    Ok(())
}

/// The structure-aware mutator: `data` picks a corpus model and a sequence of mutations
/// (drop inputs, swap dtypes, corrupt attributes, break shapes, add cycles, ...); the
/// mutated model goes through [`shape_infer`] (import, round trip, inference, passes).
pub fn mutate(data: &[u8]) {
    let seeds = seed_models();
    let mut u = Unstructured::new(data);
    let Ok(i) = u.choose_index(seeds.len()) else {
        return;
    };
    let Ok(mut m) = ModelProto::parse_from_bytes(&seeds[i]) else {
        return;
    };
    let steps = u.int_in_range(1..=4u8).unwrap_or(1);
    for _ in 0..steps {
        if mutate_once(&mut u, &mut m).is_err() {
            break;
        }
    }
    let Ok(mut bytes) = m.write_to_bytes() else {
        return;
    };
    if let (Ok(true), Ok(pos), Ok(v)) = (
        u.ratio(1u8, 8u8),
        u.choose_index(bytes.len().max(1)),
        u.arbitrary::<u8>(),
    ) {
        if let Some(b) = bytes.get_mut(pos) {
            *b ^= v;
        }
    }
    shape_infer(&bytes);
}

// ------------------------------------------------------------------ CLI arguments and config

/// Numbers as a hostile user types them.
const HOSTILE_NUMBERS: &[&str] = &[
    "nan",
    "NaN",
    "inf",
    "-inf",
    "-1",
    "0",
    "-0",
    "1e-30",
    "1e308",
    "1e309",
    "0.3",
    "6",
    "32",
    "33",
    "1",
    "2",
    "-2",
    "4",
    "0.125",
    "0.1249",
    "1e6",
    "1000001",
    "18446744073709551616",
    "99999999999999999999",
    "",
    " ",
    "0x10",
    "1_000",
    "\u{ff11}",
    "\u{202e}1",
    "1\n2",
    "abc",
    "0.999",
    "-1e-300",
];
/// Sizes (scratchpad, memory).
const HOSTILE_SIZES: &[&str] = &[
    "0",
    "1",
    "512KiB",
    "1T",
    "2TiB",
    "1024GiB",
    "16E",
    "-5M",
    "1e3K",
    "nan",
    "",
    "1.5GiB",
    "0.5B",
    "99999999999999999999G",
    "8G",
    "1K",
];
/// `--input-shape` values.
const HOSTILE_SHAPES: &[&str] = &[
    "x=1x3", "x=0", "x=-1", "x=", "=1", "x=1x", "x=99999999999999999999", "a=1,b=2", "x=1e3",
    "\u{0}=1", "x=1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1",
];
/// Words for the flags that take one.
const HOSTILE_WORDS: &[&str] = &[
    "minmax",
    "percentile",
    "percentile:99.9",
    "percentile:50",
    "percentile:nan",
    "auto",
    "fixed",
    "free",
    "windows",
    "min-peak",
    "ort",
    "wgpu",
    "bogus",
    "",
    "cnn",
    "gamma:0.25",
];

#[derive(Clone, Copy)]
enum Arg {
    Number,
    Size,
    Shape,
    Word,
    File,
    Switch,
}

const RUN_FLAGS: &[(&str, Arg)] = &[
    ("--tolerance", Arg::Number),
    ("--min-fidelity", Arg::Number),
    ("--samples", Arg::Number),
    ("--seed", Arg::Number),
    ("--size-budget", Arg::Number),
    ("--avg-bits", Arg::Number),
    ("--precision-time-limit", Arg::Number),
    ("--schedule-time-limit", Arg::Number),
    ("--scratchpad", Arg::Size),
    ("--max-memory", Arg::Size),
    ("--input-shape", Arg::Shape),
    ("--calib-method", Arg::Word),
    ("--schedule-mode", Arg::Word),
    ("--runtime", Arg::Word),
    ("--target", Arg::File),
    ("--calib", Arg::File),
    ("--inputs", Arg::File),
    ("--config", Arg::File),
    ("-o", Arg::File),
    ("--report", Arg::File),
    ("--html", Arg::File),
    ("--plan", Arg::File),
    ("--no-precision", Arg::Switch),
    ("--no-validate", Arg::Switch),
    ("--check", Arg::Switch),
    ("--no-config", Arg::Switch),
    ("-q", Arg::Switch),
    ("--weights-in-scratchpad", Arg::Switch),
];

const EXPLAIN_FLAGS: &[(&str, Arg)] = &[
    ("--target", Arg::Number),
    ("--samples", Arg::Number),
    ("--seed", Arg::Number),
    ("--epsilon", Arg::Number),
    ("--relative-epsilon", Arg::Number),
    ("--input-shape", Arg::Shape),
    ("--preset", Arg::Word),
    ("--conv-rule", Arg::Word),
    ("--linear-rule", Arg::Word),
    ("--first-conv-rule", Arg::Word),
    ("--out", Arg::File),
    ("--report", Arg::File),
    ("--html", Arg::File),
    ("--inputs", Arg::File),
    ("--strict", Arg::Switch),
];

/// Config keys, each with the TOML values tried for it.
const CONFIG_KEYS: &[&str] = &[
    "tolerance",
    "min-fidelity",
    "samples",
    "seed",
    "size-budget",
    "avg-bits",
    "schedule-time-limit",
    "scratchpad",
    "calib-method",
    "schedule-mode",
    "validate",
    "precision",
    "output",
    "report",
    "target",
    "calib",
    "input-shape",
    "bogus-key",
];
const CONFIG_VALUES: &[&str] = &[
    "nan",
    "inf",
    "-inf",
    "-1",
    "0",
    "1e-30",
    "0.3",
    "6",
    "1.0e400",
    "18446744073709551616",
    "\"a\"",
    "\"512KiB\"",
    "\"2TiB\"",
    "[1, 2]",
    "[\"x=1x3\"]",
    "{ a = 1 }",
    "true",
    "\"/dev/zero\"",
    "\"fifo\"",
    "\"percentile:99\"",
    "1e6",
    "\"\"",
];

/// A folder with the files the harness points paths at: a FIFO, a folder, a regular file.
struct CliEnv {
    dir: PathBuf,
}

/// Removes the harness's folder (the stable test calls it when done; a fuzzing process
/// leaves its own, one per process).
pub fn cli_env_cleanup() {
    let _ = std::fs::remove_dir_all(&cli_env().dir);
}

fn cli_env() -> &'static CliEnv {
    static ENV: OnceLock<CliEnv> = OnceLock::new();
    ENV.get_or_init(|| {
        // libFuzzer's fork mode runs many short-lived processes: remove the folders of
        // those that are gone.
        if let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(pid) = name.strip_prefix("optimize-fuzz-cli-") else {
                    continue;
                };
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = std::env::temp_dir().join(format!("optimize-fuzz-cli-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("folder")).expect("fuzz folder");
        std::fs::write(dir.join("regular.txt"), b"not a model").expect("fuzz file");
        let made = std::process::Command::new("mkfifo")
            .arg(dir.join("fifo"))
            .status()
            .is_ok_and(|s| s.success());
        assert!(made, "mkfifo failed");
        CliEnv { dir }
    })
}

fn pick_value(u: &mut Unstructured, kind: Arg, env: &CliEnv) -> arbitrary::Result<Option<String>> {
    Ok(match kind {
        Arg::Number => Some(pick(u, HOSTILE_NUMBERS)?.to_string()),
        Arg::Size => Some(pick(u, HOSTILE_SIZES)?.to_string()),
        Arg::Shape => Some(pick(u, HOSTILE_SHAPES)?.to_string()),
        Arg::Word => Some(pick(u, HOSTILE_WORDS)?.to_string()),
        Arg::File => {
            let name = pick(
                u,
                &[
                    "fifo",
                    "folder",
                    "regular.txt",
                    "missing",
                    "",
                    "optimize.toml",
                    "model.onnx",
                ],
            )?;
            Some(match u.int_in_range(0..=5)? {
                0 => "/dev/zero".to_string(),
                _ => env.dir.join(name).to_string_lossy().into_owned(),
            })
        }
        Arg::Switch => None,
    })
}

/// The config file of one program: some top-level keys, maybe a `[[pass]]` list.
fn config_text(u: &mut Unstructured) -> arbitrary::Result<String> {
    let mut text = String::new();
    for _ in 0..u.int_in_range(0..=5)? {
        text.push_str(&format!(
            "{} = {}\n",
            pick(u, CONFIG_KEYS)?,
            pick(u, CONFIG_VALUES)?
        ));
    }
    for _ in 0..u.int_in_range(0..=2)? {
        let name = pick(u, &["precision", "schedule", "cleanup", "bogus"])?;
        text.push_str(&format!("[[pass]]\nname = \"{name}\"\n"));
        if u.arbitrary()? {
            let key = pick(
                u,
                &[
                    "size-budget",
                    "avg-bits",
                    "time-limit",
                    "scratchpad",
                    "calib",
                ],
            )?;
            text.push_str(&format!("{key} = {}\n", pick(u, CONFIG_VALUES)?));
        }
    }
    Ok(text)
}

/// A bad-input error: exit code 2, one line.
fn expect_usage_error(e: &Error, args: &[String]) {
    assert_eq!(
        e.exit_code(),
        2,
        "{args:?}: exit code {} for: {e}",
        e.exit_code()
    );
    assert!(
        !e.to_string().contains('\n'),
        "{args:?}: multi-line error: {e}"
    );
}

/// Checks the options the parser accepted are inside the documented ranges.
fn check_accepted(o: &optimize::PipelineOptions, args: &[String]) {
    use optimize::passes::precision::pass::Budget;
    use optimize::value_checks as v;
    assert!(
        v::tolerance(o.tolerance).is_ok(),
        "{args:?}: tolerance {}",
        o.tolerance
    );
    assert!(
        v::samples(o.samples).is_ok(),
        "{args:?}: samples {}",
        o.samples
    );
    for f in o.fidelity.all_targets() {
        assert!(f.is_finite(), "{args:?}: min fidelity {f}");
    }
    if let Some(p) = &o.precision {
        match p.budget {
            Budget::SizeFraction(f) => assert!(v::size_budget(f).is_ok(), "{args:?}: {f}"),
            Budget::AvgBits(b) => assert!(v::avg_bits(b).is_ok(), "{args:?}: {b}"),
        }
        assert!(
            v::time_limit(p.time_limit_s).is_ok(),
            "{args:?}: {}",
            p.time_limit_s
        );
    }
    if let Some(s) = &o.schedule {
        assert!(s.target.scratchpad_bytes <= v::MAX_SCRATCHPAD, "{args:?}");
        assert!(s.options.time_limit_s.is_finite(), "{args:?}");
    }
}

/// Structure-aware over the command line: a subcommand, flags drawn from the real ones
/// with hostile values (NaN, infinities, negatives, zero, huge numbers and sizes, control
/// characters, devices, FIFOs, folders as files), and an `optimize.toml` beside the model
/// with hostile keys and values. Parsing, the flag and config checks and the option
/// building (`optimize::cli::run_options`, `explain::options`) must never panic; every
/// refusal is one line with exit code 2; every accepted value is inside its range.
pub fn cli_args(data: &[u8]) {
    let env = cli_env();
    let mut u = Unstructured::new(data);
    let Ok(sub) = u.int_in_range(0..=9u8) else {
        return;
    };
    let model = env.dir.join("model.onnx").to_string_lossy().into_owned();
    let (mut args, flags) = match sub {
        0 => (
            vec!["optimize".into(), "explain".into(), model],
            EXPLAIN_FLAGS,
        ),
        1 => (
            vec!["optimize".into(), "inspect".into(), model],
            &[("--input-shape", Arg::Shape)][..],
        ),
        _ => (vec!["optimize".into(), model], RUN_FLAGS),
    };
    let n = u.int_in_range(0..=8u8).unwrap_or(0);
    for _ in 0..n {
        let Ok((flag, kind)) = pick(&mut u, flags) else {
            break;
        };
        args.push(flag.to_string());
        if let Ok(Some(v)) = pick_value(&mut u, kind, env) {
            args.push(v);
        }
    }
    let config = env.dir.join("optimize.toml");
    match config_text(&mut u) {
        Ok(t) if !t.is_empty() => std::fs::write(&config, t).expect("write config"),
        _ => {
            let _ = std::fs::remove_file(&config);
        }
    }
    let cli = match optimize::cli::parse(args.iter().map(std::ffi::OsString::from)) {
        Ok(c) => c,
        Err((code, text)) => {
            assert!(code == 0 || code == 2, "{args:?}: exit code {code}");
            if code == 2 {
                assert_eq!(text.lines().count(), 1, "{args:?}: {text}");
            }
            return;
        }
    };
    match cli.command {
        None => match optimize::cli::run_options(cli.run) {
            Ok((o, _)) => check_accepted(&o, &args),
            Err(e) => expect_usage_error(&e, &args),
        },
        Some(optimize::cli::Command::Explain(a)) => {
            if let Err(e) = optimize::explain::options(*a) {
                expect_usage_error(&e, &args);
            }
        }
        Some(optimize::cli::Command::Inspect { input_shape, .. }) => {
            if let Err(e) = optimize::data::parse_input_shapes(&input_shape) {
                expect_usage_error(&e, &args);
            }
        }
        // Takes no arguments: nothing to build.
        Some(optimize::cli::Command::Passes) => {}
    }
}
