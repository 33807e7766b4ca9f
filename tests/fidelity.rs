//! Task-aware fidelity (docs/fidelity.md): `auto` picks the metric from the graph, a metric
//! given for one output is the one measured (checked against an independent computation in
//! Python onnxruntime), and the gate pools over the set: one bad sample among good ones
//! passes a target the pooled value meets, and that sample is named in the report.
//! Needs `scripts/setup.sh` (PP-OCR models, Python onnxruntime); fails saying so otherwise.

mod common;

use common::build::{float_input, node, serialize};
use optimize::data::npy::write_npy;
use optimize::data::HostTensor;
use optimize::fidelity::{FidelitySpec, Metric};
use optimize::pipeline::load_and_infer;
use std::path::{Path, PathBuf};

use common::{output_text as text, read_json as report, run_in as run};

/// The report matches schema/report.schema.json (its search, hold-out and fidelity parts).
fn assert_schema(report: &serde_json::Value) {
    let text = std::fs::read_to_string(common::root().join("schema/report.schema.json"))
        .expect("schema file");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
    let v = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = v
        .iter_errors(report)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "report does not match the schema: {errors:#?}"
    );
}

/// A deterministic stream of roughly normal values (sum of uniforms from an LCG).
struct Noise(u64);

impl Noise {
    fn uniform(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
    fn normal(&mut self) -> f32 {
        (0..4).map(|_| self.uniform()).sum::<f32>() - 2.0
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.normal() * scale).collect()
    }
}

const ROWS: i64 = 4;
const K: i64 = 64;

/// `logits = x · w` (x: float[4,64], w: float[64,64]) and, with `map`, a second output
/// `map = Sigmoid(logits)`.
fn head_model(map: bool) -> Vec<u8> {
    let mut w = onnx_protobuf::TensorProto::new();
    w.name = "w".into();
    w.data_type = 1;
    w.dims = vec![K, K];
    w.raw_data = Noise(7)
        .vec((K * K) as usize, 0.5)
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let mut g = onnx_protobuf::GraphProto::new();
    g.name = "head".into();
    g.node = vec![node("MatMul", &["x", "w"], &["logits"])];
    g.initializer.push(w);
    g.input.push(float_input("x", &[ROWS, K]));
    g.output.push(float_input("logits", &[ROWS, K]));
    if map {
        g.node.push(node("Sigmoid", &["logits"], &["map"]));
        g.output.push(float_input("map", &[ROWS, K]));
    }
    serialize(g, 8)
}

/// Writes `n` samples named `s00.npy`… of values of the given scale into `dir`.
fn samples(dir: &Path, seed: u64, n: usize, scale: f32) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let mut noise = Noise(seed);
    for i in 0..n {
        let t = HostTensor::from_f32(
            vec![ROWS as usize, K as usize],
            &noise.vec((ROWS * K) as usize, scale),
        );
        write_npy(&dir.join(format!("s{i:02}.npy")), &t).expect("write sample");
    }
}

fn workspace(map: bool) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_path_buf();
    std::fs::write(d.join("head.onnx"), head_model(map)).expect("model");
    samples(&d.join("cal"), 1, 16, 1.0);
    samples(&d.join("val"), 2, 20, 1.0);
    (dir, d)
}

fn cls_and_det() -> (common::CorpusModel, common::CorpusModel) {
    let models = common::ppocr_models();
    let find = |n: &str| {
        models
            .iter()
            .find(|m| m.name == n)
            .unwrap_or_else(|| panic!("{n} in the corpus"))
            .clone()
    };
    (find("ppocr/cls"), find("ppocr/det"))
}

