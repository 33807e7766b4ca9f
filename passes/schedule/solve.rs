//! Puts the pieces together: bounds, baselines, the ILP (whole or in windows) for the
//! candidate orders, the checker on every plan, and the choice of the plan to use.

use super::baseline::arena_belady;
use super::bounds::{
    forced_bystander_lower_bound, free_order_traffic_lower_bound, m_r, peak, traffic_lower_bound,
};
use super::checker::{check, CheckReport};
use super::free_ilp::solve_free;
use super::ilp::{solve_window, IlpStatus, Window};
use super::order::{min_peak_order, MinPeak};
use super::plan::Plan;
use super::problem::{Lifetimes, OpId, Problem};
use super::residency::{residency_plan, search_order};
pub use super::section::SolverInfo;
use super::section::{CheckerInfo, TrafficInfo, WholeMethod, WholeSection};
use super::windows::{solve_windows, window_cost};
use std::str::FromStr;
use std::time::Instant;

/// Which COSMA variant to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Free order: the model order and the minimum-peak order solved with the fixed-order
    /// programs (whole when small enough, windows otherwise), a local search over orders,
    /// and the free-order program (order, offsets and spills together) on graphs of at
    /// most [`ScheduleOptions::max_free_ops`] operators.
    Auto,
    /// The model's own order, offsets and spills chosen by the ILP.
    Fixed,
    /// The minimum-peak order, offsets and spills chosen by the ILP.
    MinPeak,
    /// Like `Auto`, but always solves whole (no windows) and runs the free-order program
    /// on graphs of up to 8 × [`ScheduleOptions::max_free_ops`] operators.
    Free,
    /// Like `Auto`, but always divide and conquer.
    Windows,
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "auto" => Ok(Mode::Auto),
            "fixed" => Ok(Mode::Fixed),
            "min-peak" | "min_peak" => Ok(Mode::MinPeak),
            "free" => Ok(Mode::Free),
            "windows" => Ok(Mode::Windows),
            other => Err(format!(
                "unknown schedule mode '{other}' (use auto, fixed, min-peak, free or windows)"
            )),
        }
    }
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Fixed => "fixed",
            Mode::MinPeak => "min-peak",
            Mode::Free => "free",
            Mode::Windows => "windows",
        }
    }
}

#[derive(Clone, Debug)]
pub struct ScheduleOptions {
    pub mode: Mode,
    /// Wall-clock seconds for all ILP solves together.
    pub time_limit_s: f64,
    /// Largest ILP (see [`window_cost`]) solved whole; larger orders go to windows.
    pub max_window_cost: usize,
    /// States kept per level by the minimum-peak search (exact below this); `0` picks
    /// it from the graph size.
    pub max_order_states: usize,
    /// Share of each order's time given to the two-phase residency program (the rest goes
    /// to the full program, warm-started from the better plan).
    pub residency_share: f64,
    /// Share of the time limit kept for the free-order search (`auto`, `free`,
    /// `windows`), which moves operators of the minimum-peak order where the live bytes
    /// exceed the budget, scoring each order with the residency program.
    pub order_search_share: f64,
    /// Largest graph (operators) on which `auto` runs the free-order program.
    pub max_free_ops: usize,
    /// Share of the time limit given to the free-order program when it runs.
    pub free_share: f64,
    /// Whether operators may be tiled (`passes/tiling`) when whole tensors do not fit.
    pub tiling: super::tiling_mode::TilingMode,
}

impl ScheduleOptions {
    /// The state cap for the minimum-peak search on `p`.
    pub fn order_states_for(&self, p: &Problem) -> usize {
        if self.max_order_states > 0 {
            self.max_order_states
        } else {
            (150_000 / p.ops.len().max(1)).clamp(32, 4000)
        }
    }
}

