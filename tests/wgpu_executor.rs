//! The wgpu executor against the corpus: the onnx wheel's reference outputs, onnxruntime on
//! the PP-OCR models, the CLI's fallback when onnxruntime is unavailable, and its errors.
//! A missing device or missing data fails these tests; nothing is skipped.

mod common;

use optimize::data::{load_input_dir, random_inputs, HostTensor, Sample};
use optimize::ir::Model;
use optimize::onnx_io::load_model;
use optimize::runtime::gpu::WgpuSession;
use optimize::runtime::OrtRuntime;
use optimize::shape::infer;
use optimize::validate::input_specs;
use std::path::Path;
use std::time::Instant;

/// Largest |a − b| / max(1, |a|) over two tensors (∞ on a shape or type mismatch).
fn rel_err(reference: &HostTensor, got: &HostTensor) -> f64 {
    if reference.shape != got.shape {
        return f64::INFINITY;
    }
    match (reference.to_f64(), got.to_f64()) {
        (Some(a), Some(b)) => a
            .iter()
            .zip(&b)
            .map(|(x, y)| {
                if x == y || (x.is_nan() && y.is_nan()) {
                    0.0
                } else {
                    let d = (x - y).abs() / x.abs().max(1.0);
                    if d.is_nan() {
                        f64::INFINITY
                    } else {
                        d
                    }
                }
            })
            .fold(0.0, f64::max),
        _ if reference == got => 0.0,
        _ => f64::INFINITY,
    }
}

