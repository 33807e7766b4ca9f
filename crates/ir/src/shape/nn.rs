//! Normalization, Dropout and matrix products (Gemm, MatMul, com.microsoft MatMulNBits).

use super::elementwise::{broadcast, out0};
use super::{attr_i, attr_i_or, node_err, norm_axis, Ctx, Res};
use crate::ir::{DataType, Dim, Node};

pub(crate) fn infer(cx: &mut Ctx, n: &Node, op: &str) -> Res<bool> {
    match op {
        "BatchNormalization" => batch_norm(cx, n),
        "InstanceNormalization" | "GroupNormalization" => cx.copy_type_only(n, 0, 0),
        "LayerNormalization" => layer_norm(cx, n)?,
        "Dropout" => {
            cx.copy_type_only(n, 0, 0);
            if let Some(d) = cx.dims(n, 0) {
                let mask = if cx.opset < 10 {
                    cx.elem(n, 0)
                } else {
                    Some(DataType::Bool)
                };
                if let Some(m) = mask {
                    cx.set_tensor(n, 1, m, Some(d));
                }
            }
        }
        "Gemm" => gemm(cx, n)?,
        "MatMul" => matmul(cx, n, 0, 1, cx.elem(n, 0))?,
        "MatMulInteger" => matmul(cx, n, 0, 1, Some(DataType::Int32))?,
        "QLinearMatMul" => {
            let e = cx.elem(n, 7).or_else(|| cx.elem(n, 0));
            matmul(cx, n, 0, 3, e)?
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// com.microsoft ops.
pub(crate) fn infer_ms(cx: &mut Ctx, n: &Node) -> Res {
    match n.op_type.as_str() {
        "MatMulNBits" => {
            let Some(elem) = cx.elem(n, 0) else {
                return Ok(());
            };
            let nn = attr_i(n, "N").ok_or_else(|| node_err(n, out0(n), "missing attribute N"))?;
            let shape = cx.dims(n, 0).map(|mut d| {
                if let Some(last) = d.last_mut() {
                    *last = Dim::Known(nn);
                }
                d
            });
            cx.set_tensor(n, 0, elem, shape);
        }
        "Gelu" | "FastGelu" | "BiasGelu" | "QuickGelu" | "BiasAdd" => cx.copy_type_only(n, 0, 0),
        "MultiHeadAttention" => super::recurrent::multi_head_attention(cx, n),
        // The contrib Q/DQ (int4/int16 below opset 21): same shape, type from scale or zero point.
        "DequantizeLinear" => {
            let elem = cx.elem(n, 1).unwrap_or(DataType::Float);
            cx.set_tensor(n, 0, elem, cx.dims(n, 0));
        }
        "QuantizeLinear" => {
            let elem = cx.elem(n, 2).unwrap_or(DataType::Uint8);
            cx.set_tensor(n, 0, elem, cx.dims(n, 0));
        }
        _ => {}
    }
    Ok(())
}

fn batch_norm(cx: &mut Ctx, n: &Node) {
    cx.copy_type_only(n, 0, 0);
    let c = cx
        .dims(n, 0)
        .and_then(|d| d.get(1).cloned())
        .filter(|d| d.known().is_some())
        .or_else(|| cx.dims(n, 1).and_then(|d| d.first().cloned()))
        .unwrap_or(Dim::Unknown);
    let stat_elem = cx.elem(n, 3).or_else(|| cx.elem(n, 0));
    let Some(se) = stat_elem else { return };
    // Outputs 1.. are [C]: running mean/var (and saved mean/var before opset 14).
    for i in 1..n.outputs.len() {
        let e = if i >= 3 {
            cx.elem(n, 0).unwrap_or(se)
        } else {
            se
        };
        cx.set_tensor(n, i, e, Some(vec![c.clone()]));
    }
}

fn layer_norm(cx: &mut Ctx, n: &Node) -> Res {
    cx.copy_type_only(n, 0, 0);
    let Some(d) = cx.dims(n, 0) else {
        return Ok(());
    };
    let a = norm_axis(n, out0(n), attr_i_or(n, "axis", -1), d.len())?;
    let stash =
        DataType::from_onnx(attr_i_or(n, "stash_type", 1) as i32).unwrap_or(DataType::Float);
    let stat: Vec<Dim> = d
        .iter()
        .enumerate()
        .map(|(i, x)| if i < a { x.clone() } else { Dim::Known(1) })
        .collect();
    cx.set_tensor(n, 1, stash, Some(stat.clone()));
    cx.set_tensor(n, 2, stash, Some(stat));
    Ok(())
}

fn check_eq(n: &Node, what: &str, a: &Dim, b: &Dim) -> Res {
    if let (Dim::Known(x), Dim::Known(y)) = (a, b) {
        if x != y {
            return Err(node_err(
                n,
                out0(n),
                format!("{what}: inner dimensions {x} and {y} differ"),
            ));
        }
    }
    Ok(())
}

fn gemm(cx: &mut Ctx, n: &Node) -> Res {
    let Some(elem) = cx.elem(n, 0) else {
        return Ok(());
    };
    let (Some(a), Some(b)) = (cx.dims(n, 0), cx.dims(n, 1)) else {
        cx.set_tensor(n, 0, elem, Some(vec![Dim::Unknown, Dim::Unknown]));
        return Ok(());
    };
    if a.len() != 2 || b.len() != 2 {
        return Err(node_err(
            n,
            out0(n),
            format!(
                "Gemm needs rank-2 inputs, got ranks {} and {}",
                a.len(),
                b.len()
            ),
        ));
    }
    let ta = attr_i_or(n, "transA", 0) != 0;
    let tb = attr_i_or(n, "transB", 0) != 0;
    let (m, ka) = if ta { (&a[1], &a[0]) } else { (&a[0], &a[1]) };
    let (kb, nn) = if tb { (&b[1], &b[0]) } else { (&b[0], &b[1]) };
    check_eq(n, "Gemm", ka, kb)?;
    cx.set_tensor(n, 0, elem, Some(vec![m.clone(), nn.clone()]));
    Ok(())
}

/// numpy matmul shape of inputs `ia` and `ib`.
fn matmul(cx: &mut Ctx, n: &Node, ia: usize, ib: usize, elem: Option<DataType>) -> Res {
    let Some(elem) = elem else { return Ok(()) };
    let (Some(a), Some(b)) = (cx.dims(n, ia), cx.dims(n, ib)) else {
        cx.set_tensor(n, 0, elem, None);
        return Ok(());
    };
    let out = matmul_dims(&a, &b).map_err(|e| node_err(n, out0(n), e))?;
    cx.set_tensor(n, 0, elem, Some(out));
    Ok(())
}

pub(crate) fn matmul_dims(a: &[Dim], b: &[Dim]) -> Result<Vec<Dim>, String> {
    if a.is_empty() || b.is_empty() {
        return Err("MatMul inputs must not be scalars".into());
    }
    let a2: Vec<Dim> = if a.len() == 1 {
        vec![Dim::Known(1), a[0].clone()]
    } else {
        a.to_vec()
    };
    let b2: Vec<Dim> = if b.len() == 1 {
        vec![b[0].clone(), Dim::Known(1)]
    } else {
        b.to_vec()
    };
    let (ka, kb) = (&a2[a2.len() - 1], &b2[b2.len() - 2]);
    if let (Dim::Known(x), Dim::Known(y)) = (ka, kb) {
        if x != y {
            return Err(format!("inner dimensions {x} and {y} differ"));
        }
    }
    let mut out = broadcast(&[&a2[..a2.len() - 2], &b2[..b2.len() - 2]])?;
    if a.len() > 1 {
        out.push(a2[a2.len() - 2].clone());
    }
    if b.len() > 1 {
        out.push(b2[b2.len() - 1].clone());
    }
    Ok(out)
}
