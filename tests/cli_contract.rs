//! The command-line contract on every path (issue 19): a table of runs of the real binary,
//! each with its command, the exit code and the files it must leave. Every row runs in a
//! fresh folder of fixtures built here (tiny models, devices, FIFOs, links, configs,
//! calibration folders), under `prlimit --as=1 GiB` (so the process stays under 1 GB of
//! resident memory) with `TMPDIR` inside the folder, and checks:
//! * the exit code, and that it is never 1 (a bug) nor a signal;
//! * stderr: exactly one line for a failure (containing the expected words), nothing for
//!   a success (rows that print warnings pass `-q`);
//! * every file that was there before is unchanged: content (sha256), mode, type (a
//!   device stays a device, a FIFO a FIFO), link target; only the row's outputs may differ;
//! * no file besides the expected outputs is left (no `.optimize-*` staging folder);
//! * row-specific checks (report values, file modes).
//!
//! The numbers in `cases` are the numbered cases of issue 19 a row covers.

mod common;

use common::build::{float_input, node};
use onnx_protobuf::{
    attribute_proto::AttributeType, tensor_proto::DataLocation, tensor_shape_proto::dimension,
    type_proto, AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, ValueInfoProto,
};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// ------------------------------------------------------------------ models

fn f32_tensor(name: &str, dims: &[i64], v: &[f32]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.data_type = 1;
    t.dims = dims.to_vec();
    t.raw_data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    t
}

fn u8_tensor(name: &str, dims: &[i64], v: &[u8]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.data_type = 2;
    t.dims = dims.to_vec();
    t.raw_data = v.to_vec();
    t
}

fn i64_tensor(name: &str, v: &[i64]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.data_type = 7;
    t.dims = vec![v.len() as i64];
    t.raw_data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    t
}

fn weights(name: &str) -> TensorProto {
    let v: Vec<f32> = (0..64).map(|i| (i as f32 - 31.5) / 32.0).collect();
    f32_tensor(name, &[8, 8], &v)
}

/// A tensor input with symbolic dims written as negative numbers (`-1` → `N`).
fn input(name: &str, elem: i32, dims: &[i64]) -> ValueInfoProto {
    let mut vi = float_input(name, dims);
    if let Some(type_proto::Value::TensorType(tt)) =
        vi.type_.as_mut().and_then(|t| t.value.as_mut())
    {
        tt.elem_type = elem;
        for d in tt.shape.mut_or_insert_default().dim.iter_mut() {
            if d.value == Some(dimension::Value::DimValue(-1)) {
                d.value = Some(dimension::Value::DimParam("N".into()));
            }
        }
    }
    vi
}

fn graph(
    nodes: Vec<NodeProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    inits: Vec<TensorProto>,
) -> GraphProto {
    let mut g = GraphProto::new();
    g.name = "g".into();
    g.node = nodes;
    g.input = inputs;
    g.output = outputs;
    g.initializer = inits;
    g
}

fn model_bytes(g: GraphProto, opsets: &[(&str, i64)]) -> Vec<u8> {
    let mut m = ModelProto::new();
    m.ir_version = 8;
    for (d, v) in opsets {
        let mut o = OperatorSetIdProto::new();
        o.domain = d.to_string();
        o.version = *v;
        m.opset_import.push(o);
    }
    m.producer_name = "cli_contract".into();
    m.graph = Some(g).into();
    m.write_to_bytes().expect("serialize")
}

fn std_model(g: GraphProto) -> Vec<u8> {
    model_bytes(g, &[("", 17)])
}

/// `y = x · w`, x: float[1,8] (or [N,8] with `dynamic`).
fn matmul_model(dynamic: bool) -> Vec<u8> {
    let b = if dynamic { -1 } else { 1 };
    std_model(graph(
        vec![node("MatMul", &["x", "w"], &["y"])],
        vec![input("x", 1, &[b, 8])],
        vec![input("y", 1, &[b, 8])],
        vec![weights("w")],
    ))
}

/// A graph without nodes whose output is its input.
fn passthrough_model() -> Vec<u8> {
    std_model(graph(
        vec![],
        vec![float_input("x", &[2, 3])],
        vec![float_input("x", &[2, 3])],
        vec![],
    ))
}

/// Relu next to an output that is the input.
fn passthrough_relu_model() -> Vec<u8> {
    std_model(graph(
        vec![node("Relu", &["x"], &["y"])],
        vec![float_input("x", &[2, 3])],
        vec![float_input("x", &[2, 3]), float_input("y", &[2, 3])],
        vec![],
    ))
}

/// Relu over a float[1,262144] input (1 MiB per sample).
fn wide_relu_model() -> Vec<u8> {
    std_model(graph(
        vec![node("Relu", &["x"], &["y"])],
        vec![float_input("x", &[1, 262144])],
        vec![float_input("y", &[1, 262144])],
        vec![],
    ))
}

fn graph_attr(name: &str, g: GraphProto) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::GRAPH.into();
    a.g = Some(g).into();
    a
}

/// Every weight inside the branches of an `If`.
fn if_model() -> Vec<u8> {
    let branch = |w: &str, out: &str| {
        graph(
            vec![node("MatMul", &["x", w], &[out])],
            vec![],
            vec![float_input(out, &[1, 8])],
            vec![weights(w)],
        )
    };
    let mut n = node("If", &["c"], &["y"]);
    n.attribute
        .push(graph_attr("then_branch", branch("w1", "t")));
    n.attribute
        .push(graph_attr("else_branch", branch("w2", "e")));
    std_model(graph(
        vec![n],
        vec![float_input("x", &[1, 8]), input("c", 9, &[])],
        vec![float_input("y", &[1, 8])],
        vec![],
    ))
}

/// A MatMul on an empty slice of the input (a zero-size tensor) beside a normal one.
fn zero_size_model() -> Vec<u8> {
    std_model(graph(
        vec![
            node("Slice", &["x", "st", "st", "ax"], &["e"]),
            node("MatMul", &["e", "w"], &["y1"]),
            node("MatMul", &["x", "w"], &["y"]),
        ],
        vec![float_input("x", &[2, 8])],
        vec![float_input("y", &[2, 8]), float_input("y1", &[0, 8])],
        vec![weights("w"), i64_tensor("st", &[0]), i64_tensor("ax", &[0])],
    ))
}