fn load(path: &Path, bindings: &std::collections::HashMap<String, Vec<i64>>) -> Model {
    let mut m = load_model(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    infer(&mut m, bindings).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    m
}

/// The reference outputs shipped in a test_data_set folder (`output_K.pb`), in order.
fn reference_outputs(set: &Path, model: &Model) -> Vec<(String, HostTensor)> {
    let mut out = Vec::new();
    for (k, name) in model.graph.outputs.iter().enumerate() {
        let p = set.join(format!("output_{k}.pb"));
        let (_, t) =
            optimize::data::read_tensor_pb(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        out.push((name.clone(), t));
    }
    out
}

enum Outcome {
    Pass(f64),
    Mismatch(String),
    CannotRun(String),
    NotComparable(String),
}

fn compare(expected: &[(String, HostTensor)], got: &[(String, HostTensor)], tol: f64) -> Outcome {
    let mut worst = 0.0f64;
    for (name, e) in expected {
        let Some((_, g)) = got.iter().find(|(n, _)| n == name) else {
            return Outcome::Mismatch(format!("no output '{name}'"));
        };
        let r = rel_err(e, g);
        if r > tol {
            return Outcome::Mismatch(format!(
                "output '{name}': relative error {r:.3e} ({} vs {})",
                e.type_string(),
                g.type_string()
            ));
        }
        worst = worst.max(r);
    }
    Outcome::Pass(worst)
}

/// The light models at 1x3x224x224 take minutes each on lavapipe with two cores; the test
/// runs the two cheapest (the others were run by hand, see docs/runtimes.md). All the
/// pytorch-converted, pytorch-operator and simple models run.
const LIGHT_IN_TEST: &[&str] = &["light/light_squeezenet", "light/light_shufflenet"];

#[test]
fn backend_models_match_reference_outputs_and_onnxruntime() {
    let rt = OrtRuntime::get().expect("onnxruntime must load: run scripts/setup.sh");
    // WGPU_CORPUS_FILTER=substring runs only the matching models, light ones included (for
    // working on a few, or running the slow light models by hand); every one must then pass.
    let filter = std::env::var("WGPU_CORPUS_FILTER").ok();
    let models: Vec<common::CorpusModel> = common::onnx_backend_models()
        .into_iter()
        .filter(|m| match &filter {
            Some(f) => m.name.contains(f.as_str()),
            None => !m.name.starts_with("light/") || LIGHT_IN_TEST.contains(&m.name.as_str()),
        })
        .collect();
    if filter.is_none() {
        assert!(
            models.len() >= 140,
            "only {} backend models found",
            models.len()
        );
    }
    let mut rows = Vec::new();
    let t0 = Instant::now();
    let mut session_stats = (0usize, 0usize, 0usize);
    for m in &models {
        let model = load(&m.path, &m.bindings);
        let specs = match input_specs(&model, &m.bindings) {
            Ok(s) => s,
            Err(e) => {
                rows.push((m.name.clone(), Outcome::NotComparable(e.to_string()), false));
                continue;
            }
        };
        // Which onnxruntime runs: the reference for "every model it runs must run here".
        let samples: Vec<Sample> = match m.test_sets.first() {
            Some(set) => load_input_dir(set, &specs).unwrap_or_else(|e| panic!("{}: {e}", m.name)),
            None => random_inputs(&specs, 7, 1).unwrap_or_else(|e| panic!("{}: {e}", m.name)),
        };
        let ort_out = rt
            .session_from_file(&m.path)
            .and_then(|mut s| s.run(&samples[0].values));
        let ort_runs = ort_out.is_ok();
        let expected = match (m.test_sets.first(), &ort_out) {
            (Some(set), _) => reference_outputs(set, &model),
            (None, Ok(o)) => o.clone(),
            (None, Err(e)) => {
                rows.push((
                    m.name.clone(),
                    Outcome::NotComparable(format!(
                        "no reference outputs and onnxruntime fails: {e}"
                    )),
                    ort_runs,
                ));
                continue;
            }
        };
        let got = WgpuSession::new(&model, None).and_then(|mut s| {
            let r = s.run(&samples[0].values);
            let st = s.stats();
            session_stats = (
                session_stats.0 + st.0,
                session_stats.1 + st.1,
                session_stats.2 + st.2,
            );
            r
        });
        let outcome = match got {
            Ok(g) => compare(&expected, &g, 1e-4),
            Err(e) => Outcome::CannotRun(e.to_string()),
        };
        rows.push((m.name.clone(), outcome, ort_runs));
    }
    let total = rows.len();
    let passed = rows
        .iter()
        .filter(|r| matches!(r.1, Outcome::Pass(_)))
        .count();
    println!(
        "wgpu executor vs reference outputs (|a-b| <= 1e-4 * max(1,|a|)), {:.1}s:",
        t0.elapsed().as_secs_f64()
    );
    for (name, o, ort) in &rows {
        let ort = if *ort {
            ""
        } else {
            " [onnxruntime cannot run it either]"
        };
        match o {
            Outcome::Pass(e) => println!("  pass     {name}: max rel err {e:.2e}"),
            Outcome::Mismatch(w) => println!("  MISMATCH {name}: {w}{ort}"),
            Outcome::CannotRun(w) => println!("  CANNOT   {name}: {w}{ort}"),
            Outcome::NotComparable(w) => println!("  n/a      {name}: {w}{ort}"),
        }
    }
    println!(
        "pass rate: {passed}/{total} ({:.1}%); pipelines compiled {}, buffers created {}, reused {}",
        100.0 * passed as f64 / total as f64,
        session_stats.0,
        session_stats.1,
        session_stats.2
    );
    let must_run: Vec<&String> = rows
        .iter()
        .filter(|(_, o, ort)| *ort && matches!(o, Outcome::CannotRun(_)))
        .map(|(n, _, _)| n)
        .collect();
    println!(
        "models onnxruntime runs but the wgpu executor cannot: {}",
        must_run.len()
    );
    if filter.is_some() {
        assert_eq!(
            passed, total,
            "with WGPU_CORPUS_FILTER every selected model must pass"
        );
        return;
    }
    assert_eq!(
        (passed, total),
        (BACKEND_PASSES, 142),
        "passed/total backend models differ from docs/runtimes.md's 133/142"
    );
    assert!(
        must_run.is_empty(),
        "{} models onnxruntime runs cannot run on wgpu: {must_run:?}",
        must_run.len()
    );
}

/// Measured on lavapipe; docs/runtimes.md gives it (133/142).
const BACKEND_PASSES: usize = 133;

#[test]
fn ppocr_models_match_onnxruntime() {
    let rt = OrtRuntime::get().expect("onnxruntime must load: run scripts/setup.sh");
    let mut worst_all = 0.0f64;
    for mut m in common::ppocr_models() {
        // det at 640x640 takes minutes on lavapipe: the test binds a smaller page.
        if m.name == "ppocr/det" {
            m.bindings.insert("x".into(), vec![1, 3, 320, 320]);
        }
        let dims = &m.bindings["x"];
        let input = common::text_page(dims[2] as usize, dims[3] as usize, 0);
        let feed = vec![("x".to_string(), input)];
        let model = load(&m.path, &m.bindings);
        let mut ort = rt
            .session_from_file(&m.path)
            .expect("onnxruntime opens PP-OCR");
        let t = Instant::now();
        let expected = ort.run(&feed).expect("onnxruntime runs PP-OCR");
        let ort_s = t.elapsed().as_secs_f64();
        let mut s = WgpuSession::new(&model, None)
            .unwrap_or_else(|e| panic!("{}: wgpu executor cannot open it: {e}", m.name));
        let t = Instant::now();
        let got = s
            .run(&feed)
            .unwrap_or_else(|e| panic!("{}: wgpu executor cannot run it: {e}", m.name));
        let wgpu_s = t.elapsed().as_secs_f64();
        let mut worst = 0.0f64;
        for (name, e) in &expected {
            let (_, g) = got
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("{}: no output {name}", m.name));
            let metrics = optimize::data::compare(e, g).expect("same shapes");
            let r = rel_err(e, g);
            println!(
                "{} {:?}: output {name} {}: max rel err {r:.3e} (|a-b|/max(1,|a|)), max_abs_err {:.3e}, cosine {:.6}; onnxruntime {ort_s:.2}s, wgpu {wgpu_s:.2}s on {}",
                m.name,
                dims,
                e.type_string(),
                metrics.max_abs_err,
                metrics.cosine,
                s.device_description()
            );
            worst = worst.max(r);
        }
        assert!(
            worst <= 1e-3,
            "{}: max relative error {worst:.3e} above 1e-3",
            m.name
        );
        worst_all = worst_all.max(worst);
    }
    println!("PP-OCR worst max relative error vs onnxruntime: {worst_all:.3e}");
}

fn optimize_cmd() -> std::process::Command {
    let mut c = std::process::Command::new(common::optimize_bin());
    c.env("XDG_RUNTIME_DIR", "/tmp");
    c
}

fn report_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("report is JSON")
}

