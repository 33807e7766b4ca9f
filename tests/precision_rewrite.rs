//! The number formats and graph rewrite of the mixed-precision pass, checked on
//! onnxruntime 1.31.1: quantization math, MatMulNBits layout against onnxruntime's own
//! kernel, BatchNorm folding, opset upgrade, and uniform Int8 / Fp16 / Int4 rewrites of the
//! PP-OCR models (fidelity, fused kernels in onnxruntime's optimized graph, onnx checker,
//! size). Tests open their own onnxruntime environment (one per process) because they need
//! the optimized-model-path option, which `OrtRuntime` does not expose.

mod common;

use onnx_protobuf::{Message, ModelProto};
use optimize::data::images::CropKind;
use optimize::data::{random_inputs, HostTensor, InputSpec};
use optimize::ir::{DataType, Graph, Model, Node, ValueType};
use optimize::onnx_io::export::to_bytes;
use optimize::onnx_io::ExportOptions;
use optimize::passes::fold_batchnorm::fold_batchnorm;
use optimize::passes::opset::upgrade_default_opset;
use optimize::passes::precision::candidates::{candidates, total_weight_bytes};
use optimize::passes::precision::quantize::*;
use optimize::passes::precision::rewrite::{apply, apply_with};
use optimize::passes::precision::{Assignment, Precision, Range, Ranges};
use optimize::pipeline::load_and_infer;
use optimize::runtime::intermediates::expose_intermediates;
use optimize::runtime::ort_runtime::{from_ort, locate_onnxruntime, to_ort};
use ort::environment::Environment;
use ort::session::{builder::GraphOptimizationLevel, Session};
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

// ------------------------------------------------------------------ onnxruntime

fn env() -> &'static Environment {
    static ENV: OnceLock<Environment> = OnceLock::new();
    ENV.get_or_init(|| {
        let lib = locate_onnxruntime().expect("onnxruntime library (run scripts/setup.sh)");
        ort::init_from(&lib)
            .expect("load onnxruntime")
            .with_name("precision_rewrite")
            .build()
            .expect("onnxruntime environment")
    })
}

/// A session on model bytes: optimizations off, or all of them with the optimized model
/// written to `optimized`.
fn session(bytes: &[u8], optimized: Option<&Path>) -> Session {
    let b = Session::builder(env()).expect("builder");
    let b = match optimized {
        None => b
            .with_optimization_level(GraphOptimizationLevel::Disable)
            .expect("opt level"),
        Some(p) => b
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .expect("opt level")
            .with_optimized_model_path(p)
            .expect("optimized path"),
    };
    let mut b = b.with_intra_threads(2).expect("threads");
    b.commit_from_memory(bytes)
        .unwrap_or_else(|e| panic!("onnxruntime refused the model: {e}"))
}

fn run(s: &mut Session, inputs: &[(String, HostTensor)]) -> Vec<(String, HostTensor)> {
    let feed: Vec<(String, ort::value::DynValue)> = inputs
        .iter()
        .map(|(n, t)| (n.clone(), to_ort(t).expect("to ort")))
        .collect();
    let names: Vec<String> = s.outputs().iter().map(|o| o.name().to_string()).collect();
    let out = s
        .run(feed)
        .unwrap_or_else(|e| panic!("onnxruntime run failed: {e}"));
    names
        .into_iter()
        .map(|n| {
            let t = from_ort(&out[n.as_str()]).expect("from ort");
            (n, t)
        })
        .collect()
}

fn model_bytes(m: &Model) -> Vec<u8> {
    to_bytes(m, &ExportOptions::default()).expect("export")
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += x as f64 * y as f64;
        aa += x as f64 * x as f64;
        bb += y as f64 * y as f64;
    }
    if aa == 0.0 && bb == 0.0 {
        1.0
    } else {
        ab / (aa.sqrt() * bb.sqrt()).max(1e-300)
    }
}

fn max_abs(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).abs())
        .fold(0.0, f64::max)
}

/// Both models on the same inputs: the smallest cosine over the float outputs (each output's
/// values over all samples), printed per output, and the largest absolute difference.
fn fidelity(
    reference: &[u8],
    candidate: &[u8],
    samples: &[Vec<(String, HostTensor)>],
) -> (f64, f64) {
    let mut a = session(reference, None);
    let mut b = session(candidate, None);
    let mut per_output: BTreeMap<String, (Vec<f32>, Vec<f32>)> = BTreeMap::new();
    for s in samples {
        for ((name, x), (_, y)) in run(&mut a, s).iter().zip(run(&mut b, s).iter()) {
            assert_eq!(x.shape, y.shape, "output shapes differ");
            if let (Some(x), Some(y)) = (x.as_f32(), y.as_f32()) {
                let e = per_output.entry(name.clone()).or_default();
                e.0.extend(x);
                e.1.extend(y);
            }
        }
    }
    assert!(!per_output.is_empty(), "no float outputs to compare");
    let (mut cos, mut err) = (f64::INFINITY, 0f64);
    for (name, (ra, rb)) in &per_output {
        let c = cosine(ra, rb);
        println!("  output '{name}': cosine {c:.6} over {} values", ra.len());
        cos = cos.min(c);
        err = err.max(max_abs(ra, rb));
    }
    (cos, err)
}

fn samples(m: &Model, dims: &[i64], seed: u64, n: usize) -> Vec<Vec<(String, HostTensor)>> {
    let name = m.graph.runtime_inputs()[0].to_string();
    let spec = InputSpec::fixed(name, DataType::Float, dims);
    random_inputs(&[spec], seed, n)
        .expect("random inputs")
        .into_iter()
        .map(|s| s.values)
        .collect()
}

/// Quick MinMax calibration: every intermediate exposed, a few seeded inputs.
fn minmax_ranges(m: &Model, inputs: &[Vec<(String, HostTensor)>]) -> Ranges {
    let (exposed, _) = expose_intermediates(m);
    let mut s = session(&model_bytes(&exposed), None);
    let mut ranges: Ranges = HashMap::new();
    for inp in inputs {
        // Graph inputs are not node outputs: take their range from the sample itself.
        let outs = run(&mut s, inp);
        for (name, t) in inp.iter().cloned().chain(outs) {
            let Some(v) = t.as_f32() else { continue };
            let (lo, hi) = v
                .iter()
                .filter(|x| x.is_finite())
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &x| {
                    (l.min(x), h.max(x))
                });
            if lo > hi {
                continue;
            }
            let r = ranges.entry(name).or_insert(Range { min: lo, max: hi });
            r.min = r.min.min(lo);
            r.max = r.max.max(hi);
        }
    }
    ranges
}

fn op_counts(optimized: &Path) -> BTreeMap<String, usize> {
    let bytes = std::fs::read(optimized).expect("optimized model written");
    let p = ModelProto::parse_from_bytes(&bytes).expect("optimized model parses");
    let mut h = BTreeMap::new();
    for n in &p.graph.node {
        *h.entry(n.op_type.clone()).or_insert(0) += 1;
    }
    h
}

