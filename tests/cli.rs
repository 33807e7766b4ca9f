//! The `optimize` binary as a user runs it: the default pipeline, reports, determinism,
//! and bad input (one line naming the file and the problem, exit code 2, no output file,
//! input untouched).

mod common;

use common::build::{model, node};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(common::optimize_bin())
        .args(args)
        .output()
        .expect("run optimize")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn digest(p: &Path) -> Vec<u8> {
    std::fs::read(p).expect("read")
}

fn cls_model() -> PathBuf {
    common::ppocr_models()
        .into_iter()
        .find(|m| m.name == "ppocr/cls")
        .expect("cls")
        .path
}

/// Runs a bad-input case: exit code 2, one stderr line naming `names` and containing `problem`,
/// no output written, input unchanged.
fn expect_bad_input(input: &Path, out: &Path, problem: &str) {
    let before = input.is_file().then(|| digest(input));
    let o = run(&[
        input.to_str().expect("utf8"),
        "-o",
        out.to_str().expect("utf8"),
    ]);
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "exit code for {problem}: stderr {err}"
    );
    assert_eq!(err.lines().count(), 1, "one line expected, got: {err}");
    assert!(err.contains(problem), "'{problem}' not in: {err}");
    assert!(
        err.contains(input.to_str().expect("utf8")) || err.contains(out.to_str().expect("utf8")),
        "no file named in: {err}"
    );
    assert!(
        out == input || !out.exists(),
        "output written despite the error"
    );
    if let Some(b) = before {
        assert_eq!(digest(input), b, "input was modified");
    }
    let parent = out.parent().expect("dir");
    if !parent.is_dir() {
        return;
    }
    let leftovers: Vec<_> = std::fs::read_dir(parent)
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".optimize-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary files left behind: {leftovers:?}"
    );
}

