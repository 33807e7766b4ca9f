//! Scratchpad scheduling (COSMA) on hand-made problems and on real models.

mod common;

use optimize::pass_manager::Pass;
use optimize::passes::cleanup::Cleanup;
use optimize::passes::schedule::checker::check;
use optimize::passes::schedule::order::min_peak_order;
use optimize::passes::schedule::plan::Plan;
use optimize::passes::schedule::problem::{extract, Problem, TensorKind};
use optimize::passes::schedule::target::Target;
use optimize::passes::schedule::{schedule, schedule_with, Mode, Outcome, ScheduleOptions};
use optimize::pipeline::load_and_infer;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

/// The four-tensor toy of the reference: a 10-byte skip tensor beside a 100 → 100 chain.
fn toy() -> Problem {
    let mut p = Problem::new(1);
    let t10 = p.add_tensor("t10", 10, TensorKind::Activation);
    let t11 = p.add_tensor("t11", 100, TensorKind::Activation);
    let t12 = p.add_tensor("t12", 100, TensorKind::Activation);
    let t13 = p.add_tensor("t13", 10, TensorKind::Activation);
    p.add_op("op0", &[], &[t10]);
    p.add_op("op1", &[], &[t11]);
    p.add_op("op2", &[t11], &[t12]);
    p.add_op("op3", &[t10, t12], &[t13]);
    p
}

fn fixed(limit: f64) -> ScheduleOptions {
    ScheduleOptions {
        mode: Mode::Fixed,
        time_limit_s: limit,
        ..ScheduleOptions::default()
    }
}

#[test]
fn toy_budget_200_costs_20_bytes_in_model_order_and_0_in_free_order() {
    let p = toy();
    let out = schedule(&p, 200, &fixed(10.0)).expect("schedules");
    assert_eq!(out.m_r, 200);
    assert_eq!(out.model_order_peak, 210);
    assert_eq!(out.m_p, 200);
    assert_eq!(out.ours.traffic(), Some(20));
    assert_eq!(out.solver.status, "optimal");
    let plan = out.ours.plan.as_ref().expect("plan");
    // The skip tensor t10 is the one spilled and reloaded.
    let spilled: Vec<usize> = plan.steps.iter().flat_map(|s| s.spill.clone()).collect();
    assert_eq!(spilled, vec![0]);
    let auto = ScheduleOptions {
        mode: Mode::Auto,
        ..fixed(10.0)
    };
    let out = schedule(&p, 200, &auto).expect("schedules");
    assert_eq!(out.ours.traffic(), Some(0));
    assert_eq!(out.ours.order, vec![1, 2, 0, 3]);
}

/// The optimal toy plan, corrupted in one way at a time, must be rejected.
#[test]
fn checker_rejects_corrupted_plans() {
    let p = toy();
    let out = schedule(&p, 200, &fixed(10.0)).expect("schedules");
    let good: Plan = out.ours.plan.clone().expect("plan");
    assert!(check(&p, &good, 200).is_ok());
    let reject = |plan: &Plan, budget: u64, what: &str, needle: &str| {
        let e = check(&p, plan, budget).expect_err(what);
        assert!(
            e.contains(needle),
            "{what}: got '{e}', expected it to mention '{needle}'"
        );
    };
    // Smaller scratchpad than the plan uses.
    reject(&good, 150, "outside", "outside");
    // Overlap: put t12 on top of t11.
    let mut bad = good.clone();
    let t11_addr = bad.steps[1].alloc[0].1;
    bad.steps[2].alloc[0].1 = t11_addr;
    reject(&bad, 200, "overlap", "overlaps");
    // Missing input: drop the reload of the skip tensor.
    let mut bad = good.clone();
    bad.steps.iter_mut().for_each(|s| s.reload.clear());
    reject(&bad, 200, "missing input", "is not on chip");
    // Reload without a spill: turn the spill into a drop.
    let mut bad = good.clone();
    for s in bad.steps.iter_mut() {
        let sp = std::mem::take(&mut s.spill);
        s.drop.extend(sp);
    }
    reject(&bad, 200, "drop without copy", "without an off-chip copy");
    // Reload of a tensor still on chip (an address change while resident).
    let mut bad = good.clone();
    let t12_addr = bad.steps[2].alloc[0].1;
    bad.steps[3].reload.push((2, t12_addr));
    reject(&bad, 200, "reload while resident", "still on chip");
    // Two spills of the same tensor.
    let mut bad = good.clone();
    let (t, a) = bad
        .steps
        .iter()
        .enumerate()
        .find_map(|(t, s)| s.reload.first().map(|r| (t, r.0)))
        .expect("a reload");
    bad.steps[t].spill.push(a);
    bad.steps[t].reload.retain(|r| r.0 != a);
    reject(&bad, 200, "second spill", "not on chip");
    // Output never placed.
    let mut bad = good.clone();
    bad.steps[3].alloc.clear();
    reject(&bad, 200, "no output", "has no place");
    // Order breaking a dependency.
    let mut bad = good.clone();
    bad.order.swap(1, 2);
    reject(&bad, 200, "order", "predecessor");
    // Misaligned offset.
    let mut p8 = toy();
    p8.alignment = 8;
    let mut bad = Plan::empty(p8.model_order());
    bad.steps[0].alloc.push((0, 4));
    let e = check(&p8, &bad, 400).expect_err("misaligned");
    assert!(e.contains("aligned"), "{e}");
}