fn onnx_check(path: &Path) {
    let root = common::root();
    let out = std::process::Command::new("python3")
        .env("PYTHONPATH", root.join(".deps/py"))
        .arg("-c")
        .arg("import sys, onnx; onnx.checker.check_model(sys.argv[1], full_check=True); print('onnx checker: ok')")
        .arg(path)
        .output()
        .expect("python3 must be installed for the onnx checker");
    assert!(
        out.status.success(),
        "onnx.checker.check_model(full_check=True) failed on {}:\n{}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ppocr(name: &str) -> PathBuf {
    let p = common::root().join(".deps/models").join(name);
    assert!(
        p.is_file(),
        "{} is missing: run scripts/setup.sh",
        p.display()
    );
    p
}

// ------------------------------------------------------------------ number formats

#[test]
fn per_channel_round_trip_within_half_a_step() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let shape = [6usize, 3, 3, 3];
    let w: Vec<f32> = (0..6 * 27)
        .map(|_| rng.random_range(-2.0f32..2.0))
        .collect();
    for bits in [8u32, 4] {
        let q = quantize_per_channel(&w, &shape, 0, bits);
        assert_eq!(q.scales.len(), 6);
        let qmax = (1i32 << (bits - 1)) - 1;
        let back = dequantize_per_channel(&q, &shape, 0);
        for (i, (&a, &b)) in w.iter().zip(&back).enumerate() {
            let s = q.scales[i / 27];
            assert!(
                (a - b).abs() <= s * 0.5 + 1e-6,
                "bits {bits} element {i}: {a} vs {b}"
            );
            assert!((q.values[i] as i32).abs() <= qmax);
        }
        let err = relative_weight_error(
            &w,
            &shape,
            "Conv",
            if bits == 8 {
                Precision::Int8
            } else {
                Precision::Int4
            },
        );
        println!("bits {bits}: relative weight error {err:.3e}");
        assert!(err > 0.0 && err < if bits == 8 { 1e-3 } else { 0.05 });
    }
    // Axis 1 of a [K, N] MatMul weight: one scale per column.
    let q = quantize_per_channel(&w[..12], &[3, 4], 1, 8);
    assert_eq!(q.scales.len(), 4);
    let col_max = (0..3).map(|r| w[r * 4 + 2].abs()).fold(0f32, f32::max);
    assert!((q.scales[2] - col_max / 127.0).abs() < 1e-7);
    assert_eq!(
        relative_weight_error(&w, &shape, "Conv", Precision::Fp32),
        0.0
    );
    let e16 = relative_weight_error(&w, &shape, "Conv", Precision::Fp16);
    assert!(e16 > 0.0 && e16 < 1e-6, "fp16 error {e16}");
}

#[test]
fn int4_packing_low_nibble_first() {
    assert_eq!(pack_int4(&[1, -1, 7, -7, 3]), vec![0xF1, 0x97, 0x03]);
    assert_eq!(pack_int4(&[]), Vec::<u8>::new());
}

#[test]
fn bias_and_activation_parameters() {
    assert_eq!(
        quantize_bias_int32(&[1.0, -2.0, 0.0], 0.5, &[0.1, 0.2, 0.3]),
        vec![20, -20, 0]
    );
    assert_eq!(quantize_bias_int32(&[1.0, 3.0], 0.25, &[2.0]), vec![2, 6]);
    assert_eq!(quantize_bias_int32(&[1e30], 1e-8, &[1e-8]), vec![i32::MAX]);
    let (s, z) = activation_qparams(Range {
        min: -1.0,
        max: 3.0,
    });
    assert!((s - 4.0 / 255.0).abs() < 1e-7);
    assert_eq!(z, 64);
    let r = Range {
        min: -1.0,
        max: 1.0,
    };
    let e = relative_activation_error(r, 0.5);
    let s = 2.0f64 / 255.0;
    assert!((e - s * s / 12.0 / 0.25).abs() < 1e-9);
}

/// One MatMulNBits node, our packing, against onnxruntime's kernel.
fn nbits_model(k: usize, n: usize, m: usize, q: &NBits, level: i64) -> Vec<u8> {
    let mut g = Graph::default();
    g.inputs = vec!["A".into()];
    g.outputs = vec!["Y".into()];
    let kb = k.div_ceil(32) as i64;
    let mut add = |name: &str, dt: DataType, dims: &[i64], raw: Vec<u8>| {
        let mut t = onnx_protobuf::TensorProto::new();
        t.name = name.into();
        t.data_type = dt as i32;
        t.dims = dims.to_vec();
        t.raw_data = raw;
        g.initializers.insert(name.into(), t);
    };
    add("B", DataType::Uint8, &[n as i64, kb, 16], q.packed.clone());
    add(
        "S",
        DataType::Float,
        &[q.scales.len() as i64],
        q.scales.iter().flat_map(|v| v.to_le_bytes()).collect(),
    );
    let zp = q.zero_points.clone().expect("asymmetric");
    add("Z", DataType::Uint8, &[zp.len() as i64], zp);
    let attr = |name: &str, v: i64| {
        let mut a = onnx_protobuf::AttributeProto::new();
        a.name = name.into();
        a.type_ = onnx_protobuf::attribute_proto::AttributeType::INT.into();
        a.i = v;
        a
    };
    let node = Node {
        name: "nb".into(),
        op_type: "MatMulNBits".into(),
        domain: "com.microsoft".into(),
        inputs: vec!["A".into(), "B".into(), "S".into(), "Z".into()],
        outputs: vec!["Y".into()],
        attributes: vec![
            attr("K", k as i64),
            attr("N", n as i64),
            attr("bits", 4),
            attr("block_size", 32),
            attr("accuracy_level", level),
        ],
        ..Default::default()
    };
    g.add_node(node);
    g.set_value_type(
        "A",
        ValueType::tensor(DataType::Float, &[m as i64, k as i64]),
    );
    g.set_value_type(
        "Y",
        ValueType::tensor(DataType::Float, &[m as i64, n as i64]),
    );
    g.relink().expect("relink");
    let model = Model {
        ir_version: 8,
        opsets: vec![(String::new(), 13), ("com.microsoft".into(), 1)],
        graph: g,
        ..Default::default()
    };
    model_bytes(&model)
}

#[test]
fn matmul_nbits_layout_matches_onnxruntime() {
    let (k, n, m) = (80usize, 24usize, 3usize);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let w: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let q = quantize_matmul_nbits(&w, k, n, 32);
    assert_eq!(q.packed.len(), n * 3 * 16);
    assert_eq!(q.scales.len(), n * 3);
    let deq = dequantize_matmul_nbits(&q, k, n, 32);
    let matmul = |wk: &[f32]| -> Vec<f32> {
        let mut y = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                y[i * n + j] = (0..k)
                    .map(|t| a[i * k + t] as f64 * wk[t * n + j] as f64)
                    .sum::<f64>() as f32;
            }
        }
        y
    };
    let want = matmul(&deq);
    let exact = matmul(&w);
    let input = vec![("A".to_string(), HostTensor::from_f32(vec![m, k], &a))];
    for level in [0i64, 4] {
        let mut s = session(&nbits_model(k, n, m, &q, level), None);
        let got = run(&mut s, &input)[0].1.as_f32().expect("float output");
        let err = max_abs(&got, &want);
        let cos = cosine(&got, &exact);
        println!("MatMulNBits accuracy_level {level}: max |ort − A·deq(W)| {err:.3e}, cosine to fp32 {cos:.6}");
        // Level 0 computes in fp32: our layout must reproduce A·deq(W) to rounding.
        // Level 4 quantizes A to int8 blocks: close, not exact.
        let tol = if level == 0 { 1e-4 } else { 0.05 };
        assert!(err < tol, "accuracy_level {level}: max abs err {err}");
        assert!(cos > 0.99);
    }
}