impl Default for ScheduleOptions {
    fn default() -> Self {
        ScheduleOptions {
            mode: Mode::Auto,
            time_limit_s: 60.0,
            max_window_cost: 6000,
            max_order_states: 0,
            residency_share: 0.5,
            order_search_share: 0.3,
            max_free_ops: 32,
            free_share: 0.5,
            tiling: Default::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    #[error("the scratchpad ({budget} bytes) is smaller than M_R = {m_r} bytes, which operator '{op}' ({op_type}) needs at once for its inputs and outputs; give at least {m_r} bytes")]
    BelowMr {
        budget: u64,
        m_r: u64,
        op: String,
        op_type: String,
    },
    #[error("{0}")]
    Other(String),
}

/// One method's plan and its checked traffic.
#[derive(Clone, Debug)]
pub struct Method {
    pub name: String,
    pub order: Vec<OpId>,
    pub plan: Option<Plan>,
    pub check: Result<CheckReport, String>,
}

impl Method {
    pub fn traffic(&self) -> Option<u64> {
        self.check.as_ref().ok().map(|c| c.traffic_bytes)
    }
}

#[derive(Clone, Debug)]
pub struct Outcome {
    pub budget: u64,
    pub m_r: u64,
    pub m_r_op: Option<String>,
    /// Peak live bytes of the minimum-peak order.
    pub m_p: u64,
    pub m_p_exact: bool,
    pub model_order_peak: u64,
    pub baselines: Vec<Method>,
    /// Every ILP plan tried (one per candidate order).
    pub candidates: Vec<Method>,
    pub ours: Method,
    /// Where the chosen plan came from (`ilp`, `windows`, or a baseline fallback).
    pub source: String,
    pub solver: SolverInfo,
    /// Live-bytes bound of the chosen order.
    pub live_bound: u64,
    pub traffic_lower_bound: Option<u64>,
    /// Lower bound on the traffic of any order (from M_P; None unless M_P is exact).
    pub free_order_lower_bound: Option<u64>,
    /// Plans the checker rejected, with the reason (never used).
    pub rejected: Vec<String>,
    pub plans_checked: usize,
}

impl Outcome {
    pub fn best_baseline(&self) -> Option<u64> {
        self.baselines.iter().filter_map(|m| m.traffic()).min()
    }

    /// 1 − ours / best baseline (None when the best baseline has no traffic).
    pub fn reduction_vs_best_baseline(&self) -> Option<f64> {
        let b = self.best_baseline()?;
        let o = self.ours.traffic()?;
        (b > 0).then(|| 1.0 - o as f64 / b as f64)
    }

    /// The report section of this outcome; `plan` is the chosen plan's JSON, and `mode`,
    /// `weights_in_scratchpad` and `traffic_seconds` what the pass was run with.
    pub fn section(
        &self,
        p: &Problem,
        plan: serde_json::Value,
        mode: &str,
        weights_in_scratchpad: bool,
        traffic_seconds: Option<f64>,
    ) -> WholeSection {
        let method = |m: &Method| WholeMethod {
            name: m.name.clone(),
            traffic_bytes: m.traffic(),
            check: match &m.check {
                Ok(_) => "passed".into(),
                Err(e) => format!("failed: {e}"),
            },
            peak_resident_bytes: m.check.as_ref().ok().map(|c| c.peak_resident_bytes),
        };
        WholeSection {
            scratchpad_bytes: self.budget,
            alignment: p.alignment,
            tensors: p.tensors.len(),
            operators: p.ops.len(),
            m_r: self.m_r,
            m_r_operator: self.m_r_op.clone(),
            m_p: self.m_p,
            m_p_exact: self.m_p_exact,
            model_order_peak: self.model_order_peak,
            live_bytes_bound: self.live_bound,
            traffic_lower_bound: self.traffic_lower_bound,
            free_order_traffic_lower_bound: self.free_order_lower_bound,
            traffic_bytes: TrafficInfo {
                ours: self.ours.traffic(),
                baselines: self
                    .baselines
                    .iter()
                    .map(|m| (m.name.clone(), m.traffic()))
                    .collect(),
            },
            ours: method(&self.ours),
            source: self.source.clone(),
            baselines: self.baselines.iter().map(method).collect(),
            candidates: self.candidates.iter().map(method).collect(),
            best_baseline_traffic_bytes: self.best_baseline(),
            reduction_vs_best_baseline: self.reduction_vs_best_baseline(),
            solver: self.solver.clone(),
            checker: CheckerInfo {
                passed: self.ours.check.is_ok(),
                plans_checked: self.plans_checked,
                rejected: self.rejected.clone(),
            },
            plan,
            mode: mode.into(),
            weights_in_scratchpad,
            traffic_seconds,
        }
    }
}

fn checked(p: &Problem, name: &str, order: &[OpId], plan: Plan, budget: u64) -> Method {
    let check = check(p, &plan, budget);
    Method {
        name: name.to_string(),
        order: order.to_vec(),
        plan: Some(plan),
        check,
    }
}

/// Schedules `p` for a scratchpad of `budget` bytes.
pub fn schedule(
    p: &Problem,
    budget: u64,
    opts: &ScheduleOptions,
) -> Result<Outcome, ScheduleError> {
    let mp = min_peak_order(p, opts.order_states_for(p));
    schedule_with(p, budget, opts, &mp)
}

/// [`schedule`] with a minimum-peak order computed beforehand (it does not depend on the
/// budget, so callers trying several budgets compute it once).
pub fn schedule_with(
    p: &Problem,
    budget: u64,
    opts: &ScheduleOptions,
    mp: &MinPeak,
) -> Result<Outcome, ScheduleError> {
    let started = Instant::now();
    let (mr, mr_op) = m_r(p);
    if budget < mr {
        let o = mr_op.map(|o| &p.ops[o]);
        return Err(ScheduleError::BelowMr {
            budget,
            m_r: mr,
            op: o.map(|o| o.name.clone()).unwrap_or_default(),
            op_type: o.map(|o| o.op_type.clone()).unwrap_or_default(),
        });
    }
    let starts = StartOrders::new(p, mp)?;
    let mut run = Run::new(p, budget, opts, started);
    let baselines = run.baselines(&starts.model, &starts.min_peak);
    let orders = candidate_orders(opts.mode, &starts.model, &starts.min_peak);
    // An eligible baseline with no traffic is optimal for every order: nothing to solve.
    let zero = orders
        .iter()
        .any(|&(_, _, b)| baselines[b].traffic() == Some(0));
    let search = !matches!(opts.mode, Mode::Fixed | Mode::MinPeak);
    let free = run.free_program_runs();
    // The free-order program gets its share at the end (it is warm-started by nothing
    // but competes with every other plan; its bound, when proven, holds for all orders).
    let free_limit = if free {
        opts.time_limit_s * opts.free_share
    } else {
        0.0
    };
    let orders_limit = if search {
        (opts.time_limit_s - free_limit) * (1.0 - opts.order_search_share)
    } else {
        opts.time_limit_s
    };
    run.solve_orders(&orders, &baselines, zero, orders_limit);
    // Free-order search, when no order's plan is known to be optimal over all orders.
    let free_lb = if zero {
        Some(0)
    } else {
        free_order_traffic_lower_bound(p, starts.m_p, starts.m_p_exact, budget).max(
            forced_bystander_lower_bound(p, budget, (0.05 * opts.time_limit_s).clamp(0.5, 2.0)),
        )
    };
    let best_so_far = run.best_so_far(&baselines);
    let left = opts.time_limit_s - free_limit - started.elapsed().as_secs_f64();
    if search && !zero && left > 0.5 && best_so_far.is_some_and(|b| Some(b) > free_lb) {
        run.search_order(&starts.min_peak, best_so_far, free_limit, left);
    }
    // Free-order program: order, offsets and spills in one ILP (small graphs).
    let mut free_lb = free_lb;
    let best_so_far = run.best_so_far(&baselines);
    if free && (opts.mode == Mode::Free || best_so_far.is_none_or(|b| Some(b) > free_lb)) {
        if let Some(obj) = run.free_order_program(&baselines) {
            // Proven over all orders: a lower bound for every plan.
            free_lb = free_lb.max(Some(obj));
        }
    }
    run.solver.seconds = started.elapsed().as_secs_f64();
    run.finish(baselines, starts, (mr, mr_op), free_lb)
}

/// The two orders every mode starts from: the model's own and the minimum-peak order (the
/// model order again when the search found no lower peak), with their peak live bytes.
struct StartOrders {
    model: Vec<OpId>,
    model_peak: u64,
    min_peak: Vec<OpId>,
    m_p: u64,
    m_p_exact: bool,
}

impl StartOrders {
    fn new(p: &Problem, mp: &MinPeak) -> Result<StartOrders, ScheduleError> {
        let model = p.model_order();
        let model_peak = peak(p, &model);
        let (min_peak, m_p, m_p_exact) = if mp.peak <= model_peak && mp.order.len() == p.ops.len() {
            (mp.order.clone(), mp.peak, mp.exact)
        } else {
            (model.clone(), model_peak, false)
        };
        p.check_order(&min_peak).map_err(ScheduleError::Other)?;
        Ok(StartOrders {
            model,
            model_peak,
            min_peak,
            m_p,
            m_p_exact,
        })
    }
}

/// The orders the fixed-order programs solve in `mode`, each with the index of its baseline
/// (0: model order, 1: minimum-peak order); one when both orders are the same.
fn candidate_orders<'o>(
    mode: Mode,
    model_order: &'o [OpId],
    mp_order: &'o [OpId],
) -> Vec<(&'static str, &'o [OpId], usize)> {
    let mut orders: Vec<(&str, &[OpId], usize)> = match mode {
        Mode::Fixed => vec![("model_order", model_order, 0)],
        Mode::MinPeak => vec![("min_peak_order", mp_order, 1)],
        _ => vec![
            ("model_order", model_order, 0),
            ("min_peak_order", mp_order, 1),
        ],
    };
    if orders.len() == 2 && model_order == mp_order {
        orders.truncate(1);
    }
    orders
}

/// What one scheduling run gathers as it goes: every checked plan with the status of the
/// program that made it, the plans the checker rejected and the solver statistics. The
/// steps of [`schedule_with`] each add to this one record, which then picks the plan.
struct Run<'a> {
    p: &'a Problem,
    budget: u64,
    opts: &'a ScheduleOptions,
    started: Instant,
    rejected: Vec<String>,
    plans_checked: usize,
    /// Program plans with their status and source (the `source` of the outcome).
    candidates: Vec<(Method, IlpStatus, &'static str)>,
    /// Statuses of the programs that count towards an optimal run.
    statuses: Vec<IlpStatus>,
    solver: SolverInfo,
    /// Residency-program lower bounds per order.
    res_bounds: Vec<(Vec<OpId>, u64)>,
}

impl<'a> Run<'a> {
    fn new(p: &'a Problem, budget: u64, opts: &'a ScheduleOptions, started: Instant) -> Self {
        Run {
            p,
            budget,
            opts,
            started,
            rejected: Vec::new(),
            plans_checked: 0,
            candidates: Vec::new(),
            statuses: Vec::new(),
            solver: SolverInfo {
                status: "optimal".into(),
                time_limit_s: opts.time_limit_s,
                ..SolverInfo::default()
            },
            res_bounds: Vec::new(),
        }
    }