// ------------------------------------------------------------------ real models

struct Case {
    name: &'static str,
    path: PathBuf,
    bindings: HashMap<String, Vec<i64>>,
}

fn cases() -> Vec<Case> {
    let root = common::root();
    let light = root.join(".deps/onnx-data/light");
    let mut v: Vec<Case> = [
        "light_resnet50",
        "light_densenet121",
        "light_inception_v1",
        "light_inception_v2",
        "light_squeezenet",
        "light_shufflenet",
    ]
    .into_iter()
    .map(|n| Case {
        name: n,
        path: light.join(format!("{n}.onnx")),
        bindings: HashMap::new(),
    })
    .collect();
    let models = root.join(".deps/models");
    v.push(Case {
        name: "ppocr_det",
        path: models.join("ch_PP-OCRv4_det_infer.onnx"),
        bindings: HashMap::from([("x".to_string(), vec![1, 3, 640, 640])]),
    });
    v.push(Case {
        name: "ppocr_rec",
        path: models.join("ch_PP-OCRv4_rec_infer.onnx"),
        bindings: HashMap::from([("x".to_string(), vec![1, 3, 48, 320])]),
    });
    for c in &v {
        assert!(
            c.path.is_file(),
            "{} is missing: run scripts/setup.sh first (it fetches the test models)",
            c.path.display()
        );
    }
    v
}

fn problem(c: &Case, weights: bool) -> Problem {
    let mut model = load_and_infer(&c.path, &c.bindings).expect("model loads");
    Cleanup.run(&mut model).expect("cleanup");
    model.graph.relink().expect("relink");
    let target = Target {
        weights_in_scratchpad: weights,
        ..Target::with_scratchpad(1)
    };
    extract(&model, &target).expect("problem")
}

fn fmt_kib(b: Option<u64>) -> String {
    b.map(|b| format!("{:.1}", b as f64 / 1024.0))
        .unwrap_or_else(|| "-".into())
}

/// Per-case ILP time limit for the test suite (the pass's default is 60 s).
const TEST_LIMIT_S: f64 = 4.0;