/// QOperator (onnxruntime's quantizer's format): Quantize → QLinearMatMul →
/// com.microsoft QLinearSigmoid (unknown to shape inference) → Dequantize.
fn qoperator_model() -> Vec<u8> {
    let sc = |n: &str, v: f32| f32_tensor(n, &[], &[v]);
    let zp = |n: &str, v: u8| u8_tensor(n, &[], &[v]);
    let wq: Vec<u8> = (0..64).map(|i| (i % 7 + 120) as u8).collect();
    let mut sig = node("QLinearSigmoid", &["yq", "ys", "yz", "ss", "sz"], &["sq"]);
    sig.domain = "com.microsoft".into();
    let g = graph(
        vec![
            node("QuantizeLinear", &["x", "xs", "xz"], &["xq"]),
            node(
                "QLinearMatMul",
                &["xq", "xs", "xz", "wq", "ws", "wz", "ys", "yz"],
                &["yq"],
            ),
            sig,
            node("DequantizeLinear", &["sq", "ss", "sz"], &["y"]),
        ],
        vec![float_input("x", &[1, 8])],
        vec![float_input("y", &[1, 8])],
        vec![
            sc("xs", 0.01),
            zp("xz", 128),
            u8_tensor("wq", &[8, 8], &wq),
            sc("ws", 0.02),
            zp("wz", 123),
            sc("ys", 0.05),
            zp("yz", 128),
            sc("ss", 1.0 / 256.0),
            zp("sz", 0),
        ],
    );
    model_bytes(g, &[("", 13), ("com.microsoft", 1)])
}

/// A com.microsoft op shape inference does not know (SkipLayerNormalization) feeding a
/// MatMul with weights: calibration cannot type its output.
fn fused_op_model() -> Vec<u8> {
    let mut sln = node("SkipLayerNormalization", &["x", "x", "gamma"], &["g"]);
    sln.domain = "com.microsoft".into();
    model_bytes(
        graph(
            vec![sln, node("MatMul", &["g", "w"], &["y"])],
            vec![float_input("x", &[1, 8])],
            vec![float_input("y", &[1, 8])],
            vec![weights("w"), f32_tensor("gamma", &[8], &[1.0; 8])],
        ),
        &[("", 17), ("com.microsoft", 1)],
    )
}

fn kv(k: &str, v: &str) -> StringStringEntryProto {
    let mut e = StringStringEntryProto::new();
    e.key = k.into();
    e.value = v.into();
    e
}

/// The MatMul model with `w` stored in the external file `location`.
fn external_model(location: &str) -> Vec<u8> {
    let mut w = weights("w");
    w.raw_data.clear();
    w.data_location = DataLocation::EXTERNAL.into();
    w.external_data.push(kv("location", location));
    std_model(graph(
        vec![node("MatMul", &["x", "w"], &["y"])],
        vec![float_input("x", &[1, 8])],
        vec![float_input("y", &[1, 8])],
        vec![w],
    ))
}

fn weight_bytes() -> Vec<u8> {
    weights("w").raw_data
}

// ------------------------------------------------------------------ .npy

/// A version 1.0 `.npy` file: header padded to a multiple of 64 bytes, then the data.
fn npy_file(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

fn npy(shape: &[usize], v: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_s = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let data: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    npy_file("<f4", &shape_s, &data)
}

fn npy_bool_scalar(b: bool) -> Vec<u8> {
    npy_file("|b1", "()", &[b as u8])
}

// ------------------------------------------------------------------ fixtures

fn write(d: &Path, rel: &str, bytes: &[u8]) {
    let p = d.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(&p, bytes).expect("write fixture");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
}

fn run_tool(cmd: &str, args: &[&str]) {
    let ok = Command::new(cmd)
        .args(args)
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{cmd} {args:?} failed (the contract test runs as root: it needs mknod, chattr)"
    );
}