#[test]
fn cli_falls_back_to_wgpu_when_onnxruntime_is_unavailable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = common::root().join(".deps/models/ch_ppocr_mobile_v2.0_cls_infer.onnx");
    assert!(
        model.is_file(),
        "{} is missing: run scripts/setup.sh",
        model.display()
    );
    let out = dir.path().join("cls.opt.onnx");
    let report = dir.path().join("report.json");
    let t = Instant::now();
    let r = optimize_cmd()
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .arg(&model)
        .arg("-o")
        .arg(&out)
        .arg("--report")
        .arg(&report)
        .args(["--input-shape", "x=1x3x48x192"])
        .output()
        .expect("run optimize");
    let stdout = String::from_utf8_lossy(&r.stdout);
    let stderr = String::from_utf8_lossy(&r.stderr);
    println!("{stdout}{stderr}(took {:.1}s)", t.elapsed().as_secs_f64());
    assert_eq!(r.status.code(), Some(0), "stderr: {stderr}");
    assert!(out.is_file(), "no output written");
    let v = &report_json(&report)["validation"];
    let runtime = v["runtime"].as_str().expect("runtime");
    assert!(
        runtime.starts_with("wgpu on "),
        "validation ran on {runtime}"
    );
    let why = v["fallback_reason"].as_str().expect("fallback_reason");
    assert!(
        why.contains("onnxruntime") && why.contains("/nonexistent"),
        "{why}"
    );
    assert_eq!(v["done"], true, "{v}");
    assert_eq!(v["passed"], true, "{v}");
    assert!(stdout.contains("validation  wgpu on "), "{stdout}");
}