#[test]
fn bad_inputs_get_one_line_and_exit_code_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let out = d.join("out.onnx");

    expect_bad_input(&d.join("missing.onnx"), &out, "no such file");

    let text = d.join("notes.onnx");
    std::fs::write(&text, "this is a text file, not a model\n").expect("write");
    expect_bad_input(&text, &out, "not");

    let empty = d.join("empty.onnx");
    std::fs::write(&empty, b"").expect("write");
    expect_bad_input(&empty, &out, "empty file");

    let full = std::fs::read(cls_model()).expect("cls model");
    let truncated = d.join("truncated.onnx");
    std::fs::write(&truncated, &full[..full.len() / 2]).expect("write");
    expect_bad_input(&truncated, &out, "not a valid ONNX model");

    let cycle = d.join("cycle.onnx");
    std::fs::write(
        &cycle,
        model(
            vec![
                node("Add", &["x", "b"], &["a"]),
                node("Relu", &["a"], &["b"]),
                node("Relu", &["a"], &["y"]),
            ],
            8,
        ),
    )
    .expect("write");
    expect_bad_input(&cycle, &out, "cycle");

    let undefined = d.join("undefined.onnx");
    std::fs::write(
        &undefined,
        model(vec![node("Add", &["x", "ghost"], &["y"])], 8),
    )
    .expect("write");
    expect_bad_input(&undefined, &out, "reads tensor 'ghost'");

    let future = d.join("future.onnx");
    std::fs::write(&future, model(vec![node("Relu", &["x"], &["y"])], 99)).expect("write");
    expect_bad_input(&future, &out, "unsupported IR version 99");

    let good = d.join("good.onnx");
    std::fs::write(&good, model(vec![node("Relu", &["x"], &["y"])], 8)).expect("write");
    expect_bad_input(
        &good,
        &d.join("no/such/folder/out.onnx"),
        "folder does not exist",
    );
    expect_bad_input(&good, &good, "refusing to overwrite the input");
    std::fs::create_dir(d.join("adir.onnx")).expect("mkdir");
    let o = run(&[
        good.to_str().expect("utf8"),
        "-o",
        d.join("adir.onnx").to_str().expect("utf8"),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn default_pipeline_writes_validated_model_and_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("cls.opt.onnx");
    let report = dir.path().join("report.json");
    let input = cls_model();
    let before = digest(&input);
    let o = run(&[
        input.to_str().expect("utf8"),
        "-o",
        out.to_str().expect("utf8"),
        "--input-shape",
        "x=1x3x48x192",
        "--report",
        report.to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(
        summary.contains("validation  onnxruntime 1.31.1") && summary.contains("passed"),
        "{summary}"
    );
    assert_eq!(digest(&input), before, "input modified");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    for key in ["path", "nodes", "parameters", "bytes"] {
        assert!(r["model"].get(key).is_some(), "model.{key} missing");
    }
    assert_eq!(r["model"]["nodes"], 566);
    assert!(
        r["model"]["parameters"].as_u64().expect("parameters") > 100_000,
        "Constant weights are parameters"
    );
    assert_eq!(r["passes"][0]["name"], "cleanup");
    assert!(r["passes"][0].get("seconds").is_some() && r["passes"][0].get("changes").is_some());
    // The default pipeline runs mixed precision at the default budget (0.30 of fp32 weights),
    // after the passes it requires.
    assert_eq!(
        common::pass_names(&r),
        ["cleanup", "fold-batchnorm", "simplify", "precision"]
    );
    let p = &r["precision"];
    let fraction = p["weight_bytes_after"].as_f64().expect("after")
        / p["weight_bytes_before"].as_f64().expect("before");
    assert!(fraction <= 0.30 + 1e-9, "size fraction {fraction}");
    assert_eq!(p["checker"]["passed"], true);
    assert!(
        summary.contains("weight-only formats: no --calib"),
        "without --calib the summary says only weight-only formats were offered: {summary}"
    );
    assert_eq!(p["formats"]["mode"], "weight-only", "{}", p["formats"]);
    let v = &r["validation"];
    for key in [
        "runtime",
        "max_abs_err",
        "max_rel_err",
        "cosine",
        "inputs_used",
        "passed",
    ] {
        assert!(v.get(key).is_some(), "validation.{key} missing");
    }
    assert_eq!(v["passed"], true);
    assert_eq!(v["criterion"], "fidelity");
    assert!(v["cosine"].as_f64().expect("cosine") >= 0.99);

    // --no-precision: lossless, validated bit-identical under the tolerance criterion.
    let o = run(&[
        input.to_str().expect("utf8"),
        "-o",
        out.to_str().expect("utf8"),
        "--input-shape",
        "x=1x3x48x192",
        "--report",
        report.to_str().expect("utf8"),
        "--no-precision",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    assert_eq!(r["passes"].as_array().map(|a| a.len()), Some(1));
    assert_eq!(r["validation"]["criterion"], "tolerance");
    assert_eq!(r["validation"]["max_abs_err"], 0.0);
}

/// Sets every `seconds`-like field (timings) to 0, at any depth.
fn zero_timings(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k == "seconds" || k.ends_with("_seconds") {
                    *x = 0.into();
                } else {
                    zero_timings(x);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(zero_timings),
        _ => {}
    }
}

#[test]
fn same_input_and_flags_give_byte_identical_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = cls_model();
    let mut outputs = Vec::new();
    let mut reports = Vec::new();
    for i in 0..2 {
        let out = dir.path().join(format!("run{i}.onnx"));
        let rep = dir.path().join(format!("run{i}.json"));
        let o = run(&[
            input.to_str().expect("utf8"),
            "-o",
            out.to_str().expect("utf8"),
            "--input-shape",
            "x=1x3x48x192",
            "--report",
            rep.to_str().expect("utf8"),
            "--quiet",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(o.stdout.is_empty(), "--quiet printed something");
        outputs.push(digest(&out));
        let mut r: serde_json::Value = serde_json::from_slice(&digest(&rep)).expect("json");
        zero_timings(&mut r);
        r["output"]["path"] = "".into();
        reports.push(r);
    }
    assert_eq!(
        outputs[0], outputs[1],
        "outputs differ between identical runs"
    );
    assert_eq!(reports[0], reports[1], "reports differ beyond timings");
}

#[test]
fn validation_detects_a_changed_model() {
    use optimize::onnx_io::{load_model, save_model, ExportOptions};
    use optimize::validate::{validate, ValidationOptions};
    let dir = tempfile::tempdir().expect("tempdir");
    let original = dir.path().join("mm.onnx");
    std::fs::write(&original, common::build::matmul_model(64)).expect("write");
    let model = load_model(&original).expect("load");
    // Same model: bit-identical.
    let same = dir.path().join("same.onnx");
    save_model(&model, &same, &ExportOptions::default()).expect("save");
    let v = validate(&original, &same, &model, &ValidationOptions::default()).expect("validate");
    assert!(v.passed && v.bit_identical && v.max_abs_err == 0.0 && v.samples == 2);
    // One weight nudged by 1e-3: detected, and over a 1e-6 tolerance.
    let mut changed = model.clone();
    let w = changed.graph.initializers.get_mut("w").expect("w");
    let x = f32::from_le_bytes([w.raw_data[0], w.raw_data[1], w.raw_data[2], w.raw_data[3]]) + 1e-3;
    w.raw_data[..4].copy_from_slice(&x.to_le_bytes());
    let nudged = dir.path().join("nudged.onnx");
    save_model(&changed, &nudged, &ExportOptions::default()).expect("save");
    let opts = ValidationOptions {
        tolerance: 1e-6,
        ..Default::default()
    };
    let v = validate(&original, &nudged, &model, &opts).expect("validate");
    assert!(
        !v.passed && !v.bit_identical,
        "a changed weight went unnoticed: {v:?}"
    );
    assert!(
        v.max_abs_err > 1e-5 && v.max_abs_err < 1e-2,
        "max_abs_err {}",
        v.max_abs_err
    );
    assert!(v.cosine < 1.0 && v.cosine > 0.999);
}

#[test]
fn external_data_is_read_and_written() {
    use optimize::onnx_io::{load_model, save_model, ExportOptions};
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("mm.onnx");
    std::fs::write(&src, common::build::matmul_model(512)).expect("write");
    let model = load_model(&src).expect("load");
    let ext = dir.path().join("ext.onnx");
    save_model(
        &model,
        &ext,
        &ExportOptions {
            external_data: Some(true),
            ..Default::default()
        },
    )
    .expect("save");
    assert!(
        dir.path().join("ext.onnx.data").is_file(),
        "external data file not written"
    );
    assert!(
        std::fs::metadata(&ext).expect("model").len() < 1024,
        "weights still inline"
    );
    let reloaded = load_model(&ext).expect("reload");
    assert!(reloaded.had_external_data);
    assert_eq!(
        reloaded.graph.initializers, model.graph.initializers,
        "initializer bytes changed through external data"
    );

    let out = dir.path().join("ext.opt.onnx");
    let o = run(&[
        ext.to_str().expect("utf8"),
        "-o",
        out.to_str().expect("utf8"),
        "--no-precision",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        dir.path().join("ext.opt.onnx.data").is_file(),
        "output lost its external data"
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("bit-identical"));
}

#[test]
fn inspect_lists_inputs_ops_and_parameters() {
    let o = run(&["inspect", cls_model().to_str().expect("utf8")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("ir_version: 7") && s.contains("opsets: ai.onnx=11"),
        "{s}"
    );
    assert!(s.contains("x: float[?,3,?,?]"), "{s}");
    assert!(s.contains("Conv                53"), "{s}");
}

#[test]
fn library_example_runs_the_same_pipeline() {
    // `cargo test` builds the examples next to the test binaries (target/<profile>/examples).
    let deps = std::env::current_exe().expect("test exe");
    let exe = deps
        .parent()
        .and_then(|d| d.parent())
        .expect("profile dir")
        .join("examples/pipeline");
    assert!(
        exe.is_file(),
        "{} not built (cargo test builds examples)",
        exe.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("cls.onnx");
    let o = Command::new(&exe)
        .args([
            cls_model().to_str().expect("utf8"),
            out.to_str().expect("utf8"),
            "x=1x3x48x192",
        ])
        .output()
        .expect("run example");
    assert!(o.status.success(), "{}", stderr(&o));
    // The default pipeline quantizes (BatchNorms folded, Q/DQ inserted): the node count
    // changes, and the lossy output must still validate.
    let line = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let after: usize = line
        .strip_prefix("566 nodes -> ")
        .and_then(|rest| rest.strip_suffix(" nodes, validated: true"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected example output: {line}"));
    assert!(after > 0 && after != 566, "{line}");
    assert!(out.is_file());
}

/// With `--calib DIR` and no `--inputs`, the quantized model is validated on the
/// calibration crops (real data) instead of seeded noise, and the report says which.
#[test]
fn quantized_model_is_validated_on_its_calibration_inputs() {
    use optimize::data::images::{crops_from, split_photographs, CropKind};
    let dir = tempfile::tempdir().expect("tempdir");
    let calib = dir.path().join("calib");
    std::fs::create_dir_all(&calib).expect("mkdir");
    let (photos, _) = split_photographs(&common::root().join(".deps/images"))
        .expect("the scikit-image photographs (scripts/setup.sh fetches them)");
    for (i, (_, t)) in crops_from(&photos, CropKind::Cls, 4, 0)
        .expect("crops")
        .iter()
        .enumerate()
    {
        optimize::data::write_npy(&calib.join(format!("crop_{i}.npy")), t).expect("npy");
    }
    let out = dir.path().join("out.onnx");
    let report = dir.path().join("report.json");
    // Photo crops hold no text: cls's decision on them is near 0.5/0.5, so its auto metric
    // (top1) measures noise here; this test is about which inputs validate, so it gates
    // on cosine.
    let o = run(&[
        cls_model().to_str().expect("utf8"),
        "-o",
        out.to_str().expect("utf8"),
        "--calib",
        calib.to_str().expect("utf8"),
        "--metric",
        "cosine",
        "--report",
        report.to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "optimize failed: {}", stderr(&o));
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("json");
    let v = &r["validation"];
    assert_eq!(v["inputs_used"].as_str(), calib.to_str(), "{v}");
    assert_eq!(v["samples"].as_u64(), Some(4), "{v}");
    assert_eq!(
        r["precision"]["calibration"]["dir"].as_str(),
        calib.to_str()
    );
}

/// `optimize passes` lists every pass of the registry with what it requires and ensures;
/// the text is a snapshot, so a pass added, or a requirement changed, shows in review.
#[test]
fn passes_lists_the_registry() {
    let o = run(&["passes"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = String::from_utf8_lossy(&o.stdout).into_owned();
    for name in optimize::passes::registry::names() {
        assert!(
            s.lines().any(|l| l == name),
            "pass '{name}' not listed:\n{s}"
        );
    }
    assert!(s.contains("requires: runs last"), "{s}");
    insta::assert_snapshot!("passes", s);
}
