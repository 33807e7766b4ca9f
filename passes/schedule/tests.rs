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