    /// Checks a program's plan and compares its recounted traffic with the program's
    /// objective (a mismatch rejects it): every program plan goes through here.
    fn check_plan(&mut self, name: &str, order: &[OpId], plan: Plan, objective: u64) -> Method {
        let m = checked(self.p, name, order, plan, self.budget);
        self.plans_checked += 1;
        objective_matches(m, objective, &mut self.rejected)
    }

    /// The arena + Belady baselines on the model order and on the minimum-peak order: the
    /// plans to beat, the warm starts, and the fallback when no program plan passes.
    fn baselines(&mut self, model_order: &[OpId], mp_order: &[OpId]) -> Vec<Method> {
        let (p, budget) = (self.p, self.budget);
        let mut baselines = Vec::new();
        for (name, order) in [
            ("model_order+arena+belady", model_order),
            ("min_peak_order+arena+belady", mp_order),
        ] {
            let m = match arena_belady(p, order, budget) {
                Ok(plan) => checked(p, name, order, plan, budget),
                Err(e) => Method {
                    name: name.to_string(),
                    order: order.to_vec(),
                    plan: None,
                    check: Err(e),
                },
            };
            self.plans_checked += m.plan.is_some() as usize;
            if let Err(e) = &m.check {
                self.rejected.push(format!("{name}: {e}"));
            }
            baselines.push(m);
        }
        baselines
    }

