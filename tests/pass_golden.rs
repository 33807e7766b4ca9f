//! Golden IR dumps per pass: every pass of the registry (`passes::registry::REGISTRY`) runs
//! alone, through the pass manager (so its result is verified too), on a small committed
//! fixture under `testdata/passes/`, and the stable IR dump after it is an `insta` snapshot
//! (`tests/snapshots/pass_golden__*.snap`). The scheduling pass has two: the COSMA schedule
//! above M_R and the fused-layer tiling below it.
//!
//! The fixtures are built by the functions below; `fixtures_match_their_builders` checks the
//! committed files are what they build (run it with `UPDATE_FIXTURES=1` to rewrite them).
//! Review every snapshot change with `cargo insta review`; never accept blindly.
//!
//! The precision golden is deterministic: seeded random calibration inputs (seed 7, four
//! samples), the relevance-weighted proxy objective (no measured errors), a size budget,
//! and an ILP small enough to be solved to optimality well inside its time limit.

mod common;

use common::build::{float_input, int_attr, node, serialize};
use onnx_protobuf::{AttributeProto, GraphProto, NodeProto, TensorProto};
use optimize::config::PassSpec;
use optimize::ir::Model;
use optimize::pass_manager::PassManager;
use optimize::passes::precision::pass::{Budget, Objective, PrecisionConfig};
use optimize::passes::precision::section::PrecisionSection;
use optimize::passes::registry::{self, PassSettings};
use optimize::passes::schedule::section::ScheduleSection;
use optimize::passes::schedule::ScheduleConfig;
use optimize::pipeline::{load_and_infer, passes_from_specs};
use std::path::PathBuf;

// ------------------------------------------------------------------ fixtures