#[test]
fn unsupported_op_under_auto_is_reported_as_not_done() {
    use common::build::{float_input, node, serialize};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut g = onnx_protobuf::GraphProto::new();
    g.name = "einsum".into();
    let mut n = node("Einsum", &["x"], &["y"]);
    let mut eq = onnx_protobuf::AttributeProto::new();
    eq.name = "equation".into();
    eq.type_ = onnx_protobuf::attribute_proto::AttributeType::STRING.into();
    eq.s = b"ij->ji".to_vec();
    n.attribute.push(eq);
    g.node = vec![n];
    g.input.push(float_input("x", &[2, 3]));
    g.output.push(float_input("y", &[3, 2]));
    let model = dir.path().join("einsum.onnx");
    std::fs::write(&model, serialize(g, 8)).expect("write model");
    let out = dir.path().join("out.onnx");
    let report = dir.path().join("report.json");
    let r = optimize_cmd()
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .arg(&model)
        .arg("-o")
        .arg(&out)
        .arg("--report")
        .arg(&report)
        .output()
        .expect("run optimize");
    let stdout = String::from_utf8_lossy(&r.stdout);
    let stderr = String::from_utf8_lossy(&r.stderr);
    println!("{stdout}{stderr}");
    let v = &report_json(&report)["validation"];
    assert_eq!(v["passed"], false, "{v}");
    assert_eq!(v["done"], false, "{v}");
    let why = v["fallback_reason"].as_str().expect("fallback_reason");
    assert!(
        why.contains("Einsum"),
        "the reason does not name the op: {why}"
    );
    assert!(stdout.contains("NOT DONE"), "{stdout}");
    assert!(!stdout.contains("-> passed"), "{stdout}");
}

