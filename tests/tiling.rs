//! Fused-layer tiling (issue 21): halo arithmetic against brute force, the checker against
//! corrupted plans, the VGG-19 anchor of Alwani et al., and tiled ONNX validated on
//! onnxruntime (fp32 within 1e-4, int8 bit-identical). The heavy cases (PP-OCR det at
//! 320×320, DenseNet-121) are in examples/bench_tiling.rs.

mod common;

use optimize::ir::Model;
use optimize::pass_manager::Pass;
use optimize::passes::cleanup::Cleanup;
use optimize::passes::precision::pass::{
    run_precision, Budget, Objective, PrecisionConfig, Strategy,
};
use optimize::passes::precision::Precision;
use optimize::passes::tiling::check::check;
use optimize::passes::tiling::graph::{extract, SGraph};
use optimize::passes::tiling::halo::WindowAxis;
use optimize::passes::tiling::plan::TilePlan;
use optimize::passes::tiling::rewrite::rewrite;
use optimize::passes::tiling::run::{solve, TilingOptions, TilingOutcome};
use optimize::passes::tiling::simulate::Event;
use optimize::passes::tiling::submodel::{cut, materialize_filled_constants};
use optimize::passes::tiling::verify::compare_on_ort;
use optimize::pipeline::load_and_infer;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::PathBuf;

type Bindings = HashMap<String, Vec<i64>>;

fn load(path: PathBuf, bindings: &Bindings, outputs: Option<&[&str]>) -> Model {
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup.sh first",
        path.display()
    );
    let mut m = load_and_infer(&path, bindings).expect("model loads");
    Cleanup.run(&mut m).expect("cleanup");
    m.graph.relink().expect("relink");
    if let Some(o) = outputs {
        cut(&mut m, o).expect("cut");
    }
    m
}

/// VGG-19 (light, from the onnx wheel) up to the ReLU of conv3_1: its first five
/// convolution layers, 224×224, as in Alwani et al.
fn vgg5() -> Model {
    let path = common::root().join(".deps/onnx-data/light/light_vgg19.onnx");
    load(path, &Bindings::new(), Some(&["r11"]))
}

fn ppocr_det(side: i64) -> (Model, Bindings) {
    let b = Bindings::from([("x".to_string(), vec![1, 3, side, side])]);
    let path = common::root().join(".deps/models/ch_PP-OCRv4_det_infer.onnx");
    (load(path, &b, None), b)
}

fn tile(m: &Model, budget: u64) -> (SGraph, TilingOutcome) {
    let g = extract(m, 64, false).expect("tiling view");
    let out = solve(&g, budget, &TilingOptions::default()).expect("a tiled plan");
    (g, out)
}

fn plan(out: &TilingOutcome) -> &TilePlan {
    out.ours.plan.as_ref().expect("plan")
}

/// Checker passes, ours ≤ the greedy cascade ≤ ... and the tiled ONNX matches on onnxruntime.
fn assert_tiled_ok(
    name: &str,
    m: &Model,
    b: &Bindings,
    g: &SGraph,
    out: &TilingOutcome,
    optimized: bool,
) -> f64 {
    let ours = out
        .ours
        .check
        .as_ref()
        .expect("ours passes the checker")
        .traffic;
    let greedy = out.greedy.traffic().expect("greedy plan");
    let lbl = out.layer_by_layer.traffic().expect("layer-by-layer plan");
    assert!(
        ours <= greedy && greedy <= lbl,
        "{name}: ours {ours}, greedy {greedy}, layer by layer {lbl}"
    );
    let mut tiled = m.clone();
    let rw = rewrite(&mut tiled, g, plan(out)).expect("rewrite");
    assert!(rw.tiled_segments > 0, "{name}: nothing tiled");
    let a = compare_on_ort(m, &tiled, b, 1, optimized).expect("onnxruntime runs both");
    eprintln!(
        "{name}: traffic ours {ours} greedy {greedy} layer-by-layer {lbl}; {} runs; {} -> {} nodes; max rel err {:.2e}, bit-identical {}",
        plan(out).runs(),
        rw.nodes_before,
        rw.nodes_after,
        a.tolerance_err,
        a.metrics.bit_identical
    );
    if optimized {
        assert!(
            a.metrics.bit_identical,
            "{name}: int8 tiles differ ({:.3e})",
            a.tolerance_err
        );
    }
    assert!(
        a.tolerance_err <= 1e-4,
        "{name}: tiled output differs by {:.3e}",
        a.tolerance_err
    );
    a.tolerance_err
}