// ------------------------------------------------------------------ BN folding, opset

#[test]
fn fold_batchnorm_keeps_cls_outputs() {
    let path = ppocr("ch_ppocr_mobile_v2.0_cls_infer.onnx");
    let bindings = HashMap::from([("x".to_string(), vec![1, 3, 48, 192])]);
    let orig = load_and_infer(&path, &bindings).expect("load");
    let mut m = orig.clone();
    let bn_before = m
        .graph
        .nodes()
        .filter(|(_, n)| n.is("BatchNormalization"))
        .count();
    let folded = fold_batchnorm(&mut m).expect("fold");
    let bn_after = m
        .graph
        .nodes()
        .filter(|(_, n)| n.is("BatchNormalization"))
        .count();
    println!("cls: {bn_before} BatchNormalization, {folded} folded, {bn_after} left");
    assert_eq!(bn_before - bn_after, folded);
    assert_eq!(bn_after, 0, "every cls BN follows a Conv");
    let (c, e) = fidelity(
        &model_bytes(&orig),
        &model_bytes(&m),
        &samples(&m, &[1, 3, 48, 192], 11, 2),
    );
    println!("cls folded vs original: cosine {c:.9}, max abs err {e:.3e}");
    assert!(e < 1e-4 && c > 0.999999, "folding changed the outputs: {e}");
    assert!(total_weight_bytes(&m) < total_weight_bytes(&orig));
}

#[test]
fn opset_upgrade_keeps_outputs() {
    type Case = (PathBuf, HashMap<String, Vec<i64>>, Vec<i64>);
    let mut models: Vec<Case> = vec![
        (
            ppocr("ch_ppocr_mobile_v2.0_cls_infer.onnx"),
            HashMap::from([("x".into(), vec![1, 3, 48, 192])]),
            vec![1, 3, 48, 192],
        ),
        (
            ppocr("ch_PP-OCRv4_rec_infer.onnx"),
            HashMap::from([("x".into(), vec![1, 3, 48, 320])]),
            vec![1, 3, 48, 320],
        ),
        (
            ppocr("ch_PP-OCRv4_det_infer.onnx"),
            HashMap::from([("x".into(), vec![1, 3, 128, 128])]),
            vec![1, 3, 128, 128],
        ),
    ];
    let light = common::root().join(".deps/onnx-data/light");
    assert!(
        light.is_dir(),
        "{} missing: run scripts/setup.sh",
        light.display()
    );
    for name in [
        "light_resnet50",
        "light_squeezenet",
        "light_bvlc_alexnet",
        "light_densenet121",
        "light_shufflenet",
    ] {
        models.push((
            light.join(format!("{name}.onnx")),
            HashMap::new(),
            vec![1, 3, 224, 224],
        ));
    }
    for (path, bindings, dims) in models {
        let orig = load_and_infer(&path, &bindings).expect("load");
        let mut m = orig.clone();
        let from = m.opset("").unwrap_or(0);
        let changes = upgrade_default_opset(&mut m, 13).expect("upgrade");
        assert_eq!(m.opset(""), Some(13));
        assert!(m.ir_version >= 7);
        let (c, e) = fidelity(
            &model_bytes(&orig),
            &model_bytes(&m),
            &samples(&orig, &dims, 5, 1),
        );
        println!(
            "{}: opset {from} → 13, {} change(s), cosine {c:.9}, max abs err {e:.3e}; first: {:?}",
            path.file_name().unwrap().to_string_lossy(),
            changes.len(),
            changes.first()
        );
        assert!(
            e <= 1e-5 && c > 0.999999,
            "upgrade changed outputs of {}",
            path.display()
        );
    }
}

#[test]
fn opset_upgrade_refuses_unknown_ops_by_name() {
    let path = ppocr("ch_ppocr_mobile_v2.0_cls_infer.onnx");
    let bindings = HashMap::from([("x".to_string(), vec![1, 3, 48, 192])]);
    let mut m = load_and_infer(&path, &bindings).expect("load");
    let idx = m
        .graph
        .nodes()
        .find(|(_, n)| n.is("Relu"))
        .map(|(i, _)| i)
        .expect("a Relu");
    m.graph.ops[idx].op_type = "Upsample".into();
    let before = m.opset("");
    let err = upgrade_default_opset(&mut m, 13).expect_err("Upsample has no known upgrade");
    assert!(err.to_string().contains("Upsample"), "{err}");
    assert_eq!(
        m.opset(""),
        before,
        "a refused upgrade leaves the model alone"
    );
}

/// `g` (relinked) as an opset-13 model with inferred shapes.
fn opset13_model(mut g: Graph) -> Model {
    g.relink().expect("relink");
    let mut m = Model {
        ir_version: 8,
        opsets: vec![(String::new(), 13)],
        graph: g,
        ..Default::default()
    };
    optimize::shape::infer(&mut m, &HashMap::new()).expect("shapes");
    m
}

// ------------------------------------------------------------------ whole-model rewrites

struct Outcome {
    /// The original and the rewritten model, with squashed outputs replaced by their logits.
    reference: Vec<u8>,
    candidate: Vec<u8>,
    cosine: f64,
    size_ratio: f64,
    counts: BTreeMap<String, usize>,
}

/// Loads, folds BN, calibrates, rewrites with `pick`, saves; checks it runs, the checker,
/// and that the input file is unchanged. Returns fidelity and sizes.
fn rewrite_model(file: &str, dims: &[i64], pick: &dyn Fn(&str) -> Option<Precision>) -> Outcome {
    rewrite_model_with(file, dims, pick, false)
}

