//! Recurrent layers (LSTM, GRU, RNN) and com.microsoft's fused `MultiHeadAttention`: the
//! layers of the sequence models and transformers people bring. Without a type for their
//! outputs every tensor after them is untyped, and the passes must leave them alone.

use super::{attr_i, attr_i_or, attr_s, Ctx};
use crate::ir::{Dim, Node};

/// ONNX `LSTM` / `GRU` / `RNN` (opset 7+; `layout` from 14). With X `[seq, batch, input]`
/// (layout 0) or `[batch, seq, input]` (layout 1), D directions and `hidden_size` H:
/// Y is `[seq, D, batch, H]` (layout 1: `[batch, seq, D, H]`), Y_h and LSTM's Y_c are
/// `[D, batch, H]` (layout 1: `[batch, D, H]`). All have X's element type.
pub(crate) fn infer(cx: &mut Ctx, n: &Node, op: &str) -> bool {
    if !matches!(op, "LSTM" | "GRU" | "RNN") {
        return false;
    }
    let Some(elem) = cx.elem(n, 0) else {
        return true;
    };
    let directions = Dim::Known(match attr_s(n, "direction") {
        Some("bidirectional") => 2,
        _ => 1,
    });
    // hidden_size is required by the spec; without it, W's rows are gates × H.
    let gates = match op {
        "LSTM" => 4,
        "GRU" => 3,
        _ => 1,
    };
    let hidden =
        attr_i(n, "hidden_size")
            .map(Dim::Known)
            .or_else(|| match cx.dims(n, 1)?.get(1)? {
                Dim::Known(rows) if rows % gates == 0 => Some(Dim::Known(rows / gates)),
                _ => None,
            });
    let x = cx.dims(n, 0).filter(|d| d.len() == 3);
    let (Some(x), Some(hidden)) = (x, hidden) else {
        for i in 0..n.outputs.len().min(3) {
            cx.set_tensor(n, i, elem, None);
        }
        return true;
    };
    let batch_first = attr_i_or(n, "layout", 0) == 1;
    let (seq, batch) = if batch_first {
        (x[1].clone(), x[0].clone())
    } else {
        (x[0].clone(), x[1].clone())
    };
    let (y, state) = if batch_first {
        (
            vec![batch.clone(), seq, directions.clone(), hidden.clone()],
            vec![batch, directions, hidden],
        )
    } else {
        (
            vec![seq, directions.clone(), batch.clone(), hidden.clone()],
            vec![directions, batch, hidden],
        )
    };
    cx.set_tensor(n, 0, elem, Some(y));
    cx.set_tensor(n, 1, elem, Some(state.clone()));
    if op == "LSTM" {
        cx.set_tensor(n, 2, elem, Some(state));
    }
    true
}

/// com.microsoft `MultiHeadAttention` with a 3-D query `[batch, seq, hidden]`: the output is
/// `[batch, seq, v_hidden]`, where v_hidden is the last dim of a 3-D value (else hidden).
/// The optional present key/value outputs get the element type only.
pub(crate) fn multi_head_attention(cx: &mut Ctx, n: &Node) {
    let Some(elem) = cx.elem(n, 0) else {
        return;
    };
    let shape = cx.dims(n, 0).filter(|q| q.len() == 3).map(|mut q| {
        if let Some(v) = cx.dims(n, 2).filter(|v| v.len() == 3) {
            q[2] = v[2].clone();
        }
        q
    });
    cx.set_tensor(n, 0, elem, shape);
    for i in 1..n.outputs.len().min(3) {
        cx.set_tensor(n, i, elem, None);
    }
}