    /// Whether the free-order program runs on this graph. Forced `free` still refuses
    /// graphs whose program would not even fit in memory (steps × tensors² ordering
    /// binaries), and says so among the rejections.
    fn free_program_runs(&mut self) -> bool {
        let (p, opts) = (self.p, self.opts);
        let free = match opts.mode {
            Mode::Free => p.ops.len() <= 8 * opts.max_free_ops,
            Mode::Auto => p.ops.len() <= opts.max_free_ops,
            _ => false,
        };
        if opts.mode == Mode::Free && !free {
            self.rejected.push(format!(
                "cosma_free: not run on {} operators (at most {} in free mode)",
                p.ops.len(),
                8 * opts.max_free_ops
            ));
        }
        free
    }

    /// The fixed-order programs on each candidate order, the time up to `orders_limit`
    /// shared evenly between the orders still to solve. An order whose baseline already
    /// meets the order's lower bound is optimal as it is.
    fn solve_orders(
        &mut self,
        orders: &[(&str, &[OpId], usize)],
        baselines: &[Method],
        zero: bool,
        orders_limit: f64,
    ) {
        let (p, budget) = (self.p, self.budget);
        let need: Vec<bool> = orders
            .iter()
            .map(|&(_, order, b)| {
                let base = baselines[b].traffic();
                let lb = traffic_lower_bound(p, order, budget);
                !zero && (base.is_none() || base != lb)
            })
            .collect();
        let mut left_to_solve = need.iter().filter(|&&x| x).count();
        for (k, &(oname, order, b)) in orders.iter().enumerate() {
            if !need[k] {
                // The baseline already meets the lower bound of this order: optimal.
                let mut m = baselines[b].clone();
                m.name = format!("cosma_fs({oname})");
                self.candidates
                    .push((m, IlpStatus::Optimal, "baseline meets the lower bound"));
                self.statuses.push(IlpStatus::Optimal);
                continue;
            }
            let remaining = (orders_limit - self.started.elapsed().as_secs_f64()).max(1.0);
            let limit = remaining / left_to_solve.max(1) as f64;
            left_to_solve = left_to_solve.saturating_sub(1);
            self.solve_order(oname, order, &baselines[b], limit);
        }
    }