// ------------------------------------------------------------------ halo arithmetic

/// Per layer (last first), by enumerating every tap of every output row of the stripe: the
/// input rows read (clipped) and the taps beyond each border (the tile's pads). A stripe
/// computes every row of its range, so the next layer's stripe is that whole range.
fn brute_rows(chain: &[(WindowAxis, i64)], o0: i64, o1: i64) -> Vec<(i64, i64, i64, i64)> {
    let (mut a, mut b) = (o0, o1);
    let mut out = Vec::new();
    for (w, len) in chain.iter().rev() {
        let taps: Vec<i64> = (a..b)
            .flat_map(|o| (0..w.kernel).map(move |i| o * w.stride - w.pad_begin + i * w.dilation))
            .collect();
        let (first, last) = (
            *taps.iter().min().unwrap_or(&0),
            *taps.iter().max().unwrap_or(&-1),
        );
        let row = (
            first.max(0),
            (last + 1).min(*len),
            (-first).max(0),
            (last + 1 - len).max(0),
        );
        out.push(row);
        (a, b) = (row.0, row.1);
    }
    out
}

#[test]
fn halo_arithmetic_matches_brute_force_on_random_conv_pool_chains() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
    let mut checked = 0;
    for _ in 0..300 {
        // A chain of 1-5 convolutions and pools (input length first), strides, dilations,
        // pads up to the window and ceil mode.
        let mut len: i64 = rng.random_range(12..64);
        let mut chain: Vec<(WindowAxis, i64)> = Vec::new();
        for _ in 0..rng.random_range(1..6) {
            let kernel = rng.random_range(1..6);
            let dilation = if rng.random_bool(0.3) {
                rng.random_range(1..3)
            } else {
                1
            };
            let span = (kernel - 1) * dilation + 1;
            let w = WindowAxis {
                kernel,
                stride: rng.random_range(1..4),
                dilation,
                pad_begin: rng.random_range(0..span),
                pad_end: rng.random_range(0..span),
            };
            let floor = w.out_len(len, w.pad_begin, w.pad_end);
            // Ceil mode (pools): one more output when a window would still start inside.
            let ceil_extra = rng.random_bool(0.3) && (floor * w.stride - w.pad_begin) < len;
            let out = floor + i64::from(ceil_extra);
            if out < 1 {
                break;
            }
            chain.push((w, len));
            len = out;
        }
        if chain.is_empty() {
            continue;
        }
        let o0 = rng.random_range(0..len);
        let o1 = rng.random_range(o0 + 1..=len);
        let brute = brute_rows(&chain, o0, o1);
        let (mut a, mut b) = (o0, o1);
        for ((w, in_len), want) in chain.iter().rev().zip(&brute) {
            let n = w.input_for(a, b, *in_len);
            assert_eq!(
                (n.lo, n.hi, n.pad_lo, n.pad_hi),
                *want,
                "{w:?} rows [{a}, {b}) of {in_len}"
            );
            // The tile over the clipped rows, padded, in floor mode, computes exactly b − a rows.
            assert_eq!(
                w.out_len(n.hi - n.lo, n.pad_lo, n.pad_hi),
                b - a,
                "{w:?} [{a}, {b})"
            );
            a = n.lo;
            b = n.hi;
            checked += 1;
        }
    }
    assert!(checked > 500, "only {checked} layers checked");
}

// ------------------------------------------------------------------ VGG-19 anchor

