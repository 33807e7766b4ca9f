//! One table of what several modules ask about an op, keyed by (domain, op_type): shape
//! inference's families, whether the tiling may cut through it, whether the wgpu executor
//! runs it, the relevance rule kind, whether the precision pass quantizes it and which input
//! is its weight. It replaces the string lists each module kept, so that adding an op is one
//! row (see `rows.rs`). It depends on nothing but [`canonical_domain`](super::canonical_domain).
//!
//! A trait means exactly what the list it replaced meant; `tests.rs` holds those lists.

mod rows;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::OnceLock;

/// One trait an op may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trait {
    /// Shape inference: one output with input 0's shape and element type.
    SameShapeUnary,
    /// Shape inference: broadcasting arithmetic, output of the inputs' element type.
    BroadcastArith,
    /// Shape inference: broadcasting comparison or logic, bool output.
    Compare,
    /// Shape inference: broadcasting over any number of inputs (Sum, Max, Min, Mean).
    Variadic,
    /// Shape inference: a Reduce* op (axes from the attribute or input 1).
    Reduce,
    /// Tiling: output at (h, w) depends only on the inputs at (h, w).
    Pointwise,
    /// The wgpu executor runs it on the device.
    Gpu,
    /// wgpu executor: its float16 outputs are input values moved or selected, never new
    /// values, so they need no rounding to float16.
    ExactInHalf,
    /// Relevance passes through unchanged to input 0 (R_in = R_out).
    RelevancePassThrough,
    /// Relevance has an explicit rule for it.
    RelevanceOwnRule,
    /// The precision pass may choose a precision for its weight.
    Quantizable,
}

impl Trait {
    const fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// How relevance crosses an op (see [`relevance_rule`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelevanceRule {
    /// Passed through unchanged to input 0.
    PassThrough,
    /// A rule of its own.
    Own,
}

/// One row: the op, its traits and its weight input slot, if it has one.
struct Row {
    domain: &'static str,
    op: &'static str,
    traits: &'static [Trait],
    weight: Option<usize>,
}

/// A default-domain row.
const fn op(op: &'static str, traits: &'static [Trait]) -> Row {
    in_domain("", op, traits)
}

/// A default-domain row whose input `slot` is the weight.
const fn weighted(op: &'static str, slot: usize, traits: &'static [Trait]) -> Row {
    Row {
        domain: "",
        op,
        traits,
        weight: Some(slot),
    }
}

/// A row of another domain.
const fn in_domain(domain: &'static str, op: &'static str, traits: &'static [Trait]) -> Row {
    Row {
        domain,
        op,
        traits,
        weight: None,
    }
}

/// A row as looked up: its trait bits and weight slot.
type Entry = (u32, Option<usize>);

/// The rows by (domain, op).
fn index() -> &'static HashMap<(&'static str, &'static str), Entry> {
    static INDEX: OnceLock<HashMap<(&'static str, &'static str), Entry>> = OnceLock::new();
    INDEX.get_or_init(|| {
        rows::ROWS
            .iter()
            .map(|r| {
                let bits = r.traits.iter().fold(0, |b, t| b | t.bit());
                ((r.domain, r.op), (bits, r.weight))
            })
            .collect()
    })
}

fn entry(domain: &str, op: &str) -> Option<Entry> {
    let index: &HashMap<(&str, &str), Entry> = index();
    index.get(&(super::canonical_domain(domain), op)).copied()
}

/// True when `op` of `domain` (`ai.onnx` is the default domain) has trait `t`.
pub fn has(domain: &str, op: &str, t: Trait) -> bool {
    entry(domain, op).is_some_and(|(bits, _)| bits & t.bit() != 0)
}

/// The input slot holding the op's weight, for the ops that have one.
pub fn weight_input(domain: &str, op: &str) -> Option<usize> {
    entry(domain, op).and_then(|(_, w)| w)
}

/// How relevance crosses the op, or `None` when it has no rule (it is then uncovered).
pub fn relevance_rule(domain: &str, op: &str) -> Option<RelevanceRule> {
    if has(domain, op, Trait::RelevancePassThrough) {
        Some(RelevanceRule::PassThrough)
    } else if has(domain, op, Trait::RelevanceOwnRule) {
        Some(RelevanceRule::Own)
    } else {
        None
    }
}

/// The ops of `domain` with trait `t`, in table order.
pub fn ops_with(domain: &str, t: Trait) -> Vec<&'static str> {
    let domain = super::canonical_domain(domain);
    rows::ROWS
        .iter()
        .filter(|r| r.domain == domain && r.traits.contains(&t))
        .map(|r| r.op)
        .collect()
}
