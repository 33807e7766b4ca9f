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

/// A weight `w` (8 bytes) read by op0 and op2, a graph input `x` (4 bytes) read by op0, and
/// activations a → b → c (10 bytes each), `a` read by op1 and op2.
fn weighted_chain() -> Problem {
    let mut p = Problem::new(1);
    let w = p.add_tensor("w", 8, TensorKind::Weight);
    let a = p.add_tensor("a", 10, TensorKind::Activation);
    let b = p.add_tensor("b", 10, TensorKind::Activation);
    let c = p.add_tensor("c", 10, TensorKind::Activation);
    let x = p.add_tensor("x", 4, TensorKind::Input);
    p.add_op("op0", &[w, x], &[a]);
    p.add_op("op1", &[a], &[b]);
    p.add_op("op2", &[w, a, b], &[c]);
    p
}

/// A plan written by hand for [`weighted_chain`] (w = 0, a = 1, b = 2, c = 3, x = 4): w and
/// x loaded before op0 (compulsory), w dropped before op1 (it has an off-chip copy) and
/// loaded again before op2 (8 bytes of traffic); `a` spilled and reloaded before op1
/// (10 + 10 bytes).
fn weighted_chain_plan() -> Plan {
    let mut plan = Plan::empty(vec![0, 1, 2]);
    plan.steps[0].reload.push((0, 0));
    plan.steps[0].reload.push((4, 18));
    plan.steps[0].alloc.push((1, 8));
    plan.steps[1].drop.push(0);
    plan.steps[1].spill.push(1);
    plan.steps[1].reload.push((1, 8));
    plan.steps[1].alloc.push((2, 18));
    plan.steps[2].reload.push((0, 0));
    plan.steps[2].alloc.push((3, 28));
    plan
}