#[test]
fn vgg19_first_five_layers_cut_traffic_by_95_percent_at_362_kb() {
    let m = vgg5();
    let (g, out) = tile(&m, 362_000);
    let ours = out.ours.traffic().expect("checked");
    let lbl = out.layer_by_layer.traffic().expect("layer by layer");
    let reduction = 1.0 - ours as f64 / lbl as f64;
    eprintln!(
        "VGG-19 conv1_1..conv3_1 at 362 KB: {lbl} -> {ours} bytes ({:.1}% less)",
        reduction * 100.0
    );
    assert!(
        reduction >= 0.95,
        "only {:.1}% below layer by layer",
        reduction * 100.0
    );
    // The whole fused cascade: only the input is read and the output written (plus halo columns).
    assert_eq!(plan(&out).segments.len(), 1);
    assert_tiled_ok("vgg19 conv1-5", &m, &Bindings::new(), &g, &out, false);
    // Deterministic.
    let (_, again) = tile(&m, 362_000);
    assert_eq!(again.ours.traffic(), out.ours.traffic());
    assert_eq!(plan(&again).runs(), plan(&out).runs());
}

// ------------------------------------------------------------------ checker

fn expect_reject(g: &SGraph, p: &TilePlan, what: &str, needles: &[&str]) {
    let e = check(g, p).expect_err(what);
    assert!(
        needles.iter().any(|n| e.contains(n)),
        "{what}: got '{e}', expected one of {needles:?}"
    );
}

fn first_run(
    p: &TilePlan,
    pred: impl Fn(&optimize::passes::tiling::simulate::Run) -> bool,
) -> (usize, usize) {
    for (s, seg) in p.segments.iter().enumerate() {
        for (i, e) in seg.events.iter().enumerate() {
            if let Event::Run(r) = e {
                if pred(r) {
                    return (s, i);
                }
            }
        }
    }
    panic!("no such run");
}

fn run_mut(p: &mut TilePlan, at: (usize, usize)) -> &mut optimize::passes::tiling::simulate::Run {
    match &mut p.segments[at.0].events[at.1] {
        Event::Run(r) => r,
        _ => unreachable!(),
    }
}