fn run_case(
    c: &Case,
    weights: bool,
    rows: &mut Vec<String>,
    reductions: &mut Vec<f64>,
    zero_at_mp: &mut usize,
) {
    let t0 = Instant::now();
    let p = problem(c, weights);
    eprintln!(
        "{}: {} operators, {} tensors, loaded in {:.1} s",
        c.name,
        p.ops.len(),
        p.tensors.len(),
        t0.elapsed().as_secs_f64()
    );
    let opts = ScheduleOptions {
        time_limit_s: TEST_LIMIT_S,
        ..ScheduleOptions::default()
    };
    // M_R and M_P from a first run at a generous budget.
    let t1 = Instant::now();
    let mp = min_peak_order(&p, opts.order_states_for(&p));
    let first = schedule_with(&p, u64::MAX / 4, &opts, &mp).expect("schedules at a huge budget");
    eprintln!(
        "  M_R {} M_P {} (exact: {}) model-order peak {}: {:.1} s",
        first.m_r,
        first.m_p,
        first.m_p_exact,
        first.model_order_peak,
        t1.elapsed().as_secs_f64()
    );
    let (mr, m_p) = (first.m_r, first.m_p);
    assert!(mr <= m_p && m_p <= first.model_order_peak);
    let unit = p.alignment;
    let mid = ((mr + m_p) / 2) / unit * unit;
    for (label, budget) in [("M_R", mr), ("M_H", mid.max(mr)), ("M_P", m_p)] {
        let t = Instant::now();
        let out: Outcome = schedule_with(&p, budget, &opts, &mp).expect("schedules");
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "  {label}: {budget} bytes, ours {:?}, baselines {:?}, {} ({} windows), {secs:.1} s",
            out.ours.traffic(),
            out.baselines
                .iter()
                .map(|m| m.traffic())
                .collect::<Vec<_>>(),
            out.solver.status,
            out.solver.windows
        );
        let ours = out
            .ours
            .check
            .as_ref()
            .expect("the chosen plan passes the checker");
        // Re-check independently here too.
        let plan = out.ours.plan.as_ref().expect("plan");
        assert_eq!(check(&p, plan, budget).as_ref(), Ok(ours));
        let best = out.best_baseline();
        if let Some(b) = best {
            assert!(
                ours.traffic_bytes <= b,
                "{} {label}: ours {} > best baseline {b}",
                c.name,
                ours.traffic_bytes
            );
        }
        if let Some(lb) = out.traffic_lower_bound {
            assert!(
                ours.traffic_bytes >= lb,
                "{} {label}: below the lower bound",
                c.name
            );
        }
        if label == "M_P" && ours.traffic_bytes == 0 {
            *zero_at_mp += 1;
        }
        if label == "M_R" {
            if let Some(r) = out.reduction_vs_best_baseline() {
                reductions.push(r);
            }
        }
        assert!(secs < 120.0, "{} {label}: {secs:.1} s", c.name);
        let base: Vec<String> = out.baselines.iter().map(|m| fmt_kib(m.traffic())).collect();
        rows.push(format!(
            "{:<20} {:<3} {:>4} {:>9.1} {:>9.1} {:>12} {:>12} {:>10} {:>9} {:>9} {:>9} {:>13} {:>16} {:>6.1}s",
            c.name,
            if weights { "w" } else { "a" },
            label,
            budget as f64 / 1024.0,
            m_p as f64 / 1024.0,
            base[0],
            base[1],
            fmt_kib(Some(ours.traffic_bytes)),
            fmt_kib(out.solver.bound_bytes),
            fmt_kib(out.free_order_lower_bound),
            out.reduction_vs_best_baseline()
                .map(|r| format!("{:.0}%", 100.0 * r))
                .unwrap_or_else(|| "-".into()),
            source_tag(&out.source),
            format!(
                "{}{}",
                out.solver.status,
                if out.solver.windows > 1 {
                    format!("/{}w", out.solver.windows)
                } else {
                    String::new()
                }
            ),
            secs,
        ));
    }
}

/// Short name of where the chosen plan came from.
fn source_tag(source: &str) -> &'static str {
    if source.starts_with("baseline") {
        "baseline"
    } else if source.starts_with("order search") {
        "search+2-phase"
    } else if source == "residency ilp" {
        "2-phase ilp"
    } else if source == "windows" {
        "windows ilp"
    } else {
        "full ilp"
    }
}