    /// One candidate order within `limit` seconds: the two-phase residency program first
    /// (small, solved whole): its plan competes with the others and warm-starts the full
    /// program, its bound tightens the gap. Then the full program, whole or in windows,
    /// unless the residency optimum was placed without loss.
    fn solve_order(&mut self, oname: &str, order: &[OpId], base: &Method, limit: f64) {
        let (p, opts) = (self.p, self.opts);
        let lt = Lifetimes::new(p, order);
        let whole_cost = window_cost(p, &lt, 0, order.len());
        let use_windows = match opts.mode {
            Mode::Windows => true,
            Mode::Free => false,
            _ => whole_cost > opts.max_window_cost,
        };
        let name = format!("cosma_fs({oname})");
        let res = residency_plan(p, order, self.budget, limit * opts.residency_share);
        self.solver.variables += res.variables;
        let mut warm = base.plan.clone();
        if let (Some(plan), Some(obj)) = (res.plan, res.objective) {
            let m = self.check_plan(&format!("cosma_2phase({oname})"), order, plan, obj);
            if m.traffic().is_some() {
                if m.traffic() < base.traffic() || base.traffic().is_none() {
                    warm = m.plan.clone();
                }
                self.statuses.push(res.status);
                self.candidates.push((m, res.status, "residency ilp"));
            }
        }
        if let Some(lb) = res.lower_bound {
            self.res_bounds.push((order.to_vec(), lb));
        }
        if res.status == IlpStatus::Optimal && res.objective.is_some() {
            // Residency optimum placed without loss: optimal for this order.
            return;
        }
        let limit = (limit - res.seconds).max(1.0);
        if use_windows {
            self.solve_in_windows(&name, order, limit);
        } else {
            self.solve_whole(&name, order, &lt, warm.as_ref(), limit);
        }
    }