#[test]
fn checker_rejects_corrupted_tile_plans() {
    let m = vgg5();
    let (g, out) = tile(&m, 362_000);
    let good = plan(&out).clone();
    assert!(check(&g, &good).is_ok());
    let by_name = |n: &str| g.tensors.iter().position(|t| t.name == n).expect("tensor");
    let conv = |n: &str| {
        g.ops
            .iter()
            .position(|o| g.tensors[o.output()].name == n)
            .expect("op")
    };
    // A ring one row too small: a row is overwritten before its last read.
    let mut bad = good.clone();
    let ring = good.segments[0].buffer_of[&by_name("r1")];
    bad.buffers[ring].rows -= 1;
    expect_reject(&g, &bad, "ring too small", &["ring too small"]);
    // Two buffers on top of each other.
    let mut bad = good.clone();
    let other = good.segments[0].buffer_of[&by_name("r4")];
    bad.buffers[other].offset = bad.buffers[ring].offset;
    expect_reject(&g, &bad, "overlap", &["overlaps"]);
    // Outside the scratchpad, and unaligned.
    let mut bad = good.clone();
    bad.budget = good
        .buffers
        .iter()
        .map(|b| b.offset + b.bytes)
        .max()
        .unwrap_or(0)
        - 64;
    expect_reject(&g, &bad, "outside", &["outside"]);
    let mut bad = good.clone();
    bad.buffers[other].offset += 4;
    expect_reject(&g, &bad, "unaligned", &["aligned"]);
    // A halo one row short, and border padding removed.
    let mut bad = good.clone();
    let at = first_run(&good, |r| {
        r.op == conv("r2") && r.rows.0 > 4 && r.reads[0].rows.1 - r.reads[0].rows.0 > 2
    });
    run_mut(&mut bad, at).reads[0].rows.1 -= 1;
    expect_reject(&g, &bad, "short halo", &["receptive field"]);
    let mut bad = good.clone();
    let at = first_run(&good, |r| r.op == conv("r2") && r.rows.0 == 0);
    run_mut(&mut bad, at).reads[0].pads[0] = 0;
    expect_reject(&g, &bad, "pads", &["receptive field"]);
    // A load dropped, a store dropped, a store doubled.
    let mut bad = good.clone();
    let i = bad.segments[0]
        .events
        .iter()
        .position(|e| matches!(e, Event::Load { .. }))
        .expect("a load");
    bad.segments[0].events.remove(i);
    expect_reject(&g, &bad, "missing load", &["is not in buffer"]);
    let store = good.segments[0]
        .events
        .iter()
        .position(|e| matches!(e, Event::Store { .. }))
        .expect("a store");
    let mut bad = good.clone();
    bad.segments[0].events.remove(store);
    expect_reject(&g, &bad, "missing store", &["not off chip at the end"]);
    let mut bad = good.clone();
    let e = bad.segments[0].events[store].clone();
    bad.segments[0].events.insert(store, e);
    expect_reject(&g, &bad, "double store", &["written off chip twice"]);
    // A run before the rows it reads exist.
    let mut bad = good.clone();
    let at = first_run(&good, |r| r.op == conv("r10"));
    let e = bad.segments[0].events.remove(at.1);
    bad.segments[0].events.insert(0, e);
    expect_reject(&g, &bad, "order", &["is not in buffer"]);
    // A convolution writing over its own input.
    let mut bad = good.clone();
    let input_buf = bad.segments[0].buffer_of[&by_name("r1")];
    bad.segments[0].buffer_of.insert(by_name("r2"), input_buf);
    expect_reject(
        &g,
        &bad,
        "in place",
        &["writes over its input", "overlaps", "is not in buffer"],
    );
    // The claimed traffic off by one byte; an operator missing from its segment.
    let mut bad = good.clone();
    bad.claimed_traffic += 1;
    expect_reject(&g, &bad, "traffic", &["differs"]);
    let mut bad = good.clone();
    bad.segments[0].ops.retain(|&x| x != conv("r4"));
    expect_reject(&g, &bad, "missing operator", &["in no segment"]);
}

// ------------------------------------------------------------------ more real models

#[test]
fn tiled_resnet50_and_ppocr_det_validate_on_onnxruntime() {
    let path = common::root().join(".deps/onnx-data/light/light_resnet50.onnx");
    let m = load(path, &Bindings::new(), None);
    let (g, out) = tile(&m, 1 << 20);
    assert!(plan(&out).cascades() > 0);
    assert_tiled_ok("resnet50 at 1 MiB", &m, &Bindings::new(), &g, &out, false);
    let (m, b) = ppocr_det(160);
    let (g, out) = tile(&m, 256 << 10);
    assert_tiled_ok("ppocr det 160x160 at 256 KiB", &m, &b, &g, &out, false);
}

#[test]
fn int8_tiles_are_bit_identical() {
    let (mut m, b) = ppocr_det(96);
    let cfg = PrecisionConfig {
        budget: Budget::SizeFraction(1.0),
        strategy: Strategy::Uniform(Precision::Int8),
        objective: Objective::Proxy,
        measure: false,
        calib_random: true,
        ..PrecisionConfig::default()
    };
    run_precision(&mut m, &cfg).expect("int8");
    optimize::shape::infer(&mut m, &b).expect("shapes");
    m.graph.relink().expect("relink");
    let (g, out) = tile(&m, 64 << 10);
    assert_tiled_ok("ppocr det 96x96 int8 at 64 KiB", &m, &b, &g, &out, true);
    // The light models carry ConstantOfShape weights; materialized, the precision pass can
    // quantize them (the benchmark tiles int8 VGG-19 this way).
    let mut v = vgg5();
    assert_eq!(materialize_filled_constants(&mut v).expect("weights"), 8);
    optimize::shape::infer(&mut v, &Bindings::new()).expect("shapes");
    assert!(v.graph.nodes().all(|(_, n)| !n.is("ConstantOfShape")));
}