/// The checker's accounting on a hand-counted plan, and each rule it enforces broken once.
#[test]
fn checker_counts_a_hand_made_plan_and_rejects_each_broken_rule() {
    let p = weighted_chain();
    let good = weighted_chain_plan();
    let r = check(&p, &good, 40).expect("the hand-made plan is valid");
    // Spilled: a (10). Reloaded: a (10) and w's second load (8). The first loads of w and
    // x are compulsory (8 + 4).
    assert_eq!(
        (
            r.traffic_bytes,
            r.spill_bytes,
            r.reload_bytes,
            r.compulsory_load_bytes
        ),
        (28, 10, 18, 12)
    );
    assert_eq!(recount_traffic(&p, &good), 28);
    // On chip while each operator runs: w+x+a = 22, a+b = 20, w+a+b+c = 38; top address 38.
    assert_eq!((r.peak_resident_bytes, r.arena_bytes), (38, 38));
    let mut segs: Vec<(usize, usize, usize, u64)> = r
        .segments
        .iter()
        .map(|s| (s.tensor, s.from, s.to, s.offset))
        .collect();
    segs.sort_unstable();
    assert_eq!(
        segs,
        vec![
            (0, 0, 0, 0),
            (0, 2, 2, 0),
            (1, 0, 0, 8),
            (1, 1, 2, 8),
            (2, 1, 2, 18),
            (3, 2, 2, 28),
            (4, 0, 0, 18)
        ]
    );
    // The tightest scratchpad it fits, and one byte less.
    assert!(check(&p, &good, 38).is_ok());
    let e = check(&p, &good, 37).expect_err("one byte short");
    assert!(e.contains("outside the 37-byte scratchpad"), "{e}");
    let reject = |what: &str, needle: &str, edit: &dyn Fn(&mut Plan)| {
        let mut plan = good.clone();
        edit(&mut plan);
        let e = check(&p, &plan, 40).expect_err(what);
        assert!(e.contains(needle), "{what}: got '{e}', expected '{needle}'");
    };
    reject("a step missing", "2 action lists for 3 operators", &|pl| {
        pl.steps.pop();
    });
    reject("an order too short", "the plan has 2 steps", &|pl| {
        pl.order.pop();
    });
    reject("an unknown operator", "step 2: no operator 7", &|pl| {
        pl.order[2] = 7
    });
    reject("an operator twice", "'op1' runs twice", &|pl| {
        pl.order[2] = 1
    });
    reject("an unknown tensor", "step 1: no tensor 9", &|pl| {
        pl.steps[1].drop.push(9)
    });
    // w has its off-chip copy from the start: writing it out again is traffic for nothing.
    reject("a weight spilled", "'w' is written off-chip again", &|pl| {
        pl.steps[1].drop.clear();
        pl.steps[1].spill.insert(0, 0);
    });
    // a was spilled once; its off-chip copy persists.
    reject("a second spill", "'a' is written off-chip again", &|pl| {
        pl.steps[2].spill.push(1);
        pl.steps[2].reload.push((1, 8));
    });
    reject(
        "a spill of what is not on chip",
        "spill of 'b', which is not on chip",
        &|pl| pl.steps[1].spill.push(2),
    );
    reject("a drop twice", "drop of 'w', which is not on chip", &|pl| {
        pl.steps[1].drop.push(0)
    });
    reject(
        "a drop without a copy",
        "'b' is dropped without an off-chip copy",
        &|pl| pl.steps[2].drop.push(2),
    );
    reject(
        "a reload of what was never written",
        "reload of 'c', which has no off-chip copy",
        &|pl| pl.steps[0].reload.push((3, 30)),
    );
    reject(
        "a reload while resident",
        "reload of 'a', which is still on chip",
        &|pl| pl.steps[2].reload.push((1, 30)),
    );
    reject(
        "an output of another operator",
        "allocation of 'b', which 'op0' does not produce",
        &|pl| pl.steps[0].alloc.push((2, 20)),
    );
    reject("an output placed twice", "'b' is produced twice", &|pl| {
        pl.steps[1].alloc.push((2, 30))
    });
    reject(
        "an input not loaded",
        "input 'w' of 'op2' is not on chip",
        &|pl| pl.steps[2].reload.clear(),
    );
    reject("two tensors on one byte", "overlaps", &|pl| {
        pl.steps[2].alloc[0].1 = 27
    });
    // Touching blocks do not overlap: c right after b is the plan itself (b ends at 28).
    let mut moved = good.clone();
    moved.steps[2].alloc[0].1 = 30;
    let r = check(&p, &moved, 40).expect("a gap is fine");
    assert_eq!((r.peak_resident_bytes, r.arena_bytes), (38, 40));
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

/// One row of docs/schedule.md's table (KiB): the cases where traffic is not zero. `budget` is
/// rounded to whole KiB as printed there; traffic figures are exact.
struct Expected {
    model: &'static str,
    weights: bool,
    label: &'static str,
    budget: f64,
    model_order: f64,
    min_peak: f64,
    ours: f64,
    any_order_lb: f64,
}

const fn row(
    model: &'static str,
    weights: bool,
    label: &'static str,
    budget: f64,
    [model_order, min_peak, ours, any_order_lb]: [f64; 4],
) -> Expected {
    Expected {
        model,
        weights,
        label,
        budget,
        model_order,
        min_peak,
        ours,
        any_order_lb,
    }
}

/// docs/schedule.md's table ("Where traffic is not zero"): model
/// order + Belady, minimum-peak order + Belady, ours, and the bound that holds for every
/// order. Every case not listed has zero traffic for every method. Where `ours` equals
/// `any_order_lb` the plan is optimal over all orders.
const DOCUMENTED_TABLE: &[Expected] = &[
    row(
        "light_densenet121",
        false,
        "M_R",
        6273.0,
        [10192.0, 10192.0, 10192.0, 10192.0],
    ),
    row(
        "light_densenet121",
        true,
        "M_R",
        6276.0,
        [10192.0, 10192.0, 10192.0, 10192.0],
    ),
    row(
        "light_densenet121",
        false,
        "M_H",
        7253.0,
        [10192.0, 10192.0, 5488.0, 5488.0],
    ),
    row(
        "light_densenet121",
        true,
        "M_H",
        7254.0,
        [10192.0, 10192.0, 5488.0, 5488.0],
    ),
    row(
        "light_densenet121",
        false,
        "M_P",
        8233.0,
        [5488.0, 5488.0, 0.0, 0.0],
    ),
    row(
        "light_densenet121",
        true,
        "M_P",
        8233.0,
        [5488.0, 5488.0, 0.0, 0.0],
    ),
    row(
        "light_resnet50",
        true,
        "M_R",
        9706.0,
        [3920.0, 2352.0, 2352.0, 1568.0],
    ),
    row(
        "light_resnet50",
        true,
        "M_H",
        9902.0,
        [1568.0, 784.0, 784.0, 392.0],
    ),
    row(
        "light_resnet50",
        true,
        "M_P",
        10098.0,
        [1568.0, 784.0, 0.0, 0.0],
    ),
    row(
        "light_shufflenet",
        false,
        "M_R",
        2744.0,
        [588.0, 147.0, 147.0, 147.0],
    ),
    row(
        "light_shufflenet",
        true,
        "M_R",
        2746.0,
        [588.0, 147.0, 147.0, 147.0],
    ),
    row(
        "light_shufflenet",
        false,
        "M_H",
        2781.0,
        [588.0, 147.0, 147.0, 73.5],
    ),
    row(
        "light_shufflenet",
        true,
        "M_H",
        2783.0,
        [588.0, 147.0, 147.0, 73.5],
    ),
    row(
        "light_shufflenet",
        false,
        "M_P",
        2818.0,
        [588.0, 0.0, 0.0, 0.0],
    ),
    row(
        "light_shufflenet",
        true,
        "M_P",
        2819.0,
        [588.0, 0.0, 0.0, 0.0],
    ),
    row(
        "light_inception_v1",
        true,
        "M_R",
        8000.0,
        [8.0, 8.0, 8.0, 8.0],
    ),
    row(
        "light_inception_v1",
        true,
        "M_H",
        8002.0,
        [8.0, 8.0, 8.0, 4.0],
    ),
    row(
        "ppocr_det",
        true,
        "M_R",
        38400.0,
        [25600.0, 25600.0, 25600.0, 25600.0],
    ),
    row(
        "ppocr_det",
        true,
        "M_H",
        38400.0,
        [25600.0, 25600.0, 25600.0, 25600.0],
    ),
];

/// Traffic of `plan` recounted here, sharing nothing with `checker::check`: every spilled
/// byte plus every reloaded byte, less the first load of each graph input or weight (its
/// off-chip copy exists before the run, so that load is compulsory).
fn recount_traffic(p: &Problem, plan: &Plan) -> u64 {
    let mut loaded = vec![false; p.tensors.len()];
    let mut bytes = 0;
    for step in &plan.steps {
        bytes += step.spill.iter().map(|&a| p.tensors[a].size).sum::<u64>();
        for &(a, _) in &step.reload {
            let first_load_of_host_copy = p.tensors[a].kind != TensorKind::Activation && !loaded[a];
            loaded[a] = true;
            if !first_load_of_host_copy {
                bytes += p.tensors[a].size;
            }
        }
    }
    bytes
}

/// What one case measured, in bytes.
struct Measured {
    model: &'static str,
    weights: bool,
    label: &'static str,
    budget: u64,
    model_order: u64,
    min_peak: u64,
    ours: u64,
    any_order_lb: Option<u64>,
}

fn run_case(c: &Case, weights: bool, rows: &mut Vec<String>, measured: &mut Vec<Measured>) {
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
        let plan = out.ours.plan.as_ref().expect("plan");
        assert_eq!(
            recount_traffic(&p, plan),
            ours.traffic_bytes,
            "{} {label}: the traffic recounted from the plan differs from the checker's",
            c.name
        );
        let mut sorted = plan.order.clone();
        sorted.sort_unstable();
        assert!(
            sorted.iter().copied().eq(0..p.ops.len()),
            "{} {label}: the order does not run every operator once",
            c.name
        );
        let baseline = |i: usize| -> u64 {
            let m = &out.baselines[i];
            let plan = m.plan.as_ref().expect("baseline plan");
            let t = recount_traffic(&p, plan);
            assert_eq!(m.traffic(), Some(t), "{} {label}: {}", c.name, m.name);
            t
        };
        assert_eq!(out.baselines.len(), 2, "model order and minimum-peak order");
        let (model_order, min_peak) = (baseline(0), baseline(1));
        assert!(
            ours.traffic_bytes <= model_order.min(min_peak),
            "{} {label}: ours {} > best baseline {}",
            c.name,
            ours.traffic_bytes,
            model_order.min(min_peak)
        );
        if let Some(lb) = out.traffic_lower_bound {
            assert!(
                ours.traffic_bytes >= lb,
                "{} {label}: below the lower bound",
                c.name
            );
        }
        if let Some(lb) = out.free_order_lower_bound {
            assert!(
                ours.traffic_bytes >= lb,
                "{} {label}: below the any-order lower bound",
                c.name
            );
        }
        assert!(secs < 120.0, "{} {label}: {secs:.1} s", c.name);
        measured.push(Measured {
            model: c.name,
            weights,
            label,
            budget,
            model_order,
            min_peak,
            ours: ours.traffic_bytes,
            any_order_lb: out.free_order_lower_bound,
        });
        rows.push(format!(
            "{:<20} {:<3} {:>4} {:>9.1} {:>9.1} {:>12} {:>12} {:>10} {:>9} {:>9} {:>9} {:>13} {:>16} {:>6.1}s",
            c.name,
            if weights { "w" } else { "a" },
            label,
            budget as f64 / 1024.0,
            m_p as f64 / 1024.0,
            fmt_kib(Some(model_order)),
            fmt_kib(Some(min_peak)),
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

/// Every measured case against docs/schedule.md: the listed rows exactly (budgets to the KiB as
/// printed, traffic to the byte), every other case zero traffic for every method, zero
/// traffic at M_P for ours on every model, and ours at the any-order bound wherever the
/// table says so (which is everywhere traffic is zero).
fn check_against_readme(measured: &[Measured]) -> Vec<String> {
    let kib = |b: u64| b as f64 / 1024.0;
    let mut failures = Vec::new();
    for m in measured {
        let set = if m.weights { "w" } else { "a" };
        let case = format!("{} {set} {}", m.model, m.label);
        if m.label == "M_P" && m.ours != 0 {
            failures.push(format!("{case}: ours {} KiB at M_P, not 0", kib(m.ours)));
        }
        let want = DOCUMENTED_TABLE
            .iter()
            .find(|e| e.model == m.model && e.weights == m.weights && e.label == m.label);
        let (budget, want) = match want {
            Some(e) => (
                Some(e.budget),
                [e.model_order, e.min_peak, e.ours, e.any_order_lb],
            ),
            None => (None, [0.0; 4]),
        };
        if let Some(b) = budget.filter(|b| (kib(m.budget) - b).abs() > 0.5) {
            failures.push(format!(
                "{case}: budget {:.1} KiB, docs/schedule.md says {b}",
                kib(m.budget)
            ));
        }
        let got = [
            Some(m.model_order),
            Some(m.min_peak),
            Some(m.ours),
            m.any_order_lb,
        ];
        for ((what, g), w) in ["model+B", "min-peak+B", "ours", "any-order LB"]
            .iter()
            .zip(got)
            .zip(want)
        {
            if g.map(kib) != Some(w) {
                failures.push(format!(
                    "{case}: {what} {} KiB, docs/schedule.md says {w}",
                    g.map(|g| format!("{}", kib(g)))
                        .unwrap_or_else(|| "none".into())
                ));
            }
        }
    }
    failures
}

fn table(models: &[&str], weights: bool) {
    let mut rows = Vec::new();
    let mut measured = Vec::new();
    let start = Instant::now();
    for c in cases().iter().filter(|c| models.contains(&c.name)) {
        run_case(c, weights, &mut rows, &mut measured);
    }
    assert_eq!(measured.len(), 3 * models.len(), "a model is missing");
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
    let zero_at_mp = measured
        .iter()
        .filter(|m| m.label == "M_P" && m.ours == 0)
        .count();
    let at_bound = measured
        .iter()
        .filter(|m| m.any_order_lb == Some(m.ours))
        .count();
    println!(
        "zero traffic at M_P for {zero_at_mp} of {} models; ours at the any-order bound in {at_bound} of {} cases; ILP limit {TEST_LIMIT_S} s per case; {:.1} s total",
        models.len(),
        measured.len(),
        start.elapsed().as_secs_f64()
    );
    let failures = check_against_readme(&measured);
    assert!(
        failures.is_empty(),
        "docs/schedule.md's scheduling table no longer holds:\n{}",
        failures.join("\n")
    );
}

/// docs/schedule.md's table lists only models these tests run.
#[test]
fn readme_table_rows_name_tested_cases() {
    let tested = [
        "light_resnet50",
        "light_squeezenet",
        "light_inception_v1",
        "light_shufflenet",
        "light_densenet121",
        "light_inception_v2",
        "ppocr_det",
        "ppocr_rec",
    ];
    for e in DOCUMENTED_TABLE {
        assert!(tested.contains(&e.model), "{}", e.model);
        assert!(["M_R", "M_H", "M_P"].contains(&e.label));
        assert!(e.ours >= e.any_order_lb && e.ours <= e.min_peak.min(e.model_order));
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