    /// The fixed-order program divided into windows (orders too large to solve whole).
    fn solve_in_windows(&mut self, name: &str, order: &[OpId], limit: f64) {
        let (p, budget) = (self.p, self.budget);
        match solve_windows(p, order, budget, self.opts.max_window_cost, limit) {
            Ok(w) => {
                self.solver.windows += w.windows;
                self.solver.fallback_windows += w.fallback_windows;
                self.solver.variables += w.variables;
                let m = self.check_plan(name, order, w.plan, w.objective);
                // Optimal windows do not make an optimal whole.
                let st = if w.windows > 1 {
                    IlpStatus::TimeLimit
                } else {
                    w.status
                };
                self.statuses.push(st);
                self.candidates.push((m, st, "windows"));
            }
            Err(e) => self.rejected.push(format!("{name}: {e}")),
        }
    }

    /// The fixed-order program solved whole, warm-started from `warm`; its proven optimum
    /// (or CBC's bound) becomes the solver's bound.
    fn solve_whole(
        &mut self,
        name: &str,
        order: &[OpId],
        lt: &Lifetimes,
        warm: Option<&Plan>,
        limit: f64,
    ) {
        let (p, budget) = (self.p, self.budget);
        let init = super::baseline::ChipState::initial(p);
        let o = solve_window(&Window {
            p,
            lt,
            order,
            t0: 0,
            t1: order.len(),
            init: &init,
            budget,
            time_limit_s: limit,
            warm,
        });
        self.solver.variables += o.variables;
        self.solver.windows += 1;
        self.statuses.push(o.status);
        if let (Some(obj), true) = (o.objective, o.end.is_some()) {
            let plan = Plan {
                order: order.to_vec(),
                steps: o.steps,
            };
            let m = self.check_plan(name, order, plan, obj);
            if o.status == IlpStatus::Optimal && m.check.is_ok() {
                self.solver.bound_bytes = Some(obj);
            } else if let Some(bd) = o.bound {
                self.solver.bound_bytes = Some(self.solver.bound_bytes.unwrap_or(0).max(bd));
            }
            self.candidates.push((m, o.status, "ilp"));
        } else {
            self.rejected
                .push(format!("{name}: CBC returned no solution ({:?})", o.status));
        }
    }

    /// The cheapest traffic of any checked plan so far, program or baseline.
    fn best_so_far(&self, baselines: &[Method]) -> Option<u64> {
        self.candidates
            .iter()
            .filter_map(|(m, _, _)| m.traffic())
            .chain(baselines.iter().filter_map(|m| m.traffic()))
            .min()
    }