// ------------------------------------------------------------------ the CLI

/// The binary below M_R: `--scratchpad` tiles instead of failing, the pipeline validates the
/// tiled model against the original on onnxruntime, and the report, plan and HTML describe
/// the tiles; `--tiling off` keeps the old refusal (exit 2 naming M_R), writing nothing.
#[test]
fn cli_tiles_below_m_r_and_validates_the_tiled_model() {
    let model = common::root().join(".deps/models/ch_PP-OCRv4_det_infer.onnx");
    assert!(
        model.is_file(),
        "{} is missing: run scripts/setup.sh",
        model.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |n: &str| dir.path().join(n).to_str().expect("utf8").to_string();
    let run = |extra: &[&str]| {
        let mut args = vec![
            model.to_str().expect("utf8").to_string(),
            "-o".into(),
            p("det.tiled.onnx"),
            "--no-precision".into(),
            "--input-shape".into(),
            "x=1x3x160x160".into(),
            "--scratchpad".into(),
            "256KiB".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        std::process::Command::new(common::optimize_bin())
            .args(&args)
            .output()
            .expect("run optimize")
    };
    let off = run(&["--tiling", "off"]);
    let err = String::from_utf8_lossy(&off.stderr);
    assert_eq!(off.status.code(), Some(2), "{err}");
    assert!(err.contains("M_R") && err.lines().count() == 1, "{err}");
    assert!(!dir.path().join("det.tiled.onnx").exists());

    let o = run(&[
        "--report",
        &p("report.json"),
        "--plan",
        &p("plan.json"),
        "--html",
        &p("report.html"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p("report.json")).expect("report"))
            .expect("json");
    let s = &r["schedule"];
    assert_eq!(s["tiled"], true, "{s}");
    // The tile events go to --plan only, not into the report.
    assert!(
        s.get("plan_file").is_none(),
        "the report carries the --plan file"
    );
    assert_eq!(s["checker"]["passed"], true);
    assert!(s["m_r"].as_u64().expect("m_r") > 256 * 1024);
    assert!(s["peak_scratchpad_bytes"].as_u64().expect("peak") <= 256 * 1024);
    let t = &s["traffic_bytes"];
    let ours = t["ours"].as_u64().expect("ours");
    let greedy = t["baselines"]["greedy_cascade"].as_u64().expect("greedy");
    assert!(ours <= greedy, "ours {ours} > greedy {greedy}");
    assert!(s["rewrite"]["tiled_segments"].as_u64().expect("segments") > 0);
    assert!(!s["cascades"].as_array().expect("cascades").is_empty());
    // The written model is the tiled one, and it validated against the original.
    assert_eq!(r["validation"]["passed"], true, "{}", r["validation"]);
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p("plan.json")).expect("plan"))
            .expect("json");
    let segs = plan["segments"].as_array().expect("segments");
    assert!(
        segs.iter().any(|s| s.get("events").is_some()),
        "--plan has no tile events"
    );
    let html = std::fs::read_to_string(p("report.html")).expect("html");
    assert!(html.contains(r#"<figure id="tiles""#), "no tiles picture");

    // At or above M_R with `--tiling on`, the cheaper plan is kept: here the whole-tensor
    // schedule, which moves nothing off chip.
    let on = std::process::Command::new(common::optimize_bin())
        .args([
            model.to_str().expect("utf8"),
            "-o",
            &p("det.on.onnx"),
            "--no-precision",
            "--input-shape",
            "x=1x3x160x160",
            "--scratchpad",
            "8MiB",
            "--tiling",
            "on",
            "--report",
            &p("on.json"),
        ])
        .output()
        .expect("run optimize");
    assert!(
        on.status.success(),
        "{}",
        String::from_utf8_lossy(&on.stderr)
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p("on.json")).expect("report"))
            .expect("json");
    let s = &r["schedule"];
    assert!(
        s.get("tiled").is_none(),
        "tiled although COSMA moves nothing: {s}"
    );
    assert_eq!(s["traffic_bytes"]["ours"], 0, "{s}");
}