#[test]
fn runtime_wgpu_flag_and_adapter_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("mm.onnx");
    std::fs::write(&model, common::build::matmul_model(5)).expect("write");
    let report = dir.path().join("r.json");
    let r = optimize_cmd()
        .arg(&model)
        .args(["-o"])
        .arg(dir.path().join("out.onnx"))
        .args(["--runtime", "wgpu", "--report"])
        .arg(&report)
        .output()
        .expect("run");
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    let v = &report_json(&report)["validation"];
    assert!(
        v["runtime"]
            .as_str()
            .is_some_and(|s| s.starts_with("wgpu on ")),
        "{v}"
    );
    assert!(v["fallback_reason"].is_null(), "{v}");
    assert_eq!(v["passed"], true);
    // A forced adapter that does not exist: one clear line, exit 4, nothing written.
    let out2 = dir.path().join("out2.onnx");
    let r = optimize_cmd()
        .arg(&model)
        .arg("-o")
        .arg(&out2)
        .args(["--runtime", "wgpu", "--adapter", "no-such-adapter-xyz"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("no-such-adapter-xyz") && stderr.contains("available"),
        "{stderr}"
    );
    // One error line (the mixed-precision pass may warn first that it calibrated on random inputs).
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("warning: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].starts_with("error: "), "{stderr}");
    assert!(!out2.exists());
}

#[test]
fn tensor_above_the_device_buffer_limit_is_a_clear_error() {
    use common::build::{float_input, node, serialize};
    let mut g = onnx_protobuf::GraphProto::new();
    g.name = "huge".into();
    let mut shape = onnx_protobuf::TensorProto::new();
    shape.name = "shape".into();
    shape.data_type = 7;
    shape.dims = vec![1];
    shape.int64_data = vec![1 << 30];
    g.initializer.push(shape);
    g.node = vec![node("Expand", &["x", "shape"], &["y"])];
    g.input.push(float_input("x", &[1]));
    g.output.push(float_input("y", &[1 << 30]));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("huge.onnx");
    std::fs::write(&path, serialize(g, 8)).expect("write");
    let model = load(&path, &Default::default());
    let mut s = WgpuSession::new(&model, None).expect("the device opens");
    let err = s
        .run(&[("x".to_string(), HostTensor::from_f32(vec![1], &[1.0]))])
        .expect_err("a 4 GiB tensor must not fit")
        .to_string();
    println!("{err}");
    assert!(err.contains("'y'") && err.contains("max_"), "{err}");
}

/// Weights larger than the device's storage-binding limit (lavapipe: 128 MiB; the fc6 weights
/// of light_bvlc_alexnet, light_vgg19 and light_zfnet512 are 144–392 MiB) are held in row
/// blocks. One 144 MiB initializer `w` [8192, 4608] whose every element depends on its row and
/// column (so a block that reads the wrong rows, or puts its result in the wrong place,
/// changes the output) is read by a Gemm with B as [N, K] (each block a range of output
/// columns, with a per-column bias locating them) and by a MatMul with B as [K, N] (each
/// block a partial sum over K); a third weight made on the device by ConstantOfShape covers
/// the device-filled blocks. All against onnxruntime, to the bit (the sums are exact).
#[test]
fn weights_above_the_binding_limit_run_in_row_blocks() {
    use common::build::{float_input, int_attr, node, serialize};
    use onnx_protobuf::TensorProto;
    let (rows, cols) = (8192i64, 4608i64);
    let mut g = onnx_protobuf::GraphProto::new();
    g.name = "big_weights".into();
    let mut w = TensorProto::new();
    w.name = "w".into();
    w.data_type = 1;
    w.dims = vec![rows, cols];
    w.raw_data = (0..rows * cols)
        .flat_map(|i| {
            let (r, c) = (i / cols, i % cols);
            let h = (r * 7919 + c * 104_729 + r * c) % 1009;
            ((h % 16) as f32 / 16.0 - 0.5).to_le_bytes()
        })
        .collect();
    g.initializer.push(w);
    let mut shape = TensorProto::new();
    shape.name = "kn".into();
    shape.data_type = 7;
    shape.dims = vec![2];
    shape.int64_data = vec![rows, cols];
    g.initializer.push(shape);
    let mut bias = TensorProto::new();
    bias.name = "c".into();
    bias.data_type = 1;
    bias.dims = vec![rows];
    bias.float_data = (0..rows).map(|i| (i % 97) as f32 * 0.25 - 3.0).collect();
    g.initializer.push(bias);
    let mut fill = node("ConstantOfShape", &["kn"], &["w2"]);
    let mut t = TensorProto::new();
    t.data_type = 1;
    t.dims = vec![1];
    t.float_data = vec![-0.25];
    let mut a = onnx_protobuf::AttributeProto::new();
    a.name = "value".into();
    a.type_ = onnx_protobuf::attribute_proto::AttributeType::TENSOR.into();
    a.t = Some(t).into();
    fill.attribute.push(a);
    let mut gemm = node("Gemm", &["x", "w", "c"], &["y1"]);
    gemm.attribute.push(int_attr("transB", 1));
    g.node = vec![
        fill,
        gemm,
        node("MatMul", &["x2", "w"], &["y2"]),
        node("MatMul", &["x2", "w2"], &["y3"]),
    ];
    g.input.push(float_input("x", &[2, cols]));
    g.input.push(float_input("x2", &[2, rows]));
    g.output.push(float_input("y1", &[2, rows]));
    g.output.push(float_input("y2", &[2, cols]));
    g.output.push(float_input("y3", &[2, cols]));
    let bytes = serialize(g, 8);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.onnx");
    std::fs::write(&path, &bytes).expect("write");
    let model = load(&path, &Default::default());
    // Weights and inputs are multiples of 1/16 in [−0.5, 0.5): every product is a multiple
    // of 1/256 and every partial sum (|sum| ≤ 8192/4) needs at most 19 significant bits, so
    // f32 sums are exact in any order and both runtimes must agree to the bit.
    let input = |n: i64| -> HostTensor {
        let v: Vec<f32> = (0..2 * n)
            .map(|i| ((i * 37) % 16) as f32 / 16.0 - 0.5)
            .collect();
        HostTensor::from_f32(vec![2, n as usize], &v)
    };
    let feed = vec![
        ("x".to_string(), input(cols)),
        ("x2".to_string(), input(rows)),
    ];
    let rt = OrtRuntime::get().expect("onnxruntime must load: run scripts/setup.sh");
    let expected = rt
        .session_from_file(&path)
        .and_then(|mut s| s.run(&feed))
        .expect("onnxruntime runs it");
    let mut s = WgpuSession::new(&model, None).expect("the device opens");
    let t = Instant::now();
    let got = s
        .run(&feed)
        .unwrap_or_else(|e| panic!("weights in row blocks: {e}"));
    for (name, e) in &expected {
        let (_, g) = got.iter().find(|(n, _)| n == name).expect("output");
        let r = rel_err(e, g);
        println!(
            "{name} {}: max rel err {r:.3e} vs onnxruntime, weight {} MiB, wgpu {:.2}s on {}",
            g.type_string(),
            (rows * cols * 4) >> 20,
            t.elapsed().as_secs_f64(),
            s.device_description()
        );
        assert!(
            g.bit_identical(e),
            "{name}: max relative error {r:.3e}, not exact"
        );
    }
}