/// [`rewrite_model`], with the int8 glue pass (the speed objectives' form) when `glue`.
fn rewrite_model_with(
    file: &str,
    dims: &[i64],
    pick: &dyn Fn(&str) -> Option<Precision>,
    glue: bool,
) -> Outcome {
    let path = ppocr(file);
    let before = std::fs::read(&path).expect("read model");
    let bindings = HashMap::from([("x".to_string(), dims.to_vec())]);
    let orig = load_and_infer(&path, &bindings).expect("load");
    let mut m = orig.clone();
    fold_batchnorm(&mut m).expect("fold");
    if glue {
        // The pipeline simplifies before precision (HardSwish, learnable affines).
        optimize::passes::simplify::simplify(&mut m).expect("simplify");
        optimize::shape::infer(&mut m, &bindings).expect("types after simplify");
    }
    let ranges = minmax_ranges(&m, &samples(&m, dims, 1, 3));
    let cands = candidates(&m);
    let assignment: Assignment = cands
        .iter()
        .filter_map(|c| {
            let p = pick(&c.op)?;
            c.bytes_at(p).map(|_| (c.key.clone(), p))
        })
        .collect();
    assert!(!assignment.is_empty(), "{file}: nothing to rewrite");
    let stats = apply_with(&mut m, &assignment, &ranges, glue).expect("rewrite");
    if glue {
        println!("{file}: int8 glue quantized {} ops", stats.int8_glue_ops);
        assert!(
            stats.int8_glue_ops > 0,
            "{file}: the glue pass found nothing"
        );
    }
    assert_eq!(stats.nodes.len(), assignment.len());
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.onnx");
    let bytes = model_bytes(&m);
    std::fs::write(&out, &bytes).expect("write");
    onnx_check(&out);
    let opt = dir.path().join("opt.onnx");
    drop(session(&bytes, Some(&opt)));
    let counts = op_counts(&opt);
    // Squashed outputs say little: a Sigmoid map (det's) is ~0 everywhere on random inputs,
    // which makes its cosine noise, and a Softmax over cls's two classes is positive, which
    // keeps its cosine near 1 whatever the model does. Compare the logits feeding them
    // instead (through Identity; both models keep the names).
    let logits = |name: &String| -> String {
        let producers: HashMap<&str, &Node> = orig
            .graph
            .nodes()
            .flat_map(|(_, n)| n.outputs.iter().map(move |o| (o.as_str(), n)))
            .collect();
        let mut t = name.as_str();
        while let Some(n) = producers.get(t) {
            if n.is("Identity") {
                t = &n.inputs[0];
            } else if n.is("Sigmoid") || n.is("Softmax") {
                return n.inputs[0].clone();
            } else {
                break;
            }
        }
        name.clone()
    };
    let (mut o2, mut m2) = (orig.clone(), m.clone());
    o2.graph.outputs = orig.graph.outputs.iter().map(logits).collect();
    m2.graph.outputs = o2.graph.outputs.clone();
    let (cosine, max_err) = fidelity(
        &model_bytes(&o2),
        &model_bytes(&m2),
        &samples(&orig, dims, 99, 2),
    );
    let size_ratio = total_weight_bytes(&m) as f64 / total_weight_bytes(&orig) as f64;
    let (sb, sa): (u64, u64) = stats
        .nodes
        .iter()
        .fold((0, 0), |(a, b), n| (a + n.bytes_before, b + n.bytes_after));
    println!(
        "{file}: {} ops rewritten ({} nodes inserted), weight bytes {:.3} of fp32 (rewritten ops {sb} → {sa}), cosine {cosine:.6}, max abs err {max_err:.3e}",
        stats.nodes.len(),
        stats.inserted_nodes,
        size_ratio
    );
    println!("  optimized graph op counts: {counts:?}");
    assert_eq!(
        std::fs::read(&path).expect("read"),
        before,
        "input model modified"
    );
    Outcome {
        reference: model_bytes(&o2),
        candidate: model_bytes(&m2),
        cosine,
        size_ratio,
        counts,
    }
}

fn int8_case(file: &str, dims: &[i64]) {
    let o = rewrite_model(file, dims, &|op| {
        (op != "ConvTranspose").then_some(Precision::Int8)
    });
    let path = ppocr(file);
    let m =
        load_and_infer(&path, &HashMap::from([("x".to_string(), dims.to_vec())])).expect("load");
    let convs = candidates(&m).iter().filter(|c| c.op == "Conv").count();
    let fused = o.counts.get("QLinearConv").copied().unwrap_or(0);
    println!("  {file}: {fused} QLinearConv of {convs} int8 Conv");
    assert_eq!(fused, convs, "every int8 Conv must fuse to QLinearConv");
    assert!(o.cosine >= 0.9, "{file}: int8 cosine {}", o.cosine);
    assert!(o.size_ratio <= 0.3, "{file}: int8 size {}", o.size_ratio);
}

#[test]
fn int8_cls() {
    int8_case("ch_ppocr_mobile_v2.0_cls_infer.onnx", &[1, 3, 48, 192]);
}

#[test]
fn int8_rec() {
    int8_case("ch_PP-OCRv4_rec_infer.onnx", &[1, 3, 48, 320]);
}

#[test]
fn int8_det() {
    int8_case("ch_PP-OCRv4_det_infer.onnx", &[1, 3, 256, 256]);
}

/// The int8 glue pass (speed objectives) on det: HardSwish, the learnable affines, the
/// residual Adds, Resize and Concat between int8 Convs run as onnxruntime's QLinear kernels
/// (no float HardSigmoid and almost no Q/DQ left after its fusions), and the logits stay
/// close to fp32's.
#[test]
fn int8_glue_det_runs_int8_chains() {
    let file = "ch_PP-OCRv4_det_infer.onnx";
    let plain = rewrite_model(file, &[1, 3, 256, 256], &|op| {
        (op != "ConvTranspose").then_some(Precision::Int8)
    });
    let glued = rewrite_model_with(
        file,
        &[1, 3, 256, 256],
        &|op| (op != "ConvTranspose").then_some(Precision::Int8),
        true,
    );
    let count = |o: &Outcome, op: &str| o.counts.get(op).copied().unwrap_or(0);
    println!(
        "  without glue: {:?}
  with glue: {:?}",
        plain.counts, glued.counts
    );
    assert!(
        count(&plain, "HardSigmoid") > 0,
        "det has float HardSigmoids without glue"
    );
    assert_eq!(
        count(&glued, "HardSigmoid"),
        0,
        "every HardSigmoid became a QLinearAdd"
    );
    assert!(count(&glued, "QLinearMul") > 20 && count(&glued, "QLinearAdd") > 20);
    // Each uint8 Resize runs channel-first between two Reshapes (int8_resize).
    assert!(
        count(&glued, "Resize") == 6 && count(&glued, "Reshape") >= 12,
        "Resizes not wrapped: {:?}",
        glued.counts
    );
    let qdq = |o: &Outcome| count(o, "QuantizeLinear") + count(o, "DequantizeLinear");
    // What is left: the model input's Q and the DQ before the float head (the Relus after
    // int8 Convs are dropped, their Q/DQ pairs with them).
    assert!(
        qdq(&glued) <= 4 && qdq(&plain) > 100,
        "Q/DQ left: {} with glue, {} without",
        qdq(&glued),
        qdq(&plain)
    );
    assert!(
        glued.cosine >= 0.9,
        "det int8 with glue: cosine {}",
        glued.cosine
    );
}

#[test]
fn fp16_all_models() {
    for (file, dims) in [
        ("ch_ppocr_mobile_v2.0_cls_infer.onnx", vec![1, 3, 48, 192]),
        ("ch_PP-OCRv4_rec_infer.onnx", vec![1, 3, 48, 320]),
        ("ch_PP-OCRv4_det_infer.onnx", vec![1, 3, 256, 256]),
    ] {
        let o = rewrite_model(file, &dims, &|_| Some(Precision::Fp16));
        assert!(o.cosine >= 0.999, "{file}: fp16 cosine {}", o.cosine);
        assert!(
            o.size_ratio > 0.45 && o.size_ratio <= 0.6,
            "{file}: fp16 size {}",
            o.size_ratio
        );
    }
}