    /// Free-order search: moves operators of the minimum-peak order where the live bytes
    /// exceed the budget (`left` seconds, 70 % of them); an order that beats every plan so
    /// far gets the residency program for the time left before the free-order program's.
    fn search_order(
        &mut self,
        mp_order: &[OpId],
        best_so_far: Option<u64>,
        free_limit: f64,
        left: f64,
    ) {
        let (p, budget, opts) = (self.p, self.budget, self.opts);
        let Some((order, cost)) = search_order(p, mp_order, budget, left * 0.7, 1) else {
            return;
        };
        let improves = best_so_far.is_some_and(|b| cost < b);
        if improves && order != mp_order && p.check_order(&order).is_ok() {
            let left =
                (opts.time_limit_s - free_limit - self.started.elapsed().as_secs_f64()).max(0.5);
            let res = residency_plan(p, &order, budget, left);
            self.solver.variables += res.variables;
            if let (Some(plan), Some(obj)) = (res.plan, res.objective) {
                let m = self.check_plan("cosma_2phase(searched_order)", &order, plan, obj);
                if m.traffic().is_some() {
                    self.statuses.push(IlpStatus::TimeLimit);
                    self.candidates
                        .push((m, IlpStatus::TimeLimit, "order search + residency ilp"));
                }
            }
        }
    }

    /// The free-order program (order, offsets and spills in one ILP) for the time left,
    /// warm-started from the cheapest checked plan so far. Returns its objective when it
    /// is proven optimal over all orders.
    fn free_order_program(&mut self, baselines: &[Method]) -> Option<u64> {
        let (p, budget) = (self.p, self.budget);
        let left = (self.opts.time_limit_s - self.started.elapsed().as_secs_f64()).max(1.0);
        // Warm start: the cheapest checked plan so far.
        let warm = self
            .candidates
            .iter()
            .map(|(m, _, _)| m)
            .chain(baselines.iter())
            .filter(|m| m.traffic().is_some())
            .min_by_key(|m| m.traffic())
            .and_then(|m| m.plan.as_ref());
        let f = solve_free(p, budget, left, warm);
        self.solver.variables += f.variables;
        let mut proven = None;
        if let (Some(plan), Some(obj)) = (f.plan, f.objective) {
            let order = plan.order.clone();
            let m = self.check_plan("cosma_free", &order, plan, obj);
            if m.traffic().is_some() {
                if f.status == IlpStatus::Optimal {
                    proven = Some(obj);
                }
                self.statuses.push(f.status);
                self.candidates.push((m, f.status, "free-order ilp"));
            }
        } else if f.status == IlpStatus::Optimal || f.status == IlpStatus::Failed {
            self.rejected
                .push(format!("cosma_free: no solution ({:?})", f.status));
        }
        proven
    }

    /// The plan to use: the cheapest checked program plan; an eligible baseline when it is
    /// cheaper or no program plan passed the checker. Returns it with its source and the
    /// status of the program that made it.
    fn choose(&self, baselines: &[Method]) -> Result<(Method, String, IlpStatus), ScheduleError> {
        let mut best: Option<(Method, String, IlpStatus)> = None;
        for (m, st, src) in &self.candidates {
            if let Some(t) = m.traffic() {
                if best
                    .as_ref()
                    .is_none_or(|(b, _, _)| b.traffic().is_some_and(|bt| t < bt))
                {
                    best = Some((m.clone(), src.to_string(), *st));
                }
            }
        }
        let eligible: Vec<usize> = match self.opts.mode {
            Mode::Fixed => vec![0],
            Mode::MinPeak => vec![1],
            _ => vec![0, 1],
        };
        for &i in &eligible {
            let bm = &baselines[i];
            if let Some(t) = bm.traffic() {
                if best
                    .as_ref()
                    .is_none_or(|(b, _, _)| b.traffic().is_some_and(|bt| t < bt))
                {
                    let why = if self
                        .candidates
                        .iter()
                        .any(|(m, _, _)| m.traffic().is_some())
                    {
                        "the ILP plan was costlier"
                    } else {
                        "no ILP plan passed the checker"
                    };
                    best = Some((
                        bm.clone(),
                        format!("baseline fallback ({}): {why}", bm.name),
                        IlpStatus::TimeLimit,
                    ));
                }
            }
        }
        best.ok_or_else(|| {
            ScheduleError::Other(format!(
                "no plan passed the checker: {}",
                self.rejected.join("; ")
            ))
        })
    }

