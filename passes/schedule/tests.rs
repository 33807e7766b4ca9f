//! Unit tests on hand-made problems with known answers.

use super::baseline::arena_belady;
use super::bounds::{m_r, peak, traffic_lower_bound};
use super::checker::check;
use super::ilp::{solve_window, IlpStatus, Window};
use super::order::min_peak_order;
use super::problem::{Lifetimes, Problem, TensorKind};
use super::{schedule, Mode, ScheduleOptions};

/// The four-tensor toy of the reference (Scale-Sim-SPM `toy_spill_model.json`): a 10-byte
/// skip tensor produced first and read last, beside a 100 → 100 byte chain.
pub fn toy() -> Problem {
    let mut p = Problem::new(1);
    let t10 = p.add_tensor("t10", 10, TensorKind::Activation);
    let t11 = p.add_tensor("t11", 100, TensorKind::Activation);
    let t12 = p.add_tensor("t12", 100, TensorKind::Activation);
    let t13 = p.add_tensor("t13", 10, TensorKind::Activation);
    p.add_op("op0", &[], &[t10]);
    p.add_op("op1", &[], &[t11]);
    p.add_op("op2", &[t11], &[t12]);
    p.add_op("op3", &[t10, t12], &[t13]);
    p.tensors[t13].is_output = true;
    p
}

#[test]
fn toy_bounds() {
    let p = toy();
    assert_eq!(m_r(&p), (200, Some(2)));
    assert_eq!(peak(&p, &p.model_order()), 210);
    let mp = min_peak_order(&p, 1000);
    assert!(mp.exact);
    assert_eq!(mp.peak, 200);
    assert_eq!(peak(&p, &mp.order), 200);
    // At 200 bytes the skip tensor must go off chip at step 2: spill + reload = 20.
    assert_eq!(traffic_lower_bound(&p, &p.model_order(), 200), Some(20));
    assert_eq!(traffic_lower_bound(&p, &p.model_order(), 210), Some(0));
    assert_eq!(traffic_lower_bound(&p, &p.model_order(), 199), None);
}

#[test]
fn toy_fixed_order_ilp_is_20_bytes() {
    let p = toy();
    let order = p.model_order();
    let lt = Lifetimes::new(&p, &order);
    let init = super::baseline::ChipState::initial(&p);
    let o = solve_window(&Window {
        p: &p,
        lt: &lt,
        order: &order,
        t0: 0,
        t1: 4,
        init: &init,
        budget: 200,
        time_limit_s: 10.0,
        warm: None,
    });
    assert_eq!(o.status, IlpStatus::Optimal);
    assert_eq!(o.objective, Some(20));
    let plan = super::plan::Plan {
        order,
        steps: o.steps,
    };
    let rep = check(&p, &plan, 200).expect("the ILP plan passes the checker");
    assert_eq!(rep.traffic_bytes, 20);
    assert_eq!(rep.spill_bytes, 10);
    assert_eq!(rep.reload_bytes, 10);
    // Belady reproduces it on this toy.
    let base = arena_belady(&p, &p.model_order(), 200).expect("baseline");
    assert_eq!(
        check(&p, &base, 200)
            .expect("baseline passes")
            .traffic_bytes,
        20
    );
}

#[test]
fn toy_modes() {
    let p = toy();
    let fixed = ScheduleOptions {
        mode: Mode::Fixed,
        time_limit_s: 10.0,
        ..ScheduleOptions::default()
    };
    let out = schedule(&p, 200, &fixed).expect("schedules");
    assert_eq!(out.ours.traffic(), Some(20));
    assert_eq!(out.solver.status, "optimal");
    assert_eq!(out.m_p, 200);
    // Free order: run the chain first, then the skip tensor — no traffic at all.
    let free = ScheduleOptions {
        mode: Mode::Auto,
        ..fixed.clone()
    };
    let out = schedule(&p, 200, &free).expect("schedules");
    assert_eq!(out.ours.traffic(), Some(0));
    assert_eq!(out.ours.order, vec![1, 2, 0, 3]);
    let err = schedule(&p, 150, &free).expect_err("below M_R");
    assert!(err.to_string().contains("M_R = 200"), "{err}");
    assert!(err.to_string().contains("op2"), "{err}");
}

/// The reference's `toy_branching_model.json` (Scale-Sim-SPM): two inception-style blocks
/// of int8 tensors (16-64 KiB) with a skip tensor per block. M_R 144 KiB, model-order peak
/// 208 KiB, true M_P 144 KiB.
pub fn toy_branching() -> Problem {
    let mut p = Problem::new(1);
    let k = 1024;
    let sizes = [
        64, 32, 32, 32, 16, 16, 16, 16, 16, 64, 32, 32, 32, 32, 16, 16, 16, 16, 16, 16, 16, 64,
    ];
    let t: Vec<usize> = sizes
        .iter()
        .enumerate()
        .map(|(i, &s)| p.add_tensor(&format!("t{}", 100 + i), s * k, TensorKind::Activation))
        .collect();
    let layers: [(&[usize], usize); 22] = [
        (&[], 0),
        (&[0], 1),
        (&[0], 2),
        (&[0], 3),
        (&[1], 4),
        (&[2], 5),
        (&[3], 6),
        (&[4, 5], 7),
        (&[7, 6], 8),
        (&[8, 0], 9),
        (&[9], 10),
        (&[9], 11),
        (&[9], 12),
        (&[9], 13),
        (&[10], 14),
        (&[11], 15),
        (&[12], 16),
        (&[13], 17),
        (&[14, 15], 18),
        (&[16, 17], 19),
        (&[18, 19], 20),
        (&[20, 9], 21),
    ];
    for (i, (ins, out)) in layers.iter().enumerate() {
        let ins: Vec<usize> = ins.iter().map(|&j| t[j]).collect();
        p.add_op(&format!("layer{i}"), &ins, &[t[*out]]);
    }
    p.tensors[t[21]].is_output = true;
    p
}