#[test]
fn int4_rec_matmuls() {
    let o = rewrite_model("ch_PP-OCRv4_rec_infer.onnx", &[1, 3, 48, 320], &|op| {
        (op == "MatMul").then_some(Precision::Int4)
    });
    let nb = o.counts.get("MatMulNBits").copied().unwrap_or(0);
    println!(
        "  rec int4 MatMuls: {nb} MatMulNBits in the optimized graph, cosine {:.6}",
        o.cosine
    );
    assert!(nb > 0);
    assert!(o.cosine >= 0.9, "int4 MatMul cosine {}", o.cosine);
}

#[test]
fn int4_cls_convs() {
    let o = rewrite_model(
        "ch_ppocr_mobile_v2.0_cls_infer.onnx",
        &[1, 3, 48, 192],
        &|op| (op == "Conv").then_some(Precision::Int4),
    );
    println!(
        "  cls int4 Convs: logits cosine {:.6} on random inputs, size {:.3}",
        o.cosine, o.size_ratio
    );
    // Fidelity on what the classifier decides, on real text-line crops of the photographs
    // (half of them turned by 180°, cls's two classes): seeded random inputs give logits near
    // zero whose cosine is noise (−0.63 measured), and the softmax output is positive, so its
    // cosine was near 1 whatever the weights held. int4 on all 53 Convs (depthwise 3×3 ones
    // included, 9 weights per scale) is lossy by design: measured 28 of 32 decisions kept,
    // margin cosine 0.74. A wrong weight layout or scale decides near chance (nibbles of
    // two channels swapped: 22 of 32).
    let dir = common::root().join(".deps/images");
    let crops = optimize::data::images::crops(&dir, CropKind::Cls, 32, 5)
        .unwrap_or_else(|e| panic!("{e} (run scripts/setup.sh)"));
    let mut a = session(&o.reference, None);
    let mut b = session(&o.candidate, None);
    let (mut agree, mut ma, mut mb) = (0, Vec::new(), Vec::new());
    for (_, crop) in &crops {
        let feed = vec![("x".to_string(), crop.clone())];
        let x = run(&mut a, &feed)[0].1.as_f32().expect("float logits");
        let y = run(&mut b, &feed)[0].1.as_f32().expect("float logits");
        agree += ((x[0] > x[1]) == (y[0] > y[1])) as usize;
        ma.push(x[0] - x[1]);
        mb.push(y[0] - y[1]);
    }
    println!(
        "  cls int4 Convs on {} real crops: top-1 agreement {agree}/{}, logit-margin cosine {:.3}",
        crops.len(),
        crops.len(),
        cosine(&ma, &mb)
    );
    assert!(
        agree * 10 >= crops.len() * 8,
        "cls int4 Convs: top-1 agreement {agree}/{} is below 80%",
        crops.len()
    );
    // The margins follow the original's too (a nibble-swapped weight layout measured 0.31).
    let c = cosine(&ma, &mb);
    assert!(c >= 0.6, "cls int4 Convs: logit-margin cosine {c:.3} < 0.6");
    assert!(o.size_ratio < 0.3);
    // The weight decoding is constant-folded: no DQ or decode op is left to run per call.
    for op in ["DequantizeLinear", "Mod"] {
        assert_eq!(
            o.counts.get(op).copied().unwrap_or(0),
            0,
            "{op} left in the optimized graph: {:?}",
            o.counts
        );
    }
}

/// The int4 Conv weight decoded by onnxruntime (the standard-op chain) equals the
/// per-channel int4 dequantization, for even and odd output-channel counts.
#[test]
fn int4_conv_weight_decodes_exactly() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    for m_out in [4usize, 5] {
        let shape = [m_out, 3, 3, 3];
        let w: Vec<f32> = (0..m_out * 27)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        let mut g = Graph::default();
        g.inputs = vec!["X".into()];
        g.outputs = vec!["Y".into()];
        g.set_value_type("X", ValueType::tensor(DataType::Float, &[1, 3, 8, 8]));
        let mut t = onnx_protobuf::TensorProto::new();
        t.name = "W".into();
        t.data_type = DataType::Float as i32;
        t.dims = shape.iter().map(|&d| d as i64).collect();
        t.raw_data = w.iter().flat_map(|x| x.to_le_bytes()).collect();
        g.initializers.insert("W".into(), t);
        g.add_node(Node {
            name: "conv".into(),
            op_type: "Conv".into(),
            inputs: vec!["X".into(), "W".into()],
            outputs: vec!["Y".into()],
            ..Default::default()
        });
        let mut m = opset13_model(g);
        let a: Assignment = [("Y".to_string(), Precision::Int4)].into_iter().collect();
        apply(&mut m, &a, &HashMap::new()).expect("rewrite");
        let decoded = m
            .graph
            .nodes()
            .find(|(_, n)| n.is("Conv"))
            .map(|(_, n)| n.inputs[1].clone())
            .expect("conv");
        m.graph.outputs.push(decoded.clone());
        let x = samples(&m, &[1, 3, 8, 8], 1, 1);
        let mut s = session(&model_bytes(&m), None);
        let out = run(&mut s, &x[0]);
        let got = out
            .iter()
            .find(|(n, _)| *n == decoded)
            .and_then(|(_, t)| t.as_f32().map(|v| v.to_vec()))
            .expect("decoded weight");
        let want = dequantize_per_channel(&quantize_per_channel(&w, &shape, 0, 4), &shape, 0);
        assert_eq!(got.len(), want.len(), "M = {m_out}");
        assert_eq!(got, want, "M = {m_out}: decoded int4 weight differs");
    }
}

/// The lossless simplifications on det: the HardSwish chains, the Conv and ConvTranspose
/// affines and the affines before 1x1 Convs are gone, outputs agree with the original, and
/// the model passes the onnx checker.
#[test]
fn simplify_det_keeps_outputs() {
    use optimize::passes::simplify::simplify;
    let path = ppocr("ch_PP-OCRv4_det_infer.onnx");
    let dims = [1i64, 3, 160, 160];
    let bind = HashMap::from([("x".to_string(), dims.to_vec())]);
    let original = load_and_infer(&path, &bind).expect("load");
    let mut m = original.clone();
    let stats = simplify(&mut m).expect("simplify");
    optimize::shape::infer(&mut m, &bind).expect("shapes");
    let h = m.graph.op_histogram();
    println!("  det simplify: {stats:?}; ops now {h:?}");
    assert_eq!(stats.hardswish, 24, "HardSwish chains");
    // 56 learnable affines after Convs, and the head's bias Adds and BatchNormalization
    // after its two ConvTransposes.
    assert!(
        stats.conv_affine >= 59,
        "Conv affines: {}",
        stats.conv_affine
    );
    assert!(
        stats.affine_into_conv >= 20,
        "affines into 1x1 Convs: {}",
        stats.affine_into_conv
    );
    for op in ["Clip", "Div", "BatchNormalization"] {
        assert_eq!(h.get(op).copied().unwrap_or(0), 0, "{op} left");
    }
    let x = samples(&original, &dims, 3, 2);
    let (cos, max) = fidelity(&model_bytes(&original), &model_bytes(&m), &x);
    println!("  det simplify: cosine {cos:.9}, max abs {max:.3e}");
    assert!(cos > 0.999999 && max < 1e-3, "cosine {cos}, max abs {max}");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("det_simplified.onnx");
    std::fs::write(&out, model_bytes(&m)).expect("write");
    onnx_check(&out);
}

