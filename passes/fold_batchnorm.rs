//! BatchNorm folding, a pass of its own: every inference-mode BatchNormalization right
//! after a Conv with constant weights becomes part of that Conv. It changes no result beyond
//! float rounding, and the precision pass requires it (a BatchNorm left after an int8 Conv
//! would scale its quantization error; folded, the weights carry the scale and are
//! quantized once). The affine algebra is `optimize_ir::ir::affine`, shared with the
//! simplification pass and with relevance, which folds BatchNorm virtually.

use crate::pass_manager::{retype_if, Pass, PassChanges, PassResult};
use optimize_ir::error::Result;
use optimize_ir::ir::affine::{fold_output_affine, inference_batchnorm};
use optimize_ir::ir::build::{
    add_initializer, f32_tensor, prune_values, relink_after, remove_dead_constants, Namer,
};
use optimize_ir::ir::tensor::constant_f32;
use optimize_ir::ir::Model;
use optimize_ir::shape::current_bindings;
use std::collections::BTreeSet;

/// The pass's name.
pub const PASS_NAME: &str = "fold-batchnorm";

/// Folds BatchNormalization into the Conv before it ([`fold_batchnorm`]), then retypes the
/// graph when something was folded.
pub struct FoldBatchNorm;

impl Pass for FoldBatchNorm {
    fn name(&self) -> &'static str {
        PASS_NAME
    }

    fn run(&self, model: &mut Model) -> Result<PassResult> {
        let bindings = current_bindings(model);
        let folded = fold_batchnorm(model)?;
        retype_if(folded > 0, model, &bindings, "BatchNorm folding")?;
        let mut changes = PassChanges::default();
        changes.add("folded_batchnorms", folded as u64);
        Ok(changes.into())
    }
}

/// Folds every BatchNormalization (inference mode, constant parameters) that directly
/// follows a Conv with constant weight (and optional constant bias), when the Conv's output
/// goes only to the BN and is not a graph output: one Conv with `W·s`, `(b − mean)·s + β`
/// (`s = γ/√(var+ε)`, computed in f64) then produces the BN's output tensor. Returns the
/// number folded.
pub fn fold_batchnorm(model: &mut Model) -> Result<usize> {
    let g = &mut model.graph;
    let mut namer = Namer::new(g);
    let bns = g.indices_of(&["BatchNormalization"]);
    let mut dead = BTreeSet::new();
    let mut folded = 0;
    for bn_idx in bns {
        let bn = g.ops[bn_idx].clone();
        if bn.inputs.is_empty() || bn.outputs.is_empty() {
            continue;
        }
        let x = &bn.inputs[0];
        let Some(conv_idx) = g.producer(x) else {
            continue;
        };
        let conv = g.ops[conv_idx].clone();
        if !conv.is("Conv") || conv.outputs.len() != 1 || g.sole_consumer(x).is_none() {
            continue;
        }
        let Some((w, wshape)) = conv.inputs.get(1).and_then(|w| constant_f32(g, w)) else {
            continue;
        };
        let m = wshape.first().copied().unwrap_or(0);
        let bias = match conv.inputs.get(2).filter(|b| !b.is_empty()) {
            Some(b) => match constant_f32(g, b) {
                Some((v, _)) if v.len() == m => Some(v),
                _ => continue,
            },
            None => None,
        };
        let Some((k, shift)) = inference_batchnorm(g, &bn, m) else {
            continue;
        };
        let (mut new_w, mut new_b) = (w, bias.unwrap_or_else(|| vec![0.0; m]));
        fold_output_affine(&mut new_w, &mut new_b, &k, &shift);
        let y = bn.outputs[0].clone();
        let wn = namer.fresh(&format!("{y}__folded_w"));
        let bnm = namer.fresh(&format!("{y}__folded_b"));
        let wdims: Vec<i64> = wshape.iter().map(|&d| d as i64).collect();
        add_initializer(g, f32_tensor(&wn, &wdims, &new_w));
        add_initializer(g, f32_tensor(&bnm, &[m as i64], &new_b));
        dead.extend(conv.inputs[1..].iter().filter(|s| !s.is_empty()).cloned());
        dead.extend(bn.inputs[1..].iter().cloned());
        let c = &mut g.ops[conv_idx];
        c.inputs.truncate(1);
        c.inputs.push(wn);
        c.inputs.push(bnm);
        c.outputs = vec![y];
        g.values.remove(x);
        g.remove_node(bn_idx);
        folded += 1;
    }
    if folded > 0 {
        relink_after(g, "BatchNorm folding")?;
        remove_dead_constants(g, &dead);
        prune_values(g);
        relink_after(g, "BatchNorm folding")?;
    }
    Ok(folded)
}
