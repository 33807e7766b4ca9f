//! Divide and conquer for graphs too large to solve whole: cut the fixed order where few
//! bytes are live across the cut, then solve the windows one after another, each from the
//! chip state (who is on chip at which address, who has an off-chip copy) the previous one
//! left. Each window is warm-started with the greedy arena + Belady plan from that state,
//! so a window never does worse than the baseline would from the same state.

use super::baseline::{simulate, ChipState};
use super::ilp::{solve_window, IlpOutcome, IlpStatus, Window};
use super::plan::Plan;
use super::problem::{Lifetimes, OpId, Problem};

/// Size of a window's integer program, counted as the number of tensor-pairs that may
/// share a step (one ordering binary each) plus four variables per tensor-step.
pub fn window_cost(p: &Problem, lt: &Lifetimes, t0: usize, t1: usize) -> usize {
    let mut active = vec![0usize; t1 - t0];
    for a in 0..p.tensors.len() {
        if lt.uses[a].is_empty() || lt.end[a] < t0 || lt.start[a] >= t1 {
            continue;
        }
        for t in lt.start[a].max(t0)..=lt.end[a].min(t1 - 1) {
            active[t - t0] += 1;
        }
    }
    active
        .iter()
        .map(|&k| k * (k.saturating_sub(1)) / 2 + 4 * k)
        .sum()
}

/// Cut points `0 = c0 < c1 < ... < ck = n`: each window's cost stays under `max_cost`
/// where possible, and each cut sits where the fewest bytes cross it.
pub fn cut_points(p: &Problem, lt: &Lifetimes, max_cost: usize) -> Vec<usize> {
    let n = lt.pos.len();
    // Bytes crossing the boundary before step t.
    let mut crossing = vec![0u64; n + 1];
    for (a, ten) in p.tensors.iter().enumerate() {
        if lt.uses[a].is_empty() {
            continue;
        }
        for c in crossing
            .iter_mut()
            .take(lt.end[a] + 1)
            .skip(lt.start[a] + 1)
        {
            *c += ten.size;
        }
    }
    let mut cuts = vec![0];
    let mut s = 0;
    while s < n {
        // The longest window from s within the cost limit (at least one step).
        let mut e = s + 1;
        while e < n && window_cost(p, lt, s, e + 1) <= max_cost {
            e += 1;
        }
        if e >= n {
            cuts.push(n);
            break;
        }
        // Best cut in the second half of that window.
        let lo = s + 1 + (e - s) / 2;
        let cut = (lo..=e).min_by_key(|&c| (crossing[c], n - c)).unwrap_or(e);
        cuts.push(cut);
        s = cut;
    }
    cuts
}

/// Result of solving all windows of one order.
pub struct WindowsOutcome {
    pub plan: Plan,
    pub windows: usize,
    /// Windows whose ILP gave no usable solution (the greedy plan was kept there).
    pub fallback_windows: usize,
    pub status: IlpStatus,
    pub objective: u64,
    /// Sum over windows of CBC's bounds — a bound for this decomposition only.
    pub seconds: f64,
    pub variables: usize,
}

/// Solves `order` window by window within `time_limit_s` seconds in all.
pub fn solve_windows(
    p: &Problem,
    order: &[OpId],
    budget: u64,
    max_cost: usize,
    time_limit_s: f64,
) -> Result<WindowsOutcome, String> {
    let lt = Lifetimes::new(p, order);
    let cuts = cut_points(p, &lt, max_cost);
    let k = cuts.len() - 1;
    let mut plan = Plan::empty(order.to_vec());
    let mut st = ChipState::initial(p);
    let mut out = WindowsOutcome {
        plan: Plan::default(),
        windows: k,
        fallback_windows: 0,
        status: IlpStatus::Optimal,
        objective: 0,
        seconds: 0.0,
        variables: 0,
    };
    let start = std::time::Instant::now();
    for (i, w) in cuts.windows(2).enumerate() {
        let (t0, t1) = (w[0], w[1]);
        let mut greedy = plan.clone();
        let mut gst = st.clone();
        simulate(p, &lt, order, t0, t1, &mut gst, budget, &mut greedy)?;
        let left = (time_limit_s - start.elapsed().as_secs_f64()).max(0.0);
        let per = (left / (k - i) as f64).max(1.0);
        let win = Window {
            p,
            lt: &lt,
            order,
            t0,
            t1,
            init: &st,
            budget,
            time_limit_s: per,
            warm: Some(&greedy),
        };
        let o: IlpOutcome = solve_window(&win);
        out.variables += o.variables;
        let greedy_cost = window_traffic(p, &lt, &greedy, t0, t1);
        match (o.end, o.objective) {
            (Some(end), Some(obj)) if obj <= greedy_cost => {
                plan.steps[t0..t1].clone_from_slice(&o.steps);
                st = end;
                out.objective += obj;
                if o.status != IlpStatus::Optimal {
                    out.status = IlpStatus::TimeLimit;
                }
            }
            _ => {
                plan = greedy;
                st = gst;
                out.objective += greedy_cost;
                out.fallback_windows += 1;
                out.status = IlpStatus::TimeLimit;
            }
        }
    }
    out.seconds = start.elapsed().as_secs_f64();
    out.plan = plan;
    Ok(out)
}

/// Non-compulsory traffic of steps `t0..t1` of `plan`, given which tensors had a copy
/// (or were already loaded once) before `t0`.
fn window_traffic(p: &Problem, lt: &Lifetimes, plan: &Plan, t0: usize, t1: usize) -> u64 {
    let mut total = 0;
    for (t, s) in plan.steps.iter().enumerate().take(t1).skip(t0) {
        for &a in &s.spill {
            total += p.tensors[a].size;
        }
        for &(a, _) in &s.reload {
            // The first load of a graph input or weight, at its first use, is compulsory.
            if !(p.tensors[a].host_backed() && lt.start[a] == t) {
                total += p.tensors[a].size;
            }
        }
    }
    total
}