/// Builds every fixture a row may use in `d`.
fn fixtures(d: &Path) {
    let v8: Vec<f32> = (0..8).map(|i| i as f32 / 8.0 - 0.4).collect();
    write(d, "m.onnx", &matmul_model(false));
    write(d, "dyn.onnx", &matmul_model(true));
    write(d, "pass.onnx", &passthrough_model());
    write(d, "pass2.onnx", &passthrough_relu_model());
    write(d, "wide.onnx", &wide_relu_model());
    write(d, "if.onnx", &if_model());
    write(d, "zs.onnx", &zero_size_model());
    write(d, "qop.onnx", &qoperator_model());
    write(d, "fused.onnx", &fused_op_model());
    write(d, "ext/ext.onnx", &external_model("w.bin"));
    write(d, "ext/w.bin", &weight_bytes());
    // Its external data sits where `-o ext/o.onnx` would write its own.
    write(d, "ext/clash.onnx", &external_model("o.onnx.data"));
    write(d, "ext/o.onnx.data", &weight_bytes());
    let full = matmul_model(false);
    write(d, "trunc.onnx", &full[..full.len() / 2]);
    write(d, "old.onnx", b"previous output");
    std::fs::set_permissions(d.join("old.onnx"), std::fs::Permissions::from_mode(0o604))
        .expect("chmod");
    write(d, "old.json", b"{}");
    std::fs::set_permissions(d.join("old.json"), std::fs::Permissions::from_mode(0o600))
        .expect("chmod");
    write(d, "cal/s0.npy", &npy(&[1, 8], &v8));
    write(
        d,
        "cal/s1.npy",
        &npy(&[1, 8], &v8.iter().map(|x| -x).collect::<Vec<_>>()),
    );
    let mut nan = v8.clone();
    nan[3] = f32::NAN;
    write(d, "nan/s0.npy", &npy(&[1, 8], &nan));
    let mut inf = v8.clone();
    inf[5] = f32::INFINITY;
    write(d, "inf/s0.npy", &npy(&[1, 8], &inf));
    write(d, "ifcal/s0/x.npy", &npy(&[1, 8], &v8));
    write(d, "ifcal/s0/c.npy", &npy_bool_scalar(true));
    write(d, "bad-key.toml", b"tolerance = 1e-4\nsamples-count = 3\n");
    write(d, "bad-value.toml", b"seed = 1\nmin-fidelity = nan\n");
    write(d, "bad-metric.toml", b"metric = [\"top1\", \"bogus\"]\n");
    write(
        d,
        "tiny-budget.toml",
        b"[[pass]]\nname = \"precision\"\nsize-budget = 1e-30\n",
    );
    write(d, "wrong-type.toml", b"samples = \"many\"\n");
    write(d, "target.toml", b"scratchpad = \"64KiB\"\n");
    write(
        d,
        "dump.toml",
        b"dump-ir-after = [\"cleanup\"]\ndump-dir = \"ir\"\n",
    );
    write(
        d,
        "bad-dump.toml",
        b"dump-ir-after = \"tiling\"\ndump-dir = \"ir\"\n",
    );
    std::fs::create_dir_all(d.join("folder")).expect("mkdir");
    std::fs::create_dir_all(d.join("confdir.toml")).expect("mkdir");
    std::fs::create_dir_all(d.join("tmp")).expect("mkdir");
    std::fs::create_dir_all(d.join("imm")).expect("mkdir");
    std::fs::create_dir_all(d.join("npyzero")).expect("mkdir");
    std::fs::create_dir_all(d.join("npyfifo")).expect("mkdir");
    let p = |r: &str| d.join(r).to_str().expect("utf8").to_string();
    run_tool(
        "mkfifo",
        &[
            &p("fifo"),
            &p("fifo.onnx"),
            &p("fifo.toml"),
            &p("npyfifo/x.npy"),
            &p("ext/fifo.bin"),
        ],
    );
    write(d, "ext/fifodata.onnx", &external_model("fifo.bin"));
    // Character devices made here: /dev/null, /dev/zero, /dev/urandom (never the real ones).
    run_tool("mknod", &[&p("null"), "c", "1", "3"]);
    run_tool("mknod", &[&p("zero"), "c", "1", "5"]);
    run_tool("mknod", &[&p("urandom"), "c", "1", "9"]);
    std::os::unix::fs::symlink(d.join("null"), d.join("null-link")).expect("symlink");
    std::os::unix::fs::symlink(d.join("zero"), d.join("npyzero/x.npy")).expect("symlink");
    std::os::unix::fs::symlink(d.join("m.onnx"), d.join("m-link.onnx")).expect("symlink");
    std::fs::hard_link(d.join("m.onnx"), d.join("m-hard.onnx")).expect("hard link");
}

/// Removes the immutable flag a row set, even when the row fails.
struct Mutable(PathBuf);

impl Drop for Mutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

// ------------------------------------------------------------------ snapshots

/// What a path is: type, mode, and content (sha256), link target or device number.
#[derive(Clone, Debug, PartialEq)]
enum Entry {
    File { mode: u32, sha256: String },
    Dir { mode: u32 },
    Link(PathBuf),
    Device { rdev: u64, mode: u32 },
    Fifo { mode: u32 },
}