/// Softmax at opset 12 over a middle axis flattens to 2-D: the upgrade must keep that.
#[test]
fn opset_upgrade_softmax_middle_axis() {
    let mut g = Graph::default();
    g.inputs = vec!["X".into()];
    g.outputs = vec!["Y".into()];
    let mut a = onnx_protobuf::AttributeProto::new();
    a.name = "axis".into();
    a.type_ = onnx_protobuf::attribute_proto::AttributeType::INT.into();
    a.i = 1;
    g.add_node(Node {
        name: "sm".into(),
        op_type: "Softmax".into(),
        inputs: vec!["X".into()],
        outputs: vec!["Y".into()],
        attributes: vec![a],
        ..Default::default()
    });
    g.set_value_type("X", ValueType::tensor(DataType::Float, &[2, 3, 4]));
    g.set_value_type("Y", ValueType::tensor(DataType::Float, &[2, 3, 4]));
    g.relink().expect("relink");
    let orig = Model {
        ir_version: 7,
        opsets: vec![(String::new(), 12)],
        graph: g,
        ..Default::default()
    };
    let mut m = orig.clone();
    let changes = upgrade_default_opset(&mut m, 13).expect("upgrade");
    println!("{changes:?}");
    assert!(m.graph.nodes().any(|(_, n)| n.is("Flatten")));
    let (c, e) = fidelity(
        &model_bytes(&orig),
        &model_bytes(&m),
        &samples(&orig, &[2, 3, 4], 4, 2),
    );
    assert!(
        e < 1e-6 && c > 0.999999,
        "softmax upgrade changed outputs: {e}"
    );
}

#[test]
fn rewrite_is_deterministic_and_needs_ranges() {
    let path = ppocr("ch_ppocr_mobile_v2.0_cls_infer.onnx");
    let dims = [1i64, 3, 48, 192];
    let bindings = HashMap::from([("x".to_string(), dims.to_vec())]);
    let mut m = load_and_infer(&path, &bindings).expect("load");
    fold_batchnorm(&mut m).expect("fold");
    let ranges = minmax_ranges(&m, &samples(&m, &dims, 1, 1));
    let cands = candidates(&m);
    // Mixed: alternate int8 / fp16 / int4 / fp32 over the candidates.
    let cycle = [
        Precision::Int8,
        Precision::Fp16,
        Precision::Int4,
        Precision::Fp32,
    ];
    let assignment: Assignment = cands
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let p = cycle[i % 4];
            c.bytes_at(p).map(|_| (c.key.clone(), p))
        })
        .collect();
    let (mut a, mut b) = (m.clone(), m.clone());
    let sa = apply(&mut a, &assignment, &ranges).expect("rewrite a");
    let sb = apply(&mut b, &assignment, &ranges).expect("rewrite b");
    assert_eq!(sa, sb);
    let bytes = model_bytes(&a);
    assert_eq!(bytes, model_bytes(&b), "same input, same output bytes");
    for n in &sa.nodes {
        let c = cands.iter().find(|c| c.key == n.key).expect("candidate");
        assert_eq!(
            Some(n.bytes_after),
            c.bytes_at(n.precision),
            "{}: emitted bytes differ from the candidate's estimate",
            n.key
        );
    }
    let (c, _) = fidelity(&model_bytes(&m), &bytes, &samples(&m, &dims, 42, 1));
    println!("cls mixed int8/fp16/int4/fp32: cosine {c:.6}");
    assert!(c > 0.9);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("mixed.onnx"), &bytes).expect("write");
    onnx_check(&dir.path().join("mixed.onnx"));
    // An int8 op without a range for its input is an internal error naming the tensor.
    let first = &cands[0];
    let mut partial = ranges.clone();
    partial.remove(&first.activation_inputs[0]);
    let one: Assignment = [(first.key.clone(), Precision::Int8)].into();
    let err = apply(&mut m.clone(), &one, &partial).expect_err("missing range");
    assert!(
        err.to_string().contains(&first.activation_inputs[0]),
        "{err}"
    );
}

// ------------------------------------------------------------------ speed rewrites

fn a_text(name: &str, v: &str) -> onnx_protobuf::AttributeProto {
    let mut a = onnx_protobuf::AttributeProto::new();
    a.name = name.into();
    a.type_ = onnx_protobuf::attribute_proto::AttributeType::STRING.into();
    a.s = v.as_bytes().to_vec();
    a
}

/// `X → Q → DQ → Resize → Q → DQ` three times: nearest with scales (rewritten), linear
/// and nearest-with-sizes (both left alone); batch 2, so a wrong fold of N·C would show.
fn quantized_resizes() -> Model {
    use optimize::ir::build::{add_initializer, f32_tensor, i64_tensor, node, raw_tensor};
    let mut g = Graph::default();
    g.inputs = vec!["X".into()];
    let dims = [2i64, 3, 4, 5];
    g.set_value_type("X", ValueType::tensor(DataType::Float, &dims));
    add_initializer(&mut g, f32_tensor("s", &[], &[0.05]));
    add_initializer(&mut g, raw_tensor("z", DataType::Uint8, &[], vec![128]));
    add_initializer(&mut g, f32_tensor("roi", &[0], &[]));
    add_initializer(&mut g, f32_tensor("scales", &[4], &[1.0, 1.0, 2.0, 3.0]));
    add_initializer(&mut g, f32_tensor("none", &[0], &[]));
    add_initializer(&mut g, i64_tensor("sizes", &[2, 3, 8, 15]));
    g.add_node(node(
        "q",
        "QuantizeLinear",
        &["X", "s", "z"],
        &["xq"],
        vec![],
    ));
    g.add_node(node(
        "dq",
        "DequantizeLinear",
        &["xq", "s", "z"],
        &["xd"],
        vec![],
    ));
    let cases: [(&str, &str, [&str; 2]); 3] = [
        ("nearest", "nearest", ["scales", ""]),
        ("linear", "linear", ["scales", ""]),
        ("sized", "nearest", ["none", "sizes"]),
    ];
    for (name, mode, [scales, sizes]) in cases {
        let mut inputs = vec!["xd", "roi", scales];
        if !sizes.is_empty() {
            inputs.push(sizes);
        }
        let attrs = vec![
            a_text("mode", mode),
            a_text("coordinate_transformation_mode", "asymmetric"),
        ];
        let (r, rq, y) = (
            format!("{name}_r"),
            format!("{name}_q"),
            format!("Y_{name}"),
        );
        g.add_node(node(name, "Resize", &inputs, &[&r], attrs));
        g.add_node(node(
            &format!("{name}_quantize"),
            "QuantizeLinear",
            &[&r, "s", "z"],
            &[&rq],
            vec![],
        ));
        g.add_node(node(
            &format!("{name}_dequantize"),
            "DequantizeLinear",
            &[&rq, "s", "z"],
            &[&y],
            vec![],
        ));
        g.outputs.push(y);
    }
    opset13_model(g)
}