#[test]
fn free_order_ilp_finds_the_toy_order() {
    let p = toy();
    let f = super::free_ilp::solve_free(&p, 200, 20.0, None);
    assert_eq!(f.status, IlpStatus::Optimal);
    assert_eq!(f.objective, Some(0));
    let plan = f.plan.expect("a plan");
    assert_eq!(plan.order, vec![1, 2, 0, 3]);
    assert_eq!(peak(&p, &plan.order), 200);
    let rep = check(&p, &plan, 200).expect("passes the checker");
    assert_eq!(rep.traffic_bytes, 0);
    // Forced free mode runs the program inside the pass and reports it optimal.
    let free = ScheduleOptions {
        mode: Mode::Free,
        time_limit_s: 10.0,
        ..ScheduleOptions::default()
    };
    let out = schedule(&p, 200, &free).expect("schedules");
    assert_eq!(out.ours.traffic(), Some(0));
    assert_eq!(out.solver.status, "optimal");
    assert!(
        out.candidates.iter().any(|m| m.name == "cosma_free"),
        "{:?}",
        out.rejected
    );
}

#[test]
fn toy_branching_bounds_and_free_order() {
    let p = toy_branching();
    let k = 1024;
    assert_eq!(m_r(&p).0, 144 * k);
    assert_eq!(peak(&p, &p.model_order()), 208 * k);
    let mp = min_peak_order(&p, 100_000);
    assert!(mp.exact);
    assert_eq!(mp.peak, 144 * k);
    // At M_R = M_P the free-order program finds an order with no traffic.
    let free = ScheduleOptions {
        mode: Mode::Free,
        time_limit_s: 20.0,
        ..ScheduleOptions::default()
    };
    let out = schedule(&p, 144 * k, &free).expect("schedules");
    assert_eq!(out.ours.traffic(), Some(0));
    let f = out
        .candidates
        .iter()
        .find(|m| m.name == "cosma_free")
        .unwrap_or_else(|| panic!("the free-order program ran: {:?}", out.rejected));
    assert!(f.check.is_ok(), "{:?}", f.check);
    eprintln!(
        "toy_branching at 144 KiB: free-order program {:?} B ({}), {:.1} s in all",
        f.traffic(),
        out.solver.status,
        out.solver.seconds
    );
    // The model order needs traffic at this budget; the free order does not.
    let fixed = ScheduleOptions {
        mode: Mode::Fixed,
        time_limit_s: 10.0,
        ..ScheduleOptions::default()
    };
    let out = schedule(&p, 144 * k, &fixed).expect("schedules");
    assert!(out.ours.traffic().is_some_and(|t| t > 0));
}

/// Random DAG of `n` operators, each reading one or two earlier tensors.
fn random_dag(seed: u64, n: usize) -> Problem {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut p = Problem::new(1);
    let mut outs = Vec::new();
    for i in 0..n {
        let size = rng.random_range(1..6u64) * 10;
        let t = p.add_tensor(&format!("t{i}"), size, TensorKind::Activation);
        let mut ins = Vec::new();
        if i > 0 {
            ins.push(outs[rng.random_range(0..i)]);
            if i > 1 && rng.random_bool(0.5) {
                let j = outs[rng.random_range(0..i)];
                if !ins.contains(&j) {
                    ins.push(j);
                }
            }
        }
        p.add_op(&format!("op{i}"), &ins, &[t]);
        outs.push(t);
    }
    p
}

/// On small random DAGs at M_R and between M_R and the model-order peak, the free-order
/// program's plan passes the checker and never costs more than the fixed-order optimum.
#[test]
fn free_order_never_above_fixed_order_on_random_dags() {
    let mut better = 0;
    for seed in 0..8 {
        let p = random_dag(seed, 7);
        let (mr, _) = m_r(&p);
        let model_peak = peak(&p, &p.model_order());
        for budget in [mr, (mr + model_peak) / 2] {
            let fixed = ScheduleOptions {
                mode: Mode::Fixed,
                time_limit_s: 10.0,
                ..ScheduleOptions::default()
            };
            let f_out = schedule(&p, budget, &fixed).expect("fixed schedules");
            let fixed_traffic = f_out.ours.traffic().expect("fixed plan checked");
            let free = super::free_ilp::solve_free(&p, budget, 20.0, None);
            let plan = free.plan.expect("a free-order plan");
            let rep = check(&p, &plan, budget).expect("free-order plan passes the checker");
            assert_eq!(Some(rep.traffic_bytes), free.objective, "seed {seed}");
            assert!(
                rep.traffic_bytes <= fixed_traffic,
                "seed {seed} budget {budget}: free {} > fixed {fixed_traffic}",
                rep.traffic_bytes
            );
            better += (rep.traffic_bytes < fixed_traffic) as usize;
        }
    }
    eprintln!("free order strictly better in {better} of 16 cases");
    // The README's figure ("strictly below it in 14").
    assert_eq!(
        better, 14,
        "free order strictly better in {better} of 16, README says 14"
    );
}