    /// The outcome with the chosen plan: the run is optimal only when every program that
    /// counted proved its optimum (or the free-order program did); the bound is the best
    /// lower bound known for the chosen order, and the gap is measured against it.
    fn finish(
        mut self,
        baselines: Vec<Method>,
        starts: StartOrders,
        (mr, mr_op): (u64, Option<OpId>),
        free_lb: Option<u64>,
    ) -> Result<Outcome, ScheduleError> {
        let p = self.p;
        let (ours, source, status) = self.choose(&baselines)?;
        let all_optimal = self.statuses.iter().all(|&s| s == IlpStatus::Optimal);
        // A proven free-order optimum is optimal whatever the other programs reached.
        let all_optimal = all_optimal || source == "free-order ilp";
        let solver = &mut self.solver;
        solver.status = match (status, all_optimal) {
            (IlpStatus::Optimal, true) => "optimal",
            (IlpStatus::Optimal, false) | (IlpStatus::TimeLimit, _) => "time_limit",
            (IlpStatus::Infeasible, _) => "infeasible",
            (IlpStatus::Failed, _) => "failed",
        }
        .to_string();
        let res_lb = self
            .res_bounds
            .iter()
            .filter(|(o, _)| *o == ours.order)
            .map(|&(_, b)| b)
            .max();
        let lb = traffic_lower_bound(p, &ours.order, self.budget)
            .max(res_lb)
            .max(free_lb);
        let traffic = ours.traffic().unwrap_or(0);
        let bound = if status == IlpStatus::Optimal
            && (source == "ilp" || source == "residency ilp" || source == "free-order ilp")
        {
            Some(traffic)
        } else {
            lb.max(solver.bound_bytes.filter(|_| source == "ilp"))
        };
        solver.bound_bytes = bound;
        solver.gap = bound.map(|b| {
            if traffic == 0 || status == IlpStatus::Optimal {
                0.0
            } else {
                (traffic.saturating_sub(b)) as f64 / traffic as f64
            }
        });
        Ok(Outcome {
            budget: self.budget,
            m_r: mr,
            m_r_op: mr_op.map(|o| p.ops[o].name.clone()),
            m_p: starts.m_p,
            m_p_exact: starts.m_p_exact,
            model_order_peak: starts.model_peak,
            live_bound: peak(p, &ours.order),
            traffic_lower_bound: lb,
            free_order_lower_bound: free_lb,
            baselines,
            candidates: self.candidates.into_iter().map(|c| c.0).collect(),
            ours,
            source,
            solver: self.solver,
            rejected: self.rejected,
            plans_checked: self.plans_checked,
        })
    }
}

/// A plan whose recounted traffic differs from the solver's objective is a solver failure.
fn objective_matches(mut m: Method, objective: u64, rejected: &mut Vec<String>) -> Method {
    match &m.check {
        Ok(c) if c.traffic_bytes != objective => {
            let e = format!(
                "recounted traffic {} differs from the solver objective {objective}",
                c.traffic_bytes
            );
            m.check = Err(e);
        }
        _ => {}
    }
    if let Err(e) = &m.check {
        rejected.push(format!("{}: {e}", m.name));
    }
    m
}