fn f32_tensor(name: &str, dims: &[i64], f: impl Fn(usize) -> f32) -> TensorProto {
    let n: i64 = dims.iter().product();
    TensorProto {
        name: name.into(),
        data_type: 1,
        dims: dims.to_vec(),
        raw_data: (0..n as usize).flat_map(|i| f(i).to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// Deterministic weights in [-1, 1] that are not all alike (no `sin` of the platform).
fn wave(seed: usize) -> impl Fn(usize) -> f32 {
    move |i| ((i * 37 + seed * 101) % 97) as f32 / 48.0 - 1.0
}

fn graph(
    name: &str,
    nodes: Vec<NodeProto>,
    input: (&str, &[i64]),
    output: (&str, &[i64]),
    inits: Vec<TensorProto>,
) -> GraphProto {
    GraphProto {
        name: name.into(),
        node: nodes,
        input: vec![float_input(input.0, input.1)],
        output: vec![float_input(output.0, output.1)],
        initializer: inits,
        ..Default::default()
    }
}

fn ints_attr(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: onnx_protobuf::attribute_proto::AttributeType::INTS.into(),
        ints: v.to_vec(),
        ..Default::default()
    }
}

/// Cleanup: two Identity nodes, a dead Neg, an initializer nobody reads.
fn cleanup_fixture() -> Vec<u8> {
    let nodes = vec![
        node("Identity", &["x"], &["a"]),
        node("Relu", &["a"], &["b"]),
        node("Identity", &["b"], &["c"]),
        node("Neg", &["x"], &["dead"]),
        node("Add", &["c", "k"], &["y"]),
    ];
    let inits = vec![
        f32_tensor("k", &[4], wave(1)),
        f32_tensor("unused", &[4], wave(2)),
    ];
    serialize(
        graph("cleanup", nodes, ("x", &[1, 4]), ("y", &[1, 4]), inits),
        8,
    )
}

/// Precision: three MatMuls with weights (an MLP), 64 → 64 → 64 → 10.
fn precision_fixture() -> Vec<u8> {
    let nodes = vec![
        node("MatMul", &["x", "w1"], &["h1"]),
        node("Relu", &["h1"], &["r1"]),
        node("MatMul", &["r1", "w2"], &["h2"]),
        node("Relu", &["h2"], &["r2"]),
        node("MatMul", &["r2", "w3"], &["y"]),
    ];
    let inits = vec![
        f32_tensor("w1", &[64, 64], wave(3)),
        f32_tensor("w2", &[64, 64], wave(4)),
        f32_tensor("w3", &[64, 10], wave(5)),
    ];
    serialize(
        graph("precision", nodes, ("x", &[1, 64]), ("y", &[1, 10]), inits),
        8,
    )
}

/// Scheduling: two branches off `x`, each a large tensor reduced to one value; the file
/// lists both large tensors before either reduction, so they are live together.
fn schedule_fixture() -> Vec<u8> {
    let mut sum_a = node("ReduceSum", &["a"], &["sa"]);
    sum_a.attribute.push(int_attr("keepdims", 1));
    let mut sum_b = node("ReduceSum", &["b"], &["sb"]);
    sum_b.attribute.push(int_attr("keepdims", 1));
    let nodes = vec![
        node("Exp", &["x"], &["a"]),
        node("Sigmoid", &["x"], &["b"]),
        sum_a,
        sum_b,
        node("Add", &["sa", "sb"], &["y"]),
    ];
    serialize(
        graph("schedule", nodes, ("x", &[1, 1024]), ("y", &[1, 1]), vec![]),
        8,
    )
}

/// Tiling: Conv → Relu → Conv → Relu over a 4×32×32 map (16 KiB per activation).
fn tiling_fixture() -> Vec<u8> {
    let conv = |x: &str, w: &str, b: &str, y: &str| {
        let mut n = node("Conv", &[x, w, b], &[y]);
        n.attribute.push(ints_attr("kernel_shape", &[3, 3]));
        n.attribute.push(ints_attr("pads", &[1, 1, 1, 1]));
        n
    };
    let nodes = vec![
        conv("x", "w1", "b1", "c1"),
        node("Relu", &["c1"], &["r1"]),
        conv("r1", "w2", "b2", "c2"),
        node("Relu", &["c2"], &["y"]),
    ];
    let inits = vec![
        f32_tensor("w1", &[4, 4, 3, 3], wave(6)),
        f32_tensor("b1", &[4], wave(7)),
        f32_tensor("w2", &[4, 4, 3, 3], wave(8)),
        f32_tensor("b2", &[4], wave(9)),
    ];
    serialize(
        graph(
            "tiling",
            nodes,
            ("x", &[1, 4, 32, 32]),
            ("y", &[1, 4, 32, 32]),
            inits,
        ),
        8,
    )
}

/// BatchNorm folding: Conv(3×3, bias) → BatchNormalization → Relu over a 3×8×8 map.
fn fold_batchnorm_fixture() -> Vec<u8> {
    let mut conv = node("Conv", &["x", "w", "b"], &["c"]);
    conv.attribute.push(ints_attr("kernel_shape", &[3, 3]));
    conv.attribute.push(ints_attr("pads", &[1, 1, 1, 1]));
    let nodes = vec![
        conv,
        node("BatchNormalization", &["c", "s", "bb", "m", "v"], &["n"]),
        node("Relu", &["n"], &["y"]),
    ];
    // The variance stays positive: 0.5 + a wave in [-1, 1] scaled to [0, 0.5].
    let inits = vec![
        f32_tensor("w", &[4, 3, 3, 3], wave(10)),
        f32_tensor("b", &[4], wave(11)),
        f32_tensor("s", &[4], wave(12)),
        f32_tensor("bb", &[4], wave(13)),
        f32_tensor("m", &[4], wave(14)),
        f32_tensor("v", &[4], |i| 0.75 + wave(15)(i) / 4.0),
    ];
    serialize(
        graph(
            "fold_batchnorm",
            nodes,
            ("x", &[1, 3, 8, 8]),
            ("y", &[1, 4, 8, 8]),
            inits,
        ),
        8,
    )
}

/// Simplification: Conv(1×1, bias) → Mul(per channel) → Add(per channel), the
/// "learnable affine" of PP-LCNetV3.
fn simplify_fixture() -> Vec<u8> {
    let nodes = vec![
        node("Conv", &["x", "w", "b"], &["c"]),
        node("Mul", &["c", "k"], &["s"]),
        node("Add", &["s", "d"], &["y"]),
    ];
    let inits = vec![
        f32_tensor("w", &[4, 3, 1, 1], wave(16)),
        f32_tensor("b", &[4], wave(17)),
        f32_tensor("k", &[1, 4, 1, 1], wave(18)),
        f32_tensor("d", &[1, 4, 1, 1], wave(19)),
    ];
    serialize(
        graph(
            "simplify",
            nodes,
            ("x", &[1, 3, 8, 8]),
            ("y", &[1, 4, 8, 8]),
            inits,
        ),
        8,
    )
}

/// The opset upgrade: a default-opset-11 model whose Unsqueeze takes `axes` as an attribute
/// and whose Softmax flattens to 2-D at axis 1 (both change by opset 13).
fn opset_fixture() -> Vec<u8> {
    use protobuf::Message;
    let mut unsqueeze = node("Unsqueeze", &["x"], &["u"]);
    unsqueeze.attribute.push(ints_attr("axes", &[0]));
    let mut softmax = node("Softmax", &["u"], &["y"]);
    softmax.attribute.push(int_attr("axis", 1));
    let g = graph(
        "opset",
        vec![unsqueeze, softmax],
        ("x", &[2, 3]),
        ("y", &[1, 2, 3]),
        vec![],
    );
    let mut m = onnx_protobuf::ModelProto::parse_from_bytes(&serialize(g, 7)).expect("parse");
    m.opset_import[0].version = 11;
    m.write_to_bytes().expect("serialize")
}

/// Builds a fixture's bytes.
type Builder = fn() -> Vec<u8>;

/// (file name under `testdata/passes/`, builder).
const FIXTURES: &[(&str, Builder)] = &[
    ("cleanup.onnx", cleanup_fixture),
    ("fold_batchnorm.onnx", fold_batchnorm_fixture),
    ("simplify.onnx", simplify_fixture),
    ("opset.onnx", opset_fixture),
    ("precision.onnx", precision_fixture),
    ("schedule.onnx", schedule_fixture),
    ("tiling.onnx", tiling_fixture),
];

fn fixture(name: &str) -> PathBuf {
    common::root().join("testdata/passes").join(name)
}

#[test]
fn fixtures_match_their_builders() {
    let update = std::env::var_os("UPDATE_FIXTURES").is_some();
    for (name, build) in FIXTURES {
        let bytes = build();
        let path = fixture(name);
        if update {
            std::fs::create_dir_all(path.parent().expect("folder")).expect("mkdir");
            std::fs::write(&path, &bytes).expect("write fixture");
        }
        let committed = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_FIXTURES=1 writes it)", path.display()));
        assert!(
            committed == bytes,
            "{name} differs from its builder (UPDATE_FIXTURES=1 rewrites it)"
        );
    }
}

// ------------------------------------------------------------------ goldens

/// Loads a fixture, runs the pass manager on it, and renders the changes and the IR dump
/// after the (last) pass.
fn dump_after(file: &str, pm: &PassManager) -> (Model, String) {
    let mut model = load_and_infer(&fixture(file), &Default::default()).expect("load");
    let records = pm.run(&mut model).expect("the pass runs and verifies");
    let last = records.last().expect("one pass");
    if let Some(section) = &last.section {
        section_reads_back(section.key, &section.body);
    }
    let text = format!(
        "after pass '{}', changes {:?}\n{}",
        last.name,
        last.changes,
        optimize::ir::dump::dump(&model)
    );
    (model, text)
}

/// A pass's report section reads back as its typed section, and that writes the same JSON:
/// what the summary and the HTML report render is what the pass reported.
fn section_reads_back(key: &str, body: &serde_json::Value) {
    let again = match key {
        "precision" => PrecisionSection::from_report(body).map(|s| s.to_json()),
        "schedule" => ScheduleSection::from_report(body).map(|s| s.to_json()),
        other => panic!("a section '{other}' no typed reader knows"),
    };
    assert_eq!(
        again.as_ref(),
        Some(body),
        "{key} section does not read back"
    );
}

fn spec(name: &str) -> PassSpec {
    PassSpec {
        name: name.into(),
        options: Default::default(),
    }
}

fn pass_manager(name: &str, schedule: Option<&ScheduleConfig>) -> PassManager {
    let precision = PrecisionConfig {
        budget: Budget::SizeFraction(0.25),
        budget_explicit: true,
        seed: 7,
        calib_samples: 4,
        // Int8 activations on seeded random ranges (`--calib-random`): the golden covers
        // the QDQ rewrite, which a run without calibration data does not offer.
        calib_random: true,
        objective: Objective::Proxy,
        measure: false,
        time_limit_s: 60.0,
        ..Default::default()
    };
    let settings = PassSettings {
        precision: Some(precision),
        schedule: schedule.cloned(),
    };
    passes_from_specs(&[spec(name)], &settings).expect("pass manager")
}

fn schedule_config(scratchpad: &str, tiling: &str) -> ScheduleConfig {
    let cfg = ScheduleConfig::from_flags(Some(scratchpad), None, None, Some(60.0), false, None)
        .expect("schedule config");
    optimize::passes::schedule::tiling_mode::apply(cfg, Some(tiling))
        .expect("tiling mode")
        .expect("a scratchpad")
}

fn ops(m: &Model) -> Vec<String> {
    m.graph.nodes().map(|(_, n)| n.op_type.clone()).collect()
}

#[test]
fn every_registered_pass_has_a_golden() {
    let goldens = [
        "cleanup",
        "fold-batchnorm",
        "simplify",
        "opset",
        "precision",
        "schedule",
    ];
    let mut known: Vec<&str> = registry::names();
    known.sort();
    let mut have = goldens.to_vec();
    have.sort();
    assert_eq!(have, known, "a registered pass without a golden here");
}

#[test]
fn golden_cleanup() {
    let (m, text) = dump_after("cleanup.onnx", &pass_manager("cleanup", None));
    assert_eq!(ops(&m), ["Relu", "Add"]);
    insta::assert_snapshot!("cleanup", text);
}

#[test]
fn golden_fold_batchnorm() {
    let (m, text) = dump_after("fold_batchnorm.onnx", &pass_manager("fold-batchnorm", None));
    assert_eq!(ops(&m), ["Conv", "Relu"]);
    insta::assert_snapshot!("fold_batchnorm", text);
}

#[test]
fn golden_simplify() {
    let (m, text) = dump_after("simplify.onnx", &pass_manager("simplify", None));
    assert_eq!(ops(&m), ["Conv"]);
    insta::assert_snapshot!("simplify", text);
}

#[test]
fn golden_opset() {
    let (m, text) = dump_after("opset.onnx", &pass_manager("opset", None));
    assert_eq!(m.opset(""), Some(13));
    insta::assert_snapshot!("opset", text);
}

/// A pass list naming precision alone gets the passes it requires before it.
#[test]
fn precision_brings_the_passes_it_requires() {
    assert_eq!(
        pass_manager("precision", None).names(),
        ["fold-batchnorm", "simplify", "precision"]
    );
}

#[test]
fn golden_precision() {
    let (m, text) = dump_after("precision.onnx", &pass_manager("precision", None));
    // Some MatMul left fp32: int4 (MatMulNBits), int8 (DequantizeLinear) or fp16 (Cast).
    let narrowed = ["MatMulNBits", "DequantizeLinear", "Cast"];
    assert!(
        ops(&m).iter().any(|o| narrowed.contains(&o.as_str())),
        "no weight was narrowed: {:?}",
        ops(&m)
    );
    insta::assert_snapshot!("precision", text);
}

#[test]
fn golden_schedule() {
    let cfg = schedule_config("10KiB", "auto");
    let (m, text) = dump_after("schedule.onnx", &pass_manager("schedule", Some(&cfg)));
    // Each large tensor is reduced before the other one is made.
    assert_eq!(ops(&m), ["Exp", "ReduceSum", "Sigmoid", "ReduceSum", "Add"]);
    insta::assert_snapshot!("schedule", text);
}

#[test]
fn golden_schedule_tiled_below_m_r() {
    let cfg = schedule_config("24KiB", "auto");
    let (m, text) = dump_after("tiling.onnx", &pass_manager("schedule", Some(&cfg)));
    assert!(ops(&m).len() > 4, "not tiled: {:?}", ops(&m));
    insta::assert_snapshot!("schedule_tiled", text);
}

// ------------------------------------------------------------------ verification cost

/// What verifying after every pass costs on PP-OCRv4 det (printed; run with
/// `--nocapture`): the default passes (cleanup, mixed precision at the default budget; the
/// proxy objective without measured errors, to keep the test short: the verification's cost
/// does not depend on it), each pass's own seconds beside the seconds its verification took.
#[test]
fn verification_overhead_on_ppocr_det() {
    let det = common::ppocr_models()
        .into_iter()
        .find(|m| m.name == "ppocr/det")
        .expect("ppocr/det");
    let mut model = load_and_infer(&det.path, &det.bindings).expect("load det");
    let start = std::time::Instant::now();
    let check = optimize::pass_manager::TypeCheck::new(&mut model);
    let first = start.elapsed().as_secs_f64();
    assert!(check.typed(), "shape inference types det");
    let precision = PrecisionConfig {
        objective: Objective::Proxy,
        measure: false,
        ..Default::default()
    };
    let settings = PassSettings {
        precision: Some(precision),
        schedule: None,
    };
    let pm = registry::default_list(&settings).expect("default passes");
    let records = pm.run(&mut model).expect("default passes on det");
    let (mut passes, mut verify) = (0.0, first);
    for r in &records {
        println!(
            "{:<10} pass {:>8.3}s  verify {:>6.3}s",
            r.name, r.seconds, r.verify_seconds
        );
        passes += r.seconds;
        verify += r.verify_seconds;
    }
    println!(
        "ppocr/det: {} nodes; passes {passes:.3}s, verification {verify:.3}s ({:.1}%; the check before the first pass {first:.3}s)",
        model.graph.node_count(),
        100.0 * verify / passes.max(1e-9)
    );
    // Loose: verification is a few shape inferences, far below a second each on det.
    assert!(verify < 5.0, "verification took {verify:.3}s");
}

/// The verification blames no pass that keeps the types: cleanup on every corpus model
/// that loads and is typed (the onnx wheel's backend models, PP-OCRv4) passes it, whatever
/// the models declare in their `value_info` and outputs.
#[test]
fn verification_accepts_cleanup_on_every_corpus_model() {
    let mut checked = 0;
    for m in common::corpus() {
        let Ok(mut model) = load_and_infer(&m.path, &m.bindings) else {
            continue;
        };
        let pm =
            passes_from_specs(&[spec("cleanup")], &PassSettings::default()).expect("pass manager");
        if let Err(e) = pm.run(&mut model) {
            panic!("{}: {e}", m.name);
        }
        checked += 1;
    }
    println!("cleanup verified on {checked} corpus models");
    assert!(checked > 100, "{checked} models");
}