#[test]
fn auto_picks_top1_for_a_softmax_classifier_and_cosine_for_a_feature_map() {
    let (cls, det) = cls_and_det();
    let m = load_and_infer(&cls.path, &cls.bindings).expect("load cls");
    let plans = FidelitySpec::default().resolve(&m).expect("resolve cls");
    assert_eq!(plans.len(), 1, "{plans:?}");
    assert_eq!(plans[0].metric, Metric::Top1, "{plans:?}");
    assert!(plans[0].why.contains("Softmax"), "{plans:?}");
    assert_eq!((plans[0].target, plans[0].target_given), (0.99, false));

    let m = load_and_infer(&det.path, &det.bindings).expect("load det");
    let plans = FidelitySpec::default().resolve(&m).expect("resolve det");
    println!("det: {plans:?}");
    assert_eq!(plans.len(), 1, "{plans:?}");
    assert_eq!(plans[0].metric, Metric::Cosine, "{plans:?}");
    assert!(plans[0].why.starts_with("auto: produced by"), "{plans:?}");

    // The classifier head of a hand-built model: top1; the same with --metric: as given.
    let (_dir, d) = workspace(true);
    let m = load_and_infer(&d.join("head.onnx"), &Default::default()).expect("load head");
    let plans = FidelitySpec::default().resolve(&m).expect("resolve head");
    assert_eq!(plans[0].metric, Metric::Top1, "{plans:?}");
    assert!(
        plans[0].why.contains("classifier head (MatMul)"),
        "{plans:?}"
    );
    assert_eq!(plans[1].metric, Metric::Cosine, "{plans:?}");

    // ddddocr's CTC scores: a Gemm [T, 8210] reshaped to a shape computed at run time
    // ([?, 1, ?]): the head's C decides.
    let dd = common::root().join(".deps/zoo/ddddocr/common.onnx");
    let m = load_and_infer(&dd, &Default::default()).expect("load ddddocr (scripts/setup.sh)");
    let plans = FidelitySpec::default()
        .resolve(&m)
        .expect("resolve ddddocr");
    assert_eq!(plans[0].metric, Metric::Top1, "{plans:?}");
    assert!(plans[0].why.contains("C = 8210"), "{plans:?}");

    // End to end on cls: the report and the summary say which metric and why.
    let dir = tempfile::tempdir().expect("tempdir");
    let o = run(
        dir.path(),
        &[
            cls.path.to_str().expect("utf8"),
            "-o",
            "cls.onnx",
            "--input-shape",
            "x=1x3x48x192",
            "--no-precision",
            "--report",
            "r.json",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let r = report(&dir.path().join("r.json"));
    let f = &r["validation"]["fidelity"]["outputs"][0];
    assert_eq!(f["metric"], "top1", "{f}");
    assert!(
        f["why"].as_str().is_some_and(|w| w.contains("Softmax")),
        "{f}"
    );
    assert_eq!(f["value"], 1.0, "{f}");
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(
        summary.contains("fidelity    'softmax_0.tmp_0' top1 1 (target 0.99)")
            || summary
                .lines()
                .any(|l| l.starts_with("fidelity") && l.contains("top1")),
        "{summary}"
    );
}

#[test]
fn a_metric_given_for_one_output_is_the_one_measured() {
    let (_dir, d) = workspace(true);
    let o = run(
        &d,
        &[
            "head.onnx",
            "-o",
            "o.onnx",
            "--size-budget",
            "0.3",
            "--calib",
            "cal",
            "--inputs",
            "val",
            "--metric",
            "map=iou:0.3",
            "--report",
            "r.json",
            "-q",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let r = report(&d.join("r.json"));
    let outs = r["validation"]["fidelity"]["outputs"]
        .as_array()
        .expect("fidelity outputs")
        .clone();
    let by = |n: &str| {
        outs.iter()
            .find(|o| o["name"] == n)
            .unwrap_or_else(|| panic!("no fidelity for {n}: {outs:?}"))
            .clone()
    };
    let map = by("map");
    assert_eq!(map["metric"], "iou:0.3", "{map}");
    assert_eq!(map["why"], "given (--metric map=…)", "{map}");
    assert_eq!(map["samples"], 20, "{map}");
    // The other output keeps its auto metric.
    assert_eq!(by("logits")["metric"], "top1");

    // The same number, computed independently: both models on Python onnxruntime, both
    // maps thresholded at 0.3, intersections and unions summed over the set.
    let py = common::root().join(".deps/py");
    assert!(
        py.join("onnxruntime/__init__.py").is_file(),
        "Python onnxruntime missing in {}: run scripts/setup.sh",
        py.display()
    );
    let script = r#"
import sys, glob, os, numpy as np, onnxruntime as ort
d = sys.argv[1]
a = ort.InferenceSession(os.path.join(d, "head.onnx"), providers=["CPUExecutionProvider"])
b = ort.InferenceSession(os.path.join(d, "o.onnx"), providers=["CPUExecutionProvider"])
inter = union = 0
for f in sorted(glob.glob(os.path.join(d, "val", "*.npy"))):
    x = np.load(f)
    ma = a.run(["map"], {"x": x})[0] > 0.3
    mb = b.run(["map"], {"x": x})[0] > 0.3
    inter += int(np.logical_and(ma, mb).sum())
    union += int(np.logical_or(ma, mb).sum())
print(repr(inter / union), inter, union)
"#;
    let out = std::process::Command::new("python3")
        .env("PYTHONPATH", &py)
        .arg("-c")
        .arg(script)
        .arg(&d)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("python: {stdout}report: {map}");
    let want: f64 = stdout
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a number from python");
    let got = map["value"].as_f64().expect("value");
    assert!((got - want).abs() < 1e-12, "report {got}, python {want}");
    // Quantization moved some pixels across the threshold: the check above is not 1 = 1.
    assert!(want < 1.0, "{want}");
}

#[test]
fn one_bad_sample_passes_the_pooled_gate_and_is_named() {
    let (_dir, d) = workspace(false);
    // One value per row far above the calibrated activation range: int8 activations clip
    // it, so this sample's output loses the term that dominates it (a low cosine) while the
    // others are fine. (Not a sample of tiny values: an output that is ~0 against the set's
    // and stays ~0 is left out of the cosine mean as empty.)
    let mut noise = Noise(3);
    let mut v = noise.vec((ROWS * K) as usize, 1.0);
    for r in 0..ROWS as usize {
        v[r * K as usize] = 1000.0;
    }
    let spike = HostTensor::from_f32(vec![ROWS as usize, K as usize], &v);
    write_npy(&d.join("val/tiny.npy"), &spike).expect("write the spiked sample");
    let args = |target: &'static str, out: &'static str| {
        vec![
            "head.onnx",
            "-o",
            out,
            "--size-budget",
            "0.3",
            "--calib",
            "cal",
            "--inputs",
            "val",
            "--metric",
            "cosine",
            "--min-fidelity",
            target,
            "--report",
            "r.json",
        ]
    };
    let o = run(&d, &args("0.9", "o.onnx"));
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        d.join("o.onnx").is_file(),
        "the passing model was not written"
    );
    let r = report(&d.join("r.json"));
    let nodes = r["precision"]["nodes"].as_array().expect("precision nodes");
    assert_eq!(
        nodes[0]["precision"], "int8",
        "premise: activations quantized: {nodes:?}"
    );
    let v = &r["validation"];
    let f = &v["fidelity"]["outputs"][0];
    println!("{f}");
    assert_eq!(v["passed"], true, "{v}");
    assert_eq!(v["fidelity"]["enforced"], true, "{v}");
    assert_eq!(f["samples"], 21, "{f}");
    assert!(f["value"].as_f64().expect("value") >= 0.9, "{f}");
    assert_eq!(f["worst"]["sample"], "tiny.npy", "{f}");
    assert!(f["worst"]["value"].as_f64().expect("worst") < 0.5, "{f}");
    // The smallest per-sample cosine (the old gate's criterion) would have refused it.
    assert!(v["cosine"].as_f64().expect("cosine") < 0.99, "{v}");
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(summary.contains("worst tiny.npy"), "{summary}");

    // A target the pooled value misses refuses the run, names the worst sample, writes no model.
    let o = run(&d, &args("0.99", "o2.onnx"));
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("below 0.99") && err.contains("tiny.npy"),
        "{err}"
    );
    assert!(!d.join("o2.onnx").exists());
}

#[test]
fn calibration_folder_is_split_when_no_inputs_are_given() {
    let (_dir, d) = workspace(false);
    let holdout = |r: &serde_json::Value| r["precision"]["calibration"]["holdout"].clone();
    let run_ok = |extra: &[&str]| {
        let mut args = vec![
            "head.onnx",
            "-o",
            "o.onnx",
            "--size-budget",
            "0.3",
            "--metric",
            "cosine",
            "--report",
            "r.json",
            "-q",
        ];
        args.extend_from_slice(extra);
        let o = run(&d, &args);
        assert!(o.status.success(), "{}", text(&o));
        report(&d.join("r.json"))
    };
    // 16 samples: a quarter (4) is held out, 12 remain for calibration; 8 of them
    // calibrate and the 4 others validate beside the held-out quarter.
    let r = run_ok(&["--calib", "cal"]);
    let h = holdout(&r);
    let held: Vec<String> = h["validation_samples"]
        .as_array()
        .expect("validation_samples")
        .iter()
        .map(|s| s.as_str().expect("name").to_string())
        .collect();
    assert_eq!(held.len(), 8, "{h}");
    assert_schema(&r);
    assert_eq!(
        (h["folder_samples"].as_u64(), h["calibration_pool"].as_u64()),
        (Some(16), Some(8)),
        "{h}"
    );
    assert_eq!(r["precision"]["calibration"]["samples"], 8, "8 calibrate");
    let v = &r["validation"];
    assert_eq!(v["samples"], 8, "{v}");
    assert!(
        v["inputs_used"]
            .as_str()
            .is_some_and(|s| s.contains("held out of calibration: 8 of 16")),
        "{v}"
    );
    let worst = v["fidelity"]["outputs"][0]["worst"]["sample"]
        .as_str()
        .expect("worst")
        .to_string();
    assert!(
        held.contains(&worst),
        "validated on a sample not held out: {worst} {held:?}"
    );
    // Seeded: the same seed gives the same split, another seed another one.
    assert_eq!(
        holdout(&run_ok(&["--calib", "cal"]))["validation_samples"],
        h["validation_samples"]
    );
    assert_ne!(
        holdout(&run_ok(&["--calib", "cal", "--seed", "5"]))["validation_samples"],
        h["validation_samples"]
    );
    // Given --inputs, nothing is held out.
    let r = run_ok(&["--calib", "cal", "--inputs", "val"]);
    assert!(holdout(&r).is_null(), "{}", holdout(&r));
    assert_eq!(r["validation"]["samples"], 20);
    // Too few samples to split: validation reuses them, and the report says so.
    for i in 6..16 {
        std::fs::remove_file(d.join(format!("cal/s{i:02}.npy"))).expect("rm");
    }
    let r = run_ok(&["--calib", "cal"]);
    assert!(
        holdout(&r)["not_split"]
            .as_str()
            .is_some_and(|s| s.contains("6 samples")),
        "{}",
        holdout(&r)
    );
    assert_eq!(r["validation"]["samples"], 6);
}

#[test]
fn the_search_writes_the_smallest_passing_budget_and_lists_its_probes() {
    let (_dir, d) = workspace(false);
    let target = "0.9995";
    let run_json = |extra: &[&str]| {
        let mut args = vec![
            "head.onnx",
            "-o",
            "o.onnx",
            "--calib",
            "cal",
            "--metric",
            "cosine",
            "--report",
            "r.json",
            "-q",
        ];
        args.extend_from_slice(extra);
        let o = run(&d, &args);
        (o.status.code(), report(&d.join("r.json")), text(&o))
    };
    // --calib without a budget: the search.
    let (code, r, out) = run_json(&["--min-fidelity", target, "--html", "r.html"]);
    assert_eq!(code, Some(0), "{out}");
    let s = &r["precision"]["search"];
    let probes = s["probes"].as_array().expect("probes");
    assert!(probes.len() >= 2, "{s}");
    for p in probes {
        assert!(
            p["budget"].is_number() && p["passed"].is_boolean() && p["seconds"].is_number(),
            "{p}"
        );
    }
    let chosen = s["chosen_budget"].as_f64().expect("chosen_budget");
    let passing: Vec<f64> = probes
        .iter()
        .filter(|p| p["passed"] == true)
        .map(|p| p["budget"].as_f64().expect("budget"))
        .collect();
    assert_eq!(
        passing.iter().cloned().fold(f64::INFINITY, f64::min),
        chosen,
        "{s}"
    );
    // Bisection: a failing probe sits just below the choice.
    assert!(
        probes.iter().any(|p| p["passed"] == false
            && (chosen - p["budget"].as_f64().expect("budget")) <= 0.02 + 1e-9),
        "{s}"
    );
    let size = s["chosen_size_fraction"].as_f64().expect("size");
    let written = r["precision"]["size_fraction"]
        .as_f64()
        .expect("size_fraction");
    assert!(
        (size - written).abs() < 1e-12,
        "the written model is the chosen probe"
    );
    assert_eq!(r["validation"]["passed"], true);
    assert_schema(&r);
    // The HTML report draws the probes' size–fidelity curve: a point per probe, fp32, a ring.
    let page = std::fs::read_to_string(d.join("r.html")).expect("html");
    let curve = page
        .split("id=\"search-curve\"")
        .nth(1)
        .and_then(|rest| rest.split("</figure>").next())
        .expect("the search-curve figure");
    let (points, legend) = curve.split_once("<g class=\"legend\">").expect("a legend");
    assert_eq!(
        points.matches("<circle").count(),
        probes.len() + 2,
        "{curve}"
    );
    assert!(legend.contains("uniform int8"), "{legend}");
    // Uniform int8, measured once like a probe, is a distinct marker and in the report.
    assert_eq!(
        points.matches("class=\"uniform-int8\"").count(),
        1,
        "{curve}"
    );
    let u = &s["uniform_int8"];
    assert!(
        u["size_fraction"].is_number() && u["passed"].is_boolean() && u["fidelity"].is_object(),
        "{u}"
    );
    // The first probe says where it came from, and is the first one listed.
    let first = &s["first_probe"];
    assert!(
        first["source"] == "error model" || first["source"] == "default",
        "{first}"
    );
    assert_eq!(first["budget"], probes[0]["budget"], "{s}");

    // A sweep of fixed budgets, validated on the same held-out quarter: the chosen size is
    // within 0.03 of the smallest that passes.
    let mut sweep = Vec::new();
    for i in 0..=15 {
        let b = format!("{:.3}", 0.125 + 0.025 * i as f64);
        let (code, r, out) = run_json(&["--size-budget", &b]);
        if code == Some(2) && out.contains("is infeasible") {
            continue; // below what the narrowest formats store (scales included)
        }
        assert_eq!(code, Some(0), "{b}: {out}");
        let f = &r["validation"]["fidelity"];
        let size = r["precision"]["size_fraction"].as_f64().expect("size");
        let value = f["outputs"][0]["value"].as_f64().expect("value");
        sweep.push((b, size, value));
    }
    println!("search {chosen} -> size {size}; sweep (budget, size, cosine): {sweep:?}");
    let t: f64 = target.parse().expect("target");
    let smallest = sweep
        .iter()
        .filter(|(_, _, v)| *v >= t)
        .map(|(_, s, _)| *s)
        .fold(f64::INFINITY, f64::min);
    assert!(
        smallest.is_finite(),
        "no budget of the sweep passes: {sweep:?}"
    );
    assert!(
        (size - smallest).abs() <= 0.03,
        "search {size}, sweep {smallest}: {sweep:?}"
    );

    // A target no budget up to fp16 meets: exit 3, nothing written.
    std::fs::remove_file(d.join("o.onnx")).expect("rm");
    let o = run(
        &d,
        &[
            "head.onnx",
            "-o",
            "o.onnx",
            "--calib",
            "cal",
            "--metric",
            "cosine",
            "--min-fidelity",
            "1",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no size budget up to 0.5 meets the fidelity targets"),
        "{err}"
    );
    assert!(!d.join("o.onnx").exists());
}

#[test]
fn a_precision_pass_entry_with_calib_only_searches() {
    let (_dir, d) = workspace(false);
    let toml = "[[pass]]\nname = \"cleanup\"\n[[pass]]\nname = \"precision\"\ncalib = \"cal\"\n";
    std::fs::write(d.join("optimize.toml"), toml).expect("config");
    let run_json = |extra: &[&str]| {
        let mut args = vec!["head.onnx", "-o", "o.onnx", "--metric", "cosine"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--report", "r.json", "-q"]);
        let o = run(&d, &args);
        assert!(o.status.success(), "{}", text(&o));
        report(&d.join("r.json"))
    };
    // calib in the pass entry, no budget: the search runs, as with --calib.
    let r = run_json(&[]);
    let s = &r["precision"]["search"];
    assert!(
        s["probes"].as_array().is_some_and(|p| !p.is_empty()),
        "no search: {}",
        r["precision"]
    );
    assert_schema(&r);
    // A budget in the entry is the contract: no search.
    let toml = format!("{toml}size-budget = 0.4\n");
    std::fs::write(d.join("optimize.toml"), toml).expect("config");
    let r = run_json(&[]);
    assert!(r["precision"]["search"].is_null(), "{}", r["precision"]);
    let size = r["precision"]["size_fraction"].as_f64().expect("size");
    assert!(size <= 0.4 + 1e-9, "{size}");
}