/// The channel-first Resize of the int8 glue: only the nearest, scale-driven Resize between
/// a DQ and a Q is wrapped in Reshapes, and every output stays bit-identical on
/// onnxruntime.
#[test]
fn int8_resize_runs_channel_first_with_identical_values() {
    use optimize::ir::build::Namer;
    use optimize::passes::precision::int8_resize::channel_first_resizes;
    let orig = quantized_resizes();
    let mut m = orig.clone();
    let mut namer = Namer::new(&m.graph);
    let n = channel_first_resizes(&mut m.graph, &mut namer).expect("rewrite");
    assert_eq!(n, 1, "only the nearest Resize with scales is rewritten");
    optimize::shape::infer(&mut m, &HashMap::new()).expect("shapes after the rewrite");
    let g = &m.graph;
    let resize = |name: &str| {
        g.nodes()
            .find(|(_, n)| n.name == name)
            .map(|(_, n)| n.clone())
            .expect("Resize kept")
    };
    let producer_op = |t: &str| g.producer(t).map(|p| g.ops[p].op_type.clone());
    let near = resize("nearest");
    assert_eq!(producer_op(&near.inputs[0]).as_deref(), Some("Reshape"));
    let readers = g.consumers(&near.outputs[0]);
    assert!(readers.len() == 1 && g.ops[readers[0].0].is("Reshape"));
    for other in ["linear", "sized"] {
        let r = resize(other);
        assert_eq!(
            producer_op(&r.inputs[0]).as_deref(),
            Some("DequantizeLinear"),
            "{other}"
        );
    }
    let x = samples(&orig, &[2, 3, 4, 5], 7, 2);
    let (mut a, mut b) = (
        session(&model_bytes(&orig), None),
        session(&model_bytes(&m), None),
    );
    for s in &x {
        for ((name, want), (_, got)) in run(&mut a, s).iter().zip(run(&mut b, s).iter()) {
            assert_eq!(want.shape, got.shape, "{name}");
            assert_eq!(want.as_f32(), got.as_f32(), "{name} changed");
        }
    }
}

/// `ConvTranspose → Add(bias) → BatchNormalization` (det's head) and `ConvTranspose(group 2)
/// → Mul → Add` fold into the ConvTranspose: one node left per chain, outputs equal to
/// float rounding.
#[test]
fn simplify_folds_conv_transpose_affines() {
    use optimize::ir::build::{a_int, add_initializer, f32_tensor, node};
    let mut g = Graph::default();
    g.inputs = vec!["X".into()];
    g.set_value_type("X", ValueType::tensor(DataType::Float, &[1, 4, 5, 5]));
    let wave = |n: usize, k: f32| -> Vec<f32> { (0..n).map(|i| ((i as f32) * k).sin()).collect() };
    let inits: [(&str, &[i64], Vec<f32>); 9] = [
        ("w1", &[4, 6, 2, 2], wave(96, 0.7)),
        ("b1", &[1, 6, 1, 1], wave(6, 1.3)),
        (
            "gamma",
            &[6],
            wave(6, 0.4).iter().map(|v| 1.0 + v).collect(),
        ),
        ("beta", &[6], wave(6, 2.1)),
        ("mean", &[6], wave(6, 0.9)),
        ("var", &[6], wave(6, 0.3).iter().map(|v| 1.5 + v).collect()),
        ("w2", &[4, 3, 3, 3], wave(108, 0.5)),
        ("k2", &[1, 6, 1, 1], wave(6, 1.7)),
        ("d2", &[], vec![0.25]),
    ];
    for (name, dims, v) in inits {
        add_initializer(&mut g, f32_tensor(name, dims, &v));
    }
    let ct = |name: &str, x: &str, w: &str, y: &str, attrs| {
        node(name, "ConvTranspose", &[x, w], &[y], attrs)
    };
    let stride = || {
        let mut a = onnx_protobuf::AttributeProto::new();
        a.name = "strides".into();
        a.type_ = onnx_protobuf::attribute_proto::AttributeType::INTS.into();
        a.ints = vec![2, 2];
        a
    };
    g.add_node(ct("ct1", "X", "w1", "c1", vec![stride()]));
    g.add_node(node("add1", "Add", &["c1", "b1"], &["a1"], vec![]));
    let bn = ["a1", "gamma", "beta", "mean", "var"];
    g.add_node(node("bn", "BatchNormalization", &bn, &["Y1"], vec![]));
    g.add_node(ct("ct2", "X", "w2", "c2", vec![a_int("group", 2)]));
    g.add_node(node("mul2", "Mul", &["c2", "k2"], &["m2"], vec![]));
    g.add_node(node("add2", "Add", &["m2", "d2"], &["Y2"], vec![]));
    g.outputs = vec!["Y1".into(), "Y2".into()];
    let orig = opset13_model(g);
    let mut m = orig.clone();
    let stats = optimize::passes::simplify::simplify(&mut m).expect("simplify");
    assert_eq!(
        stats.conv_affine, 4,
        "Add and BN after ct1, Mul and Add after ct2"
    );
    let ops: Vec<String> = m.graph.nodes().map(|(_, n)| n.op_type.clone()).collect();
    assert_eq!(ops, ["ConvTranspose", "ConvTranspose"]);
    let (cos, max) = fidelity(
        &model_bytes(&orig),
        &model_bytes(&m),
        &samples(&orig, &[1, 4, 5, 5], 3, 2),
    );
    assert!(cos > 0.9999999 && max < 1e-5, "cosine {cos}, max abs {max}");
}

/// An empty graph with one float input `X` of `dims` and one float weight `w` of `wdims`
/// (values from a cosine wave).
fn graph_with_weight(dims: &[i64], wdims: &[i64]) -> Graph {
    use optimize::ir::build::{add_initializer, f32_tensor};
    let mut g = Graph::default();
    g.inputs = vec!["X".into()];
    g.set_value_type("X", ValueType::tensor(DataType::Float, dims));
    let n = wdims.iter().product::<i64>() as usize;
    let w: Vec<f32> = (0..n).map(|i| (i as f32 * 1.3).cos()).collect();
    add_initializer(&mut g, f32_tensor("w", wdims, &w));
    g
}

/// Ranges by tensor name from `(name, min, max)`.
fn ranges_of(r: &[(&str, f32, f32)]) -> Ranges {
    r.iter()
        .map(|&(k, min, max)| (k.to_string(), Range { min, max }))
        .collect()
}

/// Every candidate of `m` at int8 (asserting how many there are).
fn all_int8(m: &Model, expected: usize) -> Assignment {
    let a: Assignment = candidates(m)
        .into_iter()
        .map(|c| (c.key, Precision::Int8))
        .collect();
    assert_eq!(a.len(), expected, "candidates");
    a
}