fn snapshot(root: &Path) -> BTreeMap<String, Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for p in entries {
            let m = std::fs::symlink_metadata(&p).expect("stat");
            let rel = p
                .strip_prefix(root)
                .expect("prefix")
                .to_string_lossy()
                .into_owned();
            let mode = m.permissions().mode() & 0o7777;
            let t = m.file_type();
            let e = if t.is_symlink() {
                Entry::Link(std::fs::read_link(&p).expect("readlink"))
            } else if t.is_dir() {
                walk(root, &p, out);
                Entry::Dir { mode }
            } else if t.is_char_device() || t.is_block_device() {
                Entry::Device {
                    rdev: m.rdev(),
                    mode,
                }
            } else if t.is_fifo() {
                Entry::Fifo { mode }
            } else {
                let bytes = std::fs::read(&p).expect("read");
                Entry::File {
                    mode,
                    sha256: format!("{:x}", Sha256::digest(&bytes)),
                }
            };
            out.insert(rel, e);
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

// ------------------------------------------------------------------ rows

type Check = fn(&Path, &str);

struct Row {
    name: &'static str,
    cases: &'static [u8],
    args: Vec<&'static str>,
    code: i32,
    /// Files the run writes (relative to the row's folder); they may replace old ones.
    outputs: Vec<&'static str>,
    /// Words the one stderr line of a failure contains.
    stderr: &'static str,
    umask: u32,
    check: Option<Check>,
}

fn row(name: &'static str, cases: &'static [u8], args: &[&'static str], code: i32) -> Row {
    Row {
        name,
        cases,
        args: args.to_vec(),
        code,
        outputs: Vec::new(),
        stderr: "",
        umask: 0o022,
        check: None,
    }
}

impl Row {
    fn out(mut self, files: &[&'static str]) -> Row {
        self.outputs = files.to_vec();
        self
    }
    fn err(mut self, words: &'static str) -> Row {
        self.stderr = words;
        self
    }
    fn umask(mut self, m: u32) -> Row {
        self.umask = m;
        self
    }
    fn check(mut self, c: Check) -> Row {
        self.check = Some(c);
        self
    }
}

fn report(d: &Path, rel: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(d.join(rel)).expect("report")).expect("report JSON")
}

fn mode(d: &Path, rel: &str) -> u32 {
    std::fs::metadata(d.join(rel))
        .expect("stat")
        .permissions()
        .mode()
        & 0o777
}

/// Case 5: the validation of an output that is an input compares equal values.
fn exact_validation(d: &Path, name: &str) {
    let r = report(d, "r.json");
    let v = &r["validation"];
    assert_eq!(v["max_abs_err"], 0.0, "{name}: {v}");
    assert_eq!(v["bit_identical"], true, "{name}: {v}");
    assert_eq!(
        v["runtime"].as_str().map(|s| s.starts_with("onnxruntime")),
        Some(true),
        "{name}"
    );
}

fn batch_bound_to_1(d: &Path, name: &str) {
    let r = report(d, "r.json");
    let b = &r["inputs"]["batch_bound_to_1"][0];
    assert_eq!(b["input"], "x", "{name}: {r}");
    assert_eq!(b["bound_to"], serde_json::json!([1, 8]), "{name}: {b}");
    assert_eq!(r["validation"]["passed"], true, "{name}");
}

fn int8_dropped(d: &Path, name: &str) {
    let r = report(d, "r.json");
    let dropped = r["precision"]["int8_without_range"]
        .as_array()
        .map_or(0, |a| a.len());
    assert!(
        dropped > 0,
        "{name}: no operator kept out of int8: {}",
        r["precision"]
    );
}

fn modes_0644(d: &Path, name: &str) {
    for f in ["o.onnx", "r.json", "r.html"] {
        assert_eq!(mode(d, f), 0o644, "{name}: {f}");
    }
}

fn modes_0640(d: &Path, name: &str) {
    for f in ["o.onnx", "r.json"] {
        assert_eq!(mode(d, f), 0o640, "{name}: {f}");
    }
}

fn modes_kept(d: &Path, name: &str) {
    assert_eq!(mode(d, "old.onnx"), 0o604, "{name}");
    assert_eq!(mode(d, "old.json"), 0o600, "{name}");
    assert_ne!(
        std::fs::read(d.join("old.onnx")).expect("read"),
        b"previous output",
        "{name}: not replaced"
    );
}

/// `--dump-ir-after all`: one dump per pass (precision's required passes included), the
/// precision pass's showing its rewrite.
fn ir_dumps(d: &Path, name: &str) {
    let read = |f: &str| std::fs::read_to_string(d.join("ir").join(f)).expect("dump");
    let (cleanup, precision) = (read("01-cleanup.ir.txt"), read("04-precision.ir.txt"));
    assert!(
        cleanup.contains("MatMul \"MatMul_y\" (x, w)"),
        "{name}: {cleanup}"
    );
    assert!(
        precision.contains("Cast") || precision.contains("DequantizeLinear"),
        "{name}: no narrowed weight after precision: {precision}"
    );
    assert_eq!(mode(d, "ir"), 0o755, "{name}: folder mode");
    assert_eq!(mode(d, "ir/01-cleanup.ir.txt"), 0o644, "{name}: file mode");
}

fn explain_wrote(d: &Path, name: &str) {
    assert!(d.join("eo").is_dir(), "{name}");
    assert_eq!(mode(d, "eo"), 0o755, "{name}: folder mode");
}

/// Every row. `@` starts a path inside the row's folder.
#[rustfmt::skip]
fn rows() -> Vec<Row> {
    const NP: &str = "--no-precision";
    const NV: &str = "--no-validate";
    vec![
        // 1: devices and FIFOs are never replaced.
        row("o_onto_null_device", &[1], &["@m.onnx", "-o", "@null", NP, NV], 2).err("a device"),
        row("o_onto_link_to_device", &[1], &["@m.onnx", "-o", "@null-link", NP, NV], 2).err("a device"),
        row("o_onto_fifo", &[1], &["@m.onnx", "-o", "@fifo", NP, NV], 2).err("FIFO"),
        row("report_onto_device", &[1], &["@m.onnx", "-o", "@o.onnx", "--report", "@null", NP, NV], 2).err("a device"),
        row("html_onto_fifo", &[1], &["@m.onnx", "-o", "@o.onnx", "--html", "@fifo", NP, NV], 2).err("FIFO"),
        row("plan_onto_fifo", &[1], &["@m.onnx", "-o", "@o.onnx", "--scratchpad", "64KiB", "--plan", "@fifo", NP, NV], 2).err("FIFO"),
        row("o_onto_folder", &[1, 4], &["@m.onnx", "-o", "@folder", NP, NV], 2).err("folder"),
        // 2: side outputs never overwrite the input or its external data.
        row("o_is_input", &[2], &["@m.onnx", "-o", "@m.onnx", NP, NV], 2).err("refusing to overwrite the input"),
        row("report_is_input", &[2], &["@m.onnx", "-o", "@o.onnx", "--report", "@m.onnx", NP], 2).err("is the input model"),
        row("html_is_input", &[2], &["@m.onnx", "-o", "@o.onnx", "--html", "@m.onnx", NP], 2).err("is the input model"),
        row("plan_is_input", &[2], &["@m.onnx", "-o", "@o.onnx", "--scratchpad", "64KiB", "--plan", "@m.onnx", NP], 2).err("is the input model"),
        row("report_is_input_via_dotdot", &[2], &["@m.onnx", "-o", "@o.onnx", "--report", "@folder/../m.onnx", NP], 2).err("is the input model"),
        row("report_is_input_via_symlink", &[2], &["@m.onnx", "-o", "@o.onnx", "--report", "@m-link.onnx", NP], 2).err("is the input model"),
        row("html_is_input_via_hard_link", &[2], &["@m.onnx", "-o", "@o.onnx", "--html", "@m-hard.onnx", NP], 2).err("is the input model"),
        row("report_is_external_data", &[2], &["@ext/ext.onnx", "-o", "@o.onnx", "--report", "@ext/w.bin", NP], 2).err("external data"),
        row("o_is_external_data", &[2], &["@ext/ext.onnx", "-o", "@ext/w.bin", NP, NV], 2).err("external data"),
        row("o_data_is_external_data", &[2], &["@ext/clash.onnx", "-o", "@ext/o.onnx", NP, NV], 2).err("external data"),
        // 3: two outputs never share a path.
        row("report_is_o", &[3], &["@m.onnx", "-o", "@o.onnx", "--report", "@o.onnx", NP], 2).err("-o writes the same file"),
        row("html_is_report", &[3], &["@m.onnx", "-o", "@o.onnx", "--report", "@r.json", "--html", "@r.json", NP], 2).err("--report writes the same file"),
        row("plan_is_o", &[3], &["@m.onnx", "-o", "@o.onnx", "--scratchpad", "64KiB", "--plan", "@o.onnx", NP], 2).err("-o writes the same file"),
        // 4: destination folders are checked before any work.
        row("html_into_missing_folder", &[4], &["@m.onnx", "-o", "@o.onnx", "--html", "@none/r.html", NP], 2).err("folder does not exist"),
        row("report_into_missing_folder", &[4], &["@m.onnx", "-o", "@o.onnx", "--report", "@none/r.json", NP], 2).err("folder does not exist"),
        row("report_into_immutable_folder", &[4], &["@m.onnx", "-o", "@o.onnx", "--report", "@imm/r.json", NP], 2).err("not writable"),
        row("o_into_missing_folder", &[4], &["@m.onnx", "-o", "@none/o.onnx", NP, NV], 2).err("folder does not exist"),
        row("o_under_a_file", &[4], &["@m.onnx", "-o", "@m.onnx/o.onnx", NP, NV], 2).err("not a folder"),
        // 5: outputs that are inputs validate exactly on onnxruntime.
        row("graph_without_nodes", &[5], &["@pass.onnx", "-o", "@o.onnx", "--runtime", "ort", "--report", "@r.json", "--samples", "5", NP], 0)
            .out(&["o.onnx", "r.json"]).check(exact_validation),
        row("output_is_input_beside_relu", &[5], &["@pass2.onnx", "-o", "@o.onnx", "--runtime", "ort", "--report", "@r.json", "--samples", "5", NP], 0)
            .out(&["o.onnx", "r.json"]).check(exact_validation),
        // 6: calibration data and ranges.
        row("calib_with_nan", &[6], &["@m.onnx", "-o", "@o.onnx", "--calib", "@nan", "--size-budget", "0.5"], 2).err("nan/s0.npy: input 'x' holds NaN"),
        row("calib_with_inf", &[6], &["@m.onnx", "-o", "@o.onnx", "--calib", "@inf", "--size-budget", "0.5"], 2).err("inf/s0.npy: input 'x' holds an infinity"),
        row("batch_of_zero_calibrates", &[6], &["@dyn.onnx", "-o", "@o.onnx", "--input-shape", "x=0x8", "--size-budget", "0.5", NV, "--calib-random", "-q", "--report", "@r.json"], 0)
            .out(&["o.onnx", "r.json"]).check(int8_dropped),
        row("zero_size_tensor_calibrates", &[6], &["@zs.onnx", "-o", "@o.onnx", "--size-budget", "0.6", "--calib-random", "-q", "--report", "@r.json"], 0)
            .out(&["o.onnx", "r.json"]).check(int8_dropped),
        row("fused_op_before_candidate", &[6], &["@fused.onnx", "-o", "@o.onnx", "--size-budget", "0.6", "--calib-random", "-q", "--report", "@r.json"], 0)
            .out(&["o.onnx", "r.json"]).check(int8_dropped),
        // 7: budgets beyond the solver's range.
        row("size_budget_1e-30", &[7], &["@m.onnx", "-o", "@o.onnx", "--size-budget", "1e-30"], 2).err("--size-budget 1e-30"),
        row("avg_bits_1", &[7], &["@m.onnx", "-o", "@o.onnx", "--avg-bits", "1"], 2).err("--avg-bits 1"),
        row("config_budget_1e-30", &[7, 14], &["@m.onnx", "-o", "@o.onnx", "--config", "@tiny-budget.toml"], 2).err("tiny-budget.toml: key '[[pass]] precision: size-budget' = 1e-30"),
        // 8: reads are bounded and regular-files-only.
        row("inspect_dev_zero", &[8], &["inspect", "@zero", "--max-memory", "1G"], 2).err("a device"),
        row("model_dev_urandom", &[8], &["@urandom", "-o", "@o.onnx"], 2).err("a device"),
        row("model_fifo", &[8], &["@fifo.onnx", "-o", "@o.onnx"], 2).err("FIFO"),
        row("npy_link_to_dev_zero", &[8], &["@m.onnx", "-o", "@o.onnx", "--inputs", "@npyzero", NP], 2).err("a device"),
        row("npy_fifo_in_inputs", &[8], &["@m.onnx", "-o", "@o.onnx", "--inputs", "@npyfifo", NP], 2).err("FIFO"),
        row("config_fifo", &[8], &["@m.onnx", "-o", "@o.onnx", "--config", "@fifo.toml"], 2).err("FIFO"),
        row("target_fifo", &[8], &["@m.onnx", "-o", "@o.onnx", "--target", "@fifo", NP], 2).err("FIFO"),
        row("external_data_fifo", &[8], &["@ext/fifodata.onnx", "-o", "@o.onnx", NP], 2).err("FIFO"),
        row("model_over_max_memory", &[8], &["@m.onnx", "-o", "@o.onnx", "--max-memory", "100"], 2).err("over the memory limit"),
        // 9: samples are streamed; their number is bounded.
        // 600 samples held at once (input + two outputs, 3 MiB each) would pass the 1 GiB cap.
        row("samples_600_stream", &[9], &["@wide.onnx", "-o", "@o.onnx", "--samples", "600", "--runtime", "ort", NP], 0).out(&["o.onnx"]),
        row("samples_over_the_cap", &[9], &["@m.onnx", "-o", "@o.onnx", "--samples", "1000001"], 2).err("--samples 1000001"),
        // 10: out-of-range values are refused before any work.
        row("tolerance_nan", &[10], &["@m.onnx", "-o", "@o.onnx", "--tolerance", "nan"], 2).err("--tolerance NaN"),
        row("tolerance_negative", &[10], &["@m.onnx", "-o", "@o.onnx", "--tolerance", "-1"], 2).err("--tolerance -1"),
        row("tolerance_inf", &[10], &["@m.onnx", "-o", "@o.onnx", "--tolerance", "inf"], 2).err("--tolerance inf"),
        row("min_fidelity_2", &[10], &["@m.onnx", "-o", "@o.onnx", "--min-fidelity", "2"], 2).err("--min-fidelity 2"),
        row("min_fidelity_nan", &[10], &["@m.onnx", "-o", "@o.onnx", "--min-fidelity", "nan"], 2).err("--min-fidelity NaN"),
        row("min_fidelity_minus_2", &[10], &["@m.onnx", "-o", "@o.onnx", "--min-fidelity", "-2"], 2).err("--min-fidelity -2"),
        row("time_limit_huge", &[10], &["@m.onnx", "-o", "@o.onnx", "--precision-time-limit", "1e300"], 2).err("--precision-time-limit 1e300"),
        row("max_memory_beyond_the_machine", &[10], &["@m.onnx", "-o", "@o.onnx", "--max-memory", "1000T"], 2).err("beyond this machine's memory"),
        row("scratchpad_over_1tib", &[10], &["@m.onnx", "-o", "@o.onnx", "--scratchpad", "2048GiB", NP], 2).err("--scratchpad"),
        // 11: no vacuous pass.
        row("samples_0", &[11], &["@m.onnx", "-o", "@o.onnx", "--samples", "0", NP], 2).err("--samples 0"),
        row("batch_of_zero_validates_nothing", &[11], &["@dyn.onnx", "-o", "@o.onnx", "--input-shape", "x=0x8", NP], 2).err("validation compared nothing"),
        // 12: explain on a QOperator model.
        row("explain_qoperator", &[12], &["explain", "@qop.onnx"], 0),
        row("explain_qoperator_out", &[12, 15], &["explain", "@qop.onnx", "--out", "@eo"], 0).out(&["eo/random_0.x.relevance.npy"]).check(explain_wrote),
        // 13: permissions.
        row("new_files_umask_022", &[13], &["@m.onnx", "-o", "@o.onnx", "--report", "@r.json", "--html", "@r.html", NP, NV], 0)
            .out(&["o.onnx", "r.json", "r.html"]).check(modes_0644),
        row("new_files_umask_027", &[13], &["@m.onnx", "-o", "@o.onnx", "--report", "@r.json", NP, NV], 0)
            .out(&["o.onnx", "r.json"]).umask(0o027).check(modes_0640),
        row("replaced_files_keep_mode", &[13], &["@m.onnx", "-o", "@old.onnx", "--report", "@old.json", NP, NV], 0)
            .out(&["old.onnx", "old.json"]).umask(0o077).check(modes_kept),
        // 14: messages.
        row("config_unknown_key", &[14], &["@m.onnx", "-o", "@o.onnx", "--config", "@bad-key.toml"], 2).err("bad-key.toml: line 2: unknown key `samples-count`"),
        row("config_bad_value", &[14], &["@m.onnx", "-o", "@o.onnx", "--config", "@bad-value.toml"], 2).err("bad-value.toml: key 'min-fidelity' = NaN"),
        row("config_wrong_type", &[14], &["@m.onnx", "-o", "@o.onnx", "--config", "@wrong-type.toml"], 2).err("wrong-type.toml: key 'samples' (line 1)"),
        row("config_is_a_folder", &[14], &["@m.onnx", "-o", "@o.onnx", "--config", "@confdir.toml"], 2).err("is a folder"),
        row("calib_is_a_file", &[14], &["@m.onnx", "-o", "@o.onnx", "--calib", "@m.onnx"], 2).err("is a regular file, not a folder"),
        row("truncated_model", &[14], &["@trunc.onnx", "-o", "@o.onnx"], 2).err("trunc.onnx: not a valid ONNX model: the file is truncated"),
        row("explain_names_the_file", &[14], &["explain", "@missing.onnx"], 2).err("missing.onnx: no such file"),
        row("clap_unknown_flag", &[14], &["@m.onnx", "--frobnicate"], 2).err("unexpected argument '--frobnicate'"),
        row("clap_bad_number", &[14], &["@m.onnx", "-o", "@o.onnx", "--samples", "many"], 2).err("invalid value 'many'"),
        row("clap_explain_without_model", &[14], &["explain"], 2).err("required"),
        // 15: explain leaves nothing behind and refuses NaN/Inf.
        row("explain_nan_input", &[15], &["explain", "@m.onnx", "--inputs", "@nan", "--out", "@eo"], 2).err("nan/s0.npy: input 'x' holds NaN"),
        row("explain_inf_input", &[15], &["explain", "@m.onnx", "--inputs", "@inf", "--out", "@eo", "--report", "@r.json"], 2).err("holds an infinity"),
        row("explain_bad_target", &[15], &["explain", "@m.onnx", "--target", "1000000", "--out", "@eo"], 2).err("--target 1000000 is out of range"),
        row("explain_report_is_input", &[15], &["explain", "@m.onnx", "--report", "@m.onnx", "--out", "@eo"], 2).err("is the input model"),
        row("explain_out_is_a_file", &[15], &["explain", "@m.onnx", "--out", "@m.onnx"], 2).err("not a folder"),
        row("explain_samples_0", &[15], &["explain", "@m.onnx", "--samples", "0", "--out", "@eo"], 2).err("--samples 0"),
        row("explain_writes_all", &[15], &["explain", "@m.onnx", "--out", "@eo", "--report", "@r.json"], 0)
            .out(&["eo/random_0.x.relevance.npy", "r.json"]).check(explain_wrote),
        // 16: -q, and --config with --no-config.
        row("quiet_hides_the_calibration_warning", &[16], &["@m.onnx", "-o", "@o.onnx", "-q"], 0).out(&["o.onnx"]),
        row("config_and_no_config", &[16], &["@m.onnx", "-o", "@o.onnx", "--config", "@bad-key.toml", "--no-config"], 2).err("cannot be used with"),
        // 17: an explicit budget the output does not meet.
        // Issue 15: weights inside If branches are candidates (weight-only formats).
        row("budget_below_the_if_branches_smallest", &[17], &["@if.onnx", "-o", "@o.onnx", "--size-budget", "0.2", "--calib", "@ifcal"], 2).err("smallest feasible size budget is 0.2657"),
        row("budget_met_by_if_branch_weights", &[17], &["@if.onnx", "-o", "@o.onnx", "--size-budget", "0.35", "--calib", "@ifcal", "-q"], 0).out(&["o.onnx"]),
        row("avg_bits_4_met_by_if_branch_weights", &[17], &["@if.onnx", "-o", "@o.onnx", "--avg-bits", "4", "-q"], 0).out(&["o.onnx"]),
        row("default_budget_skipped_softly", &[17], &["@if.onnx", "-o", "@o.onnx", "-q", NV], 0).out(&["o.onnx"]),
        row("budget_below_the_smallest", &[17], &["@m.onnx", "-o", "@o.onnx", "--size-budget", "0.13"], 2).err("smallest feasible size budget is 0.3750"),
        // Whole runs that succeed, or fail validation.
        row("all_outputs", &[], &["@m.onnx", "-o", "@o.onnx", "--report", "@r.json", "--html", "@r.html", "--scratchpad", "64KiB", "--plan", "@p.json", "-q"], 0)
            .out(&["o.onnx", "r.json", "r.html", "p.json"]),
        row("target_file_and_plan", &[], &["@m.onnx", "-o", "@o.onnx", "--target", "@target.toml", "--plan", "@p.json", NP], 0).out(&["o.onnx", "p.json"]),
        row("external_data_written_beside", &[], &["@ext/ext.onnx", "-o", "@o.onnx", NP], 0).out(&["o.onnx", "o.onnx.data"]),
        row("check_writes_nothing", &[], &["@m.onnx", "--check", "--report", "@r.json", "-q"], 0),
        row("check_fails_below_min_fidelity", &[], &["@m.onnx", "--check", "--avg-bits", "4", "--min-fidelity", "1", "--calib", "@cal", "--report", "@r.json"], 3).err("below 1"),
        row("validation_failure_writes_report_only", &[], &["@m.onnx", "-o", "@o.onnx", "--avg-bits", "4", "--min-fidelity", "1", "--calib", "@cal", "--report", "@r.json"], 3)
            .out(&["r.json"]).err("fidelity"),
        row("inspect_model", &[], &["inspect", "@m.onnx"], 0),
        // Issue 16: task metrics and targets; a bad one is exit 2, one line naming the flag.
        row("metric_unknown", &[], &["@m.onnx", "-o", "@o.onnx", "--metric", "accuracy"], 2).err("--metric accuracy: unknown metric 'accuracy'"),
        row("metric_for_a_missing_output", &[], &["@m.onnx", "-o", "@o.onnx", "--metric", "nope=top1", NP], 2).err("--metric nope=…: the model has no output 'nope'"),
        row("target_for_a_missing_output", &[], &["@m.onnx", "-o", "@o.onnx", "--min-fidelity", "nope=0.9", NP], 2).err("the model has no output 'nope'"),
        row("rate_target_0", &[], &["@m.onnx", "-o", "@o.onnx", "--metric", "top1", "--min-fidelity", "0"], 2).err("--min-fidelity 0: a target for top1 (a rate over the set) must be in (0, 1]"),
        row("auto_rate_target_negative", &[], &["@m.onnx", "-o", "@o.onnx", "--min-fidelity", "-0.5", NP], 2).err("output 'y' is measured with top1"),
        row("iou_target_above_1", &[], &["@m.onnx", "-o", "@o.onnx", "--metric", "y=iou:0.5", "--min-fidelity", "y=1.5"], 2).err("--min-fidelity y=1.5"),
        row("min_fidelity_with_no_validate", &[], &["@m.onnx", "-o", "@o.onnx", "--min-fidelity", "0.9", NV], 2).err("--min-fidelity needs validation"),
        row("config_unknown_metric", &[], &["@m.onnx", "-o", "@o.onnx", "--config", "@bad-metric.toml"], 2).err("bad-metric.toml: key 'metric' = bogus: unknown metric 'bogus'"),
        // Issue 16: a dynamic batch dimension binds to 1 without data; with data the data decides.
        row("dynamic_batch_bound_to_1", &[], &["@dyn.onnx", "-o", "@o.onnx", NP, "--report", "@r.json", "-q"], 0)
            .out(&["o.onnx", "r.json"]).check(batch_bound_to_1),
        // Issue 18: IR dumps after passes.
        row("dump_ir_unknown_pass", &[], &["@m.onnx", "-o", "@o.onnx", "--dump-ir-after", "frobnicate", "--dump-dir", "@ir"], 2).err("--dump-ir-after frobnicate: unknown pass (known: cleanup, fold-batchnorm, simplify, opset, precision, schedule, or all)"),
        row("dump_ir_without_a_folder", &[], &["@m.onnx", "-o", "@o.onnx", "--dump-ir-after", "cleanup"], 2).err("--dump-ir-after needs --dump-dir DIR"),
        row("dump_ir_with_check", &[], &["@m.onnx", "--check", "--dump-ir-after", "all", "--dump-dir", "@ir"], 2).err("--check writes nothing"),
        row("dump_dir_is_a_file", &[], &["@m.onnx", "-o", "@o.onnx", "--dump-ir-after", "all", "--dump-dir", "@old.json", NP, NV], 2).err("not a folder"),
        row("dump_ir_config_unknown_pass", &[], &["@m.onnx", "-o", "@o.onnx", "--config", "@bad-dump.toml"], 2).err("bad-dump.toml: key 'dump-ir-after' = tiling: unknown pass"),
        row("dump_ir_after_all", &[], &["@m.onnx", "-o", "@o.onnx", "--dump-ir-after", "all", "--dump-dir", "@ir", "--size-budget", "0.5", "-q"], 0)
            .out(&["o.onnx", "ir/01-cleanup.ir.txt", "ir/02-fold-batchnorm.ir.txt", "ir/03-simplify.ir.txt", "ir/04-precision.ir.txt"]).check(ir_dumps),
        row("dump_ir_from_config", &[], &["@m.onnx", "-o", "@o.onnx", "--config", "@dump.toml", NP, NV], 0)
            .out(&["o.onnx", "ir/01-cleanup.ir.txt"]),
        row("metric_and_target_per_output", &[], &["@m.onnx", "-o", "@o.onnx", "--metric", "y=snr", "--min-fidelity", "y=10", NP, "--report", "@r.json", "-q"], 0)
            .out(&["o.onnx", "r.json"]),
        // Issue 17: the latency model's flags.
        row("objective_unknown", &[], &["@m.onnx", "-o", "@o.onnx", "--objective", "fast", NV], 2).err("--objective fast: expected error"),
        row("threads_without_latency_goal", &[], &["@m.onnx", "-o", "@o.onnx", "--threads", "2", NV], 2).err("--threads sets the target of the latency model"),
        row("threads_zero", &[], &["@m.onnx", "-o", "@o.onnx", "--objective", "speed", "--threads", "0", NV], 2).err("--threads 0"),
        row("latency_budget_above_1", &[], &["@m.onnx", "-o", "@o.onnx", "--latency-budget", "1.5", NV], 2).err("--latency-budget 1.5: expected a fraction"),
        row("latency_budget_negative", &[], &["@m.onnx", "-o", "@o.onnx", "--latency-budget", "-0.5", NV], 2).err("--latency-budget -0.5"),
        row("speed_without_precision", &[], &["@m.onnx", "-o", "@o.onnx", "--objective", "speed", NP, NV], 2).err("--no-precision turns mixed precision off"),
    ]
}

/// Runs one row in its own folder and checks the contract.
fn run_row(r: &Row, bin: &Path) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    fixtures(d);
    let args: Vec<String> = r
        .args
        .iter()
        .map(|a| match a.strip_prefix('@') {
            Some(rel) => d.join(rel).to_string_lossy().into_owned(),
            None => a.to_string(),
        })
        .collect();
    let _guard = args.iter().any(|a| a.contains("/imm/")).then(|| {
        run_tool("chattr", &["+i", d.join("imm").to_str().expect("utf8")]);
        Mutable(d.join("imm"))
    });
    let before = snapshot(d);
    let start = Instant::now();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask {:03o}; exec prlimit --as=1073741824 -- \"$@\"",
            r.umask
        ))
        .arg("sh")
        .arg(bin)
        .args(&args)
        .current_dir(d)
        .env("TMPDIR", d.join("tmp"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sh/prlimit");
    // A FIFO that is read would block for ever: stop the row after two minutes (generous:
    // the longest row, samples_600_stream, took 16 s with two builds sharing the 2 cores).
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("{}: still running after 120 s (blocked?)", r.name);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let o = child.wait_with_output().expect("output");
    let wall = start.elapsed();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let name = r.name;
    assert_ne!(o.status.code(), Some(1), "{name}: exit 1 (a bug): {stderr}");
    assert_eq!(
        o.status.code(),
        Some(r.code),
        "{name}: exit code (None = killed by a signal, e.g. over 1 GB), stderr: {stderr}"
    );
    if r.code == 0 {
        assert!(stderr.is_empty(), "{name}: stderr of a success: {stderr}");
    } else {
        assert_eq!(
            stderr.lines().count(),
            1,
            "{name}: one line expected: {stderr}"
        );
        assert!(stderr.starts_with("error: "), "{name}: {stderr}");
        assert!(
            stderr.contains(r.stderr),
            "{name}: '{}' not in: {stderr}",
            r.stderr
        );
        assert!(
            !stderr.contains(".optimize-"),
            "{name}: a staging path leaked: {stderr}"
        );
    }
    drop(_guard);
    let after = snapshot(d);
    let outputs: BTreeSet<&str> = r.outputs.iter().copied().collect();
    for (path, e) in &before {
        if outputs.contains(path.as_str()) {
            continue;
        }
        match (e, after.get(path)) {
            // The folders that hold the outputs: their entries change, not their mode.
            (Entry::Dir { mode }, Some(Entry::Dir { mode: m2 })) => {
                assert_eq!(mode, m2, "{name}: {path}")
            }
            (e, now) => assert_eq!(Some(e), now, "{name}: {path} changed"),
        }
    }
    let implied: BTreeSet<String> = outputs
        .iter()
        .flat_map(|o| {
            Path::new(o)
                .ancestors()
                .skip(1)
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        })
        .filter(|a| !a.is_empty())
        .collect();
    for (path, e) in &after {
        // onnxruntime 1.31 itself keeps a fixed telemetry session file in $TMPDIR, even with
        // telemetry turned off: a file of the library, not an output of the tool.
        if before.contains_key(path) || path == "tmp/.ses" {
            continue;
        }
        let expected = outputs.contains(path.as_str()) || implied.contains(path);
        assert!(expected, "{name}: left behind: {path} ({e:?})");
    }
    for out in &outputs {
        assert!(
            matches!(after.get(*out), Some(Entry::File { .. })),
            "{name}: output {out} not written"
        );
    }
    if let Some(c) = r.check {
        c(d, name);
    }
    wall
}

#[test]
fn every_row_keeps_the_contract() {
    let bin = common::optimize_bin();
    let rows = rows();
    assert!(rows.len() >= 60, "{} rows", rows.len());
    let covered: BTreeSet<u8> = rows.iter().flat_map(|r| r.cases.iter().copied()).collect();
    let all: BTreeSet<u8> = (1..=17).collect();
    assert_eq!(covered, all, "every numbered case of issue 19 has a row");
    let names: BTreeSet<&str> = rows.iter().map(|r| r.name).collect();
    assert_eq!(names.len(), rows.len(), "row names are unique");
    let mut total = Duration::ZERO;
    for r in &rows {
        let wall = run_row(r, &bin);
        total += wall;
        println!(
            "{:<44} exit {}  {:>7.2}s",
            r.name,
            r.code,
            wall.as_secs_f64()
        );
    }
    println!("{} rows in {:.1}s", rows.len(), total.as_secs_f64());
}