fn table(models: &[&str], weights: bool) {
    let mut rows = Vec::new();
    let mut reductions = Vec::new();
    let mut zero_at_mp = 0;
    let mut n_models = 0;
    let start = Instant::now();
    for c in cases().iter().filter(|c| models.contains(&c.name)) {
        run_case(c, weights, &mut rows, &mut reductions, &mut zero_at_mp);
        n_models += 1;
    }
    println!(
        "\n{:<20} {:<3} {:>4} {:>9} {:>9} {:>12} {:>12} {:>10} {:>9} {:>9} {:>9} {:>13} {:>16} {:>7}",
        "model",
        "set",
        "MB",
        "MB KiB",
        "M_P KiB",
        "model+B KiB",
        "minpk+B KiB",
        "ours KiB",
        "LB KiB",
        "anyLB KiB",
        "reduct.",
        "method",
        "solver",
        "time"
    );
    for r in &rows {
        println!("{r}");
    }
    println!("zero traffic at M_P for {zero_at_mp} of {n_models} models");
    if !reductions.is_empty() {
        println!(
            "average reduction vs best baseline at M_R (where the baseline had traffic): {:.0}% over {} cases; ILP limit {TEST_LIMIT_S} s per case; {:.1} s total",
            100.0 * reductions.iter().sum::<f64>() / reductions.len() as f64,
            reductions.len(),
            start.elapsed().as_secs_f64()
        );
    }
}

#[test]
fn cnn_models_activations_only() {
    table(
        &[
            "light_resnet50",
            "light_squeezenet",
            "light_inception_v1",
            "light_shufflenet",
        ],
        false,
    );
}

#[test]
fn cnn_models_with_weights() {
    table(
        &[
            "light_resnet50",
            "light_squeezenet",
            "light_inception_v1",
            "light_shufflenet",
        ],
        true,
    );
}

#[test]
fn big_models() {
    table(&["light_densenet121", "light_inception_v2"], false);
    table(&["light_densenet121", "light_inception_v2"], true);
}

#[test]
fn ppocr_models() {
    table(&["ppocr_det", "ppocr_rec"], false);
    table(&["ppocr_det", "ppocr_rec"], true);
}

// ------------------------------------------------------------------ command line

#[test]
fn cli_errors_and_outputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = cases();
    let shuffle = cases
        .iter()
        .find(|c| c.name == "light_shufflenet")
        .expect("shufflenet case");
    // Below M_R: exit 2, the message names M_R and the operator.
    let out = std::process::Command::new(common::optimize_bin())
        .arg(&shuffle.path)
        .arg("-o")
        .arg(dir.path().join("o.onnx"))
        .args(["--scratchpad", "1KiB", "--no-validate"])
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("M_R = ") && err.contains("operator '"),
        "{err}"
    );
    // Dynamic shapes without bindings: exit 2 naming the input.
    let rec = cases
        .iter()
        .find(|c| c.name == "ppocr_rec")
        .expect("rec case");
    let out = std::process::Command::new(common::optimize_bin())
        .arg(&rec.path)
        .arg("-o")
        .arg(dir.path().join("r.onnx"))
        .args(["--scratchpad", "4MiB", "--no-validate"])
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("tensor 'x'") && err.contains("--input-shape"),
        "{err}"
    );
    // A real run: report section, plan file, validated output in the chosen order.
    let report = dir.path().join("r.json");
    let plan = dir.path().join("plan.json");
    let out = std::process::Command::new(common::optimize_bin())
        .arg(&shuffle.path)
        .arg("-o")
        .arg(dir.path().join("s.onnx"))
        .args(["--scratchpad", "2746KiB", "--weights-in-scratchpad"])
        .args(["--schedule-time-limit", "5", "--samples", "1"])
        .arg("--report")
        .arg(&report)
        .arg("--plan")
        .arg(&plan)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    let s = &r["schedule"];
    assert_eq!(s["scratchpad_bytes"], 2746 * 1024);
    assert!(s["m_r"].as_u64().expect("m_r") <= 2746 * 1024);
    assert_eq!(s["checker"]["passed"], true);
    let ours = s["traffic_bytes"]["ours"].as_u64().expect("ours");
    let best = s["best_baseline_traffic_bytes"].as_u64().expect("best");
    assert!(ours <= best);
    assert!(s["solver"]["status"].is_string() && s["solver"]["seconds"].is_number());
    assert_eq!(r["validation"]["passed"], true);
    let p: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan).expect("plan")).expect("json");
    assert_eq!(p["order"].as_array().expect("order").len(), 446);
    let spilled: u64 = p["tensors"]
        .as_array()
        .expect("tensors")
        .iter()
        .filter(|t| !t["spill_step"].is_null())
        .map(|t| t["size"].as_u64().expect("size"))
        .sum();
    assert!(spilled <= ours);
}
