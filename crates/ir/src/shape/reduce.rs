//! Reductions (Reduce*, ArgMax/ArgMin).

use super::elementwise::out0;
use super::{attr_i_or, attr_ints, norm_axes, norm_axis, Ctx, Res};
use crate::ir::op_table::{self, Trait};
use crate::ir::{DataType, Dim, Node, DEFAULT_DOMAIN};

pub(crate) fn infer(cx: &mut Ctx, n: &Node, op: &str) -> Res<bool> {
    if op_table::has(DEFAULT_DOMAIN, op, Trait::Reduce) {
        reduce(cx, n, op)?;
        return Ok(true);
    }
    if op == "ArgMax" || op == "ArgMin" {
        let Some(d) = cx.dims(n, 0) else {
            cx.set_tensor(n, 0, DataType::Int64, None);
            return Ok(true);
        };
        let a = norm_axis(n, out0(n), attr_i_or(n, "axis", 0), d.len())?;
        cx.set_tensor(
            n,
            0,
            DataType::Int64,
            Some(reduced(&d, &[a], attr_i_or(n, "keepdims", 1) != 0)),
        );
        return Ok(true);
    }
    Ok(false)
}

/// `d` with `axes` reduced (kept as 1 or removed).
pub(crate) fn reduced(d: &[Dim], axes: &[usize], keepdims: bool) -> Vec<Dim> {
    let mut out = Vec::with_capacity(d.len());
    for (i, x) in d.iter().enumerate() {
        if axes.contains(&i) {
            if keepdims {
                out.push(Dim::Known(1));
            }
        } else {
            out.push(x.clone());
        }
    }
    out
}

fn reduce(cx: &mut Ctx, n: &Node, op: &str) -> Res {
    let Some(elem) = cx.elem(n, 0) else {
        return Ok(());
    };
    let keepdims = attr_i_or(n, "keepdims", 1) != 0;
    let Some(d) = cx.dims(n, 0) else {
        cx.set_tensor(n, 0, elem, None);
        return Ok(());
    };
    let axes_as_input = if op == "ReduceSum" {
        cx.opset >= 13
    } else {
        cx.opset >= 18
    };
    let axes: Option<Vec<i64>> = if axes_as_input {
        if cx.has_input(n, 1) {
            match cx.ints(n, 1) {
                Some(a) => Some(a),
                None => {
                    let shape = keepdims.then(|| vec![Dim::Unknown; d.len()]);
                    cx.set_tensor(n, 0, elem, shape);
                    return Ok(());
                }
            }
        } else {
            None
        }
    } else {
        attr_ints(n, "axes")
    };
    let noop = attr_i_or(n, "noop_with_empty_axes", 0) != 0;
    let axes: Vec<usize> = match axes {
        Some(a) if !a.is_empty() => norm_axes(n, out0(n), &a, d.len())?,
        _ if noop && axes_as_input => vec![],
        _ => (0..d.len()).collect(),
    };
    cx.set_tensor(n, 0, elem, Some(reduced(&d, &axes, keepdims)));
    Ok(())
}