/// In the speed objectives' form, an int8 Conv reading a Split's output quantizes it with the
/// Split input's parameters (so onnxruntime runs the Split on uint8); the plain rewrite
/// keeps the tensor's own range.
#[test]
fn int8_input_after_a_move_shares_the_moves_input_parameters() {
    use optimize::ir::build::{a_int, add_initializer, i64_tensor, node};
    let mut g = graph_with_weight(&[1, 4, 6, 6], &[3, 2, 1, 1]);
    add_initializer(&mut g, i64_tensor("parts", &[2, 2]));
    g.add_node(node("sig", "Sigmoid", &["X"], &["s"], vec![]));
    let split = node(
        "split",
        "Split",
        &["s", "parts"],
        &["s0", "s1"],
        vec![a_int("axis", 1)],
    );
    g.add_node(split);
    g.add_node(node("conv", "Conv", &["s1", "w"], &["Y"], vec![]));
    g.add_node(node("keep", "Identity", &["s0"], &["Y0"], vec![]));
    g.outputs = vec!["Y".into(), "Y0".into()];
    let m = opset13_model(g);
    let ranges = ranges_of(&[
        ("s", 0.0, 1.0),
        ("s0", 0.1, 0.9),
        ("s1", 0.2, 0.6),
        ("Y", -2.0, 2.0),
    ]);
    let assignment = all_int8(&m, 1);
    // The scale of the QuantizeLinear that reads `s1`.
    let q_scale = |glue: bool| -> f32 {
        let mut r = m.clone();
        apply_with(&mut r, &assignment, &ranges, glue).expect("rewrite");
        let g = &r.graph;
        let q = g
            .nodes()
            .find(|(_, n)| n.is("QuantizeLinear") && n.inputs[0] == "s1")
            .map(|(_, n)| n.inputs[1].clone())
            .expect("a Q of s1");
        let t = g.constant_tensor(&q).expect("scale constant");
        optimize::ir::tensor::tensor_f32(t).expect("f32").0[0]
    };
    let own = activation_qparams(ranges["s1"]).0;
    let shared = activation_qparams(ranges["s"]).0;
    assert_eq!(q_scale(false), own, "the plain rewrite uses s1's range");
    assert_eq!(
        q_scale(true),
        shared,
        "the glue form uses the Split input's range"
    );
}

/// In the speed objectives' form, an int8 Conv whose only reader is a Relu quantizes its
/// output onto the Relu output's range (the Q does the clamp, onnxruntime drops the Relu);
/// the plain rewrite keeps the Conv output's own range.
#[test]
fn int8_output_read_by_a_relu_takes_the_relus_range() {
    use optimize::ir::build::node;
    let mut g = graph_with_weight(&[1, 2, 5, 5], &[2, 2, 1, 1]);
    g.add_node(node("conv", "Conv", &["X", "w"], &["c"], vec![]));
    g.add_node(node("relu", "Relu", &["c"], &["Y"], vec![]));
    g.outputs = vec!["Y".into()];
    let m = opset13_model(g);
    let ranges = ranges_of(&[("X", -1.0, 1.0), ("c", -3.0, 2.0), ("Y", 0.0, 2.0)]);
    let assignment = all_int8(&m, 1);
    let conv_out_scale = |glue: bool| -> (f32, Vec<u8>) {
        let mut r = m.clone();
        apply_with(&mut r, &assignment, &ranges, glue).expect("rewrite");
        let g = &r.graph;
        let q = g
            .nodes()
            .find(|(_, n)| {
                n.is("QuantizeLinear")
                    && g.producer(&n.inputs[0])
                        .is_some_and(|p| g.ops[p].is("Conv"))
            })
            .map(|(_, n)| n.clone())
            .expect("the Conv's output Q");
        let s = optimize::ir::tensor::tensor_f32(g.constant_tensor(&q.inputs[1]).expect("scale"));
        let z = g
            .constant_tensor(&q.inputs[2])
            .expect("zero point")
            .raw_data
            .clone();
        (s.expect("f32").0[0], z)
    };
    let (own, own_zp) = activation_qparams(ranges["c"]);
    let (relu, relu_zp) = activation_qparams(ranges["Y"]);
    assert_eq!(conv_out_scale(false), (own, vec![own_zp]));
    assert_eq!(conv_out_scale(true), (relu, vec![relu_zp]));
    assert_eq!(
        relu_zp, 0,
        "the Relu's range starts at 0: the Q clamps like the Relu"
    );
}

/// Dynamic int8 (speed objectives only): a MatMul with a constant weight becomes
/// `DynamicQuantizeLinear → MatMulInteger → Cast → Mul`, needs no calibrated range, stores
/// what the candidate says, and onnxruntime fuses the chain with the bias Add after it into
/// one `DynamicQuantizeMatMul` whose output stays close to fp32's.
#[test]
fn int8_dynamic_matmul_fuses_to_dynamic_quantize_matmul() {
    use optimize::ir::build::{add_initializer, f32_tensor, node};
    use optimize::passes::precision::candidates::offer_for_mode;
    let (k, n) = (64usize, 96usize);
    let mut g = graph_with_weight(&[1, 24, k as i64], &[k as i64, n as i64]);
    let bias: Vec<f32> = (0..n).map(|i| (i as f32 * 0.7).sin()).collect();
    add_initializer(&mut g, f32_tensor("bias", &[n as i64], &bias));
    g.add_node(node("mm", "MatMul", &["X", "w"], &["m"], vec![]));
    g.add_node(node("add", "Add", &["m", "bias"], &["Y"], vec![]));
    g.outputs = vec!["Y".into()];
    let m = opset13_model(g);
    let cands = candidates(&m);
    assert_eq!(cands.len(), 1);
    let stored = stored_bytes("MatMul", &[k, n], 1, 0, Precision::Int8Dyn);
    assert_eq!(cands[0].bytes_at(Precision::Int8Dyn), Some(stored));
    assert_eq!(
        stored,
        (k * n + 4 * n) as u64,
        "int8 weight and a scale per column"
    );
    // Offered only when the run measures speed, with or without calibration data.
    for (weight_only, speed) in [(false, false), (true, false), (false, true), (true, true)] {
        let mut c = cands.clone();
        offer_for_mode(&mut c, weight_only, speed);
        assert_eq!(
            c[0].bytes_at(Precision::Int8Dyn).is_some(),
            speed,
            "weight_only {weight_only}, speed {speed}"
        );
    }
    let assignment: Assignment = [("m".to_string(), Precision::Int8Dyn)].into();
    let mut r = m.clone();
    let stats = apply(&mut r, &assignment, &Ranges::new()).expect("no range needed");
    assert_eq!(stats.nodes[0].bytes_after, stored);
    let ours: BTreeMap<&str, usize> = r.graph.nodes().fold(BTreeMap::new(), |mut h, (_, n)| {
        *h.entry(n.op_type.as_str()).or_insert(0) += 1;
        h
    });
    assert_eq!(
        ours,
        BTreeMap::from([
            ("Add", 1),
            ("Cast", 1),
            ("DynamicQuantizeLinear", 1),
            ("MatMulInteger", 1),
            ("Mul", 2)
        ])
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let optimized = dir.path().join("optimized.onnx");
    let written = model_bytes(&r);
    session(&written, Some(&optimized));
    let fused = op_counts(&optimized);
    assert_eq!(
        fused,
        BTreeMap::from([("DynamicQuantizeMatMul".to_string(), 1)]),
        "onnxruntime's fusion"
    );
    let (cos, err) = fidelity(
        &model_bytes(&m),
        &written,
        &samples(&m, &[1, 24, k as i64], 3, 2),
    );
    println!("int8dyn MatMul: cosine {cos:.6}, max abs error {err:.4}");
    assert!(cos > 0.999, "cosine {cos}");
}
