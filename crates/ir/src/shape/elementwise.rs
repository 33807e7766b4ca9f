//! Elementwise ops: numpy broadcasting (symbolic dims included), unary/binary/variadic
//! arithmetic, comparisons, Where, Cast, Clip, quantization — with constant folding.

use super::constant::{broadcast_index, Data, Value};
use super::{attr_i, node_err, Ctx, Res, MAX_CONST_ELEMS};
use crate::ir::op_table::{self, Trait, Trait::*};
use crate::ir::{tensor, DataType, Dim, Node, DEFAULT_DOMAIN};

/// Broadcasts two dims; `Err` when both are known, different and neither is 1.
fn broadcast_dim(a: &Dim, b: &Dim) -> Result<Dim, String> {
    Ok(match (a, b) {
        (Dim::Known(1), x) | (x, Dim::Known(1)) => x.clone(),
        (Dim::Known(x), Dim::Known(y)) if x == y => Dim::Known(*x),
        (Dim::Known(x), Dim::Known(y)) => {
            return Err(format!("dimensions {x} and {y} do not broadcast"))
        }
        (Dim::Known(x), _) | (_, Dim::Known(x)) => Dim::Known(*x),
        (Dim::Sym(x), Dim::Sym(y)) if x == y => Dim::Sym(x.clone()),
        _ => Dim::Unknown,
    })
}

/// Multidirectional (numpy) broadcasting of several shapes.
pub fn broadcast(shapes: &[&[Dim]]) -> Result<Vec<Dim>, String> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![Dim::Known(1); rank];
    for s in shapes {
        let off = rank - s.len();
        for (i, d) in s.iter().enumerate() {
            out[off + i] = broadcast_dim(&out[off + i], d)
                .map_err(|e| format!("{e} (shapes {})", fmt_shapes(shapes)))?;
        }
    }
    Ok(out)
}

fn fmt_shapes(shapes: &[&[Dim]]) -> String {
    shapes
        .iter()
        .map(|s| crate::ir::types::fmt_shape(&Some(s.to_vec())))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// Broadcast shape of the node's inputs `idx`, `None` when some rank is unknown.
fn broadcast_inputs(cx: &Ctx, n: &Node, idx: &[usize]) -> Res<Option<Vec<Dim>>> {
    let mut dims = Vec::new();
    for &i in idx {
        if !cx.has_input(n, i) {
            continue;
        }
        match cx.dims(n, i) {
            Some(d) => dims.push(d),
            None => return Ok(None),
        }
    }
    let refs: Vec<&[Dim]> = dims.iter().map(|d| d.as_slice()).collect();
    broadcast(&refs)
        .map(Some)
        .map_err(|e| node_err(n, out0(n), e))
}

pub(crate) fn out0(n: &Node) -> &str {
    n.outputs.first().map(|s| s.as_str()).unwrap_or("")
}

/// The op's family, from the op table (the op type alone, whatever the node's domain).
fn is(op: &str, t: Trait) -> bool {
    op_table::has(DEFAULT_DOMAIN, op, t)
}

/// Returns Ok(true) when the op belongs to this family.
pub(crate) fn infer(cx: &mut Ctx, n: &Node, op: &str) -> Res<bool> {
    if is(op, SameShapeUnary) {
        unary(cx, n, op, None);
        return Ok(true);
    }
    match op {
        "Identity" => cx.copy(n, 0, 0),
        "Not" | "IsNaN" | "IsInf" => unary(cx, n, op, Some(DataType::Bool)),
        "Cast" => {
            let to = attr_i(n, "to").and_then(|t| DataType::from_onnx(t as i32));
            match to {
                Some(to) => cast(cx, n, to),
                None => return Err(node_err(n, out0(n), "Cast has no valid 'to' attribute")),
            }
        }
        "CastLike" => {
            if let Some(to) = cx.elem(n, 1) {
                cast(cx, n, to);
            }
        }
        "Pow" | "PRelu" => {
            // PRelu's slope broadcasts to X (unidirectionally); before opset 7 Pow/PRelu
            // used legacy broadcasting. Either way the output has X's shape, except for
            // numpy-broadcasting Pow.
            let shape = if op == "Pow" && cx.opset >= 7 {
                broadcast_inputs(cx, n, &[0, 1])?
            } else {
                if cx.opset >= 7 {
                    broadcast_inputs(cx, n, &[0, 1])?;
                }
                cx.dims(n, 0)
            };
            if let Some(e) = cx.elem(n, 0) {
                cx.set_tensor(n, 0, e, shape);
            }
        }
        "Where" => {
            let shape = broadcast_inputs(cx, n, &[0, 1, 2])?;
            let elem = cx.elem(n, 1).or_else(|| cx.elem(n, 2));
            if let Some(e) = elem {
                if let (Some(s), Some(c), Some(x), Some(y)) =
                    (&shape, cx.val(n, 0), cx.val(n, 1), cx.val(n, 2))
                {
                    if let Some(v) = fold_where(s, c, x, y, e) {
                        cx.set_val(n, 0, v);
                        return Ok(true);
                    }
                }
                cx.set_tensor(n, 0, e, shape);
            }
        }
        "QuantizeLinear" => {
            let attr_dt = attr_i(n, "output_dtype")
                .filter(|&d| d != 0)
                .and_then(|d| DataType::from_onnx(d as i32));
            let elem = attr_dt.or_else(|| cx.elem(n, 2)).unwrap_or(DataType::Uint8);
            cx.set_tensor(n, 0, elem, cx.dims(n, 0));
        }
        "DequantizeLinear" => {
            let attr_dt = attr_i(n, "output_dtype")
                .filter(|&d| d != 0)
                .and_then(|d| DataType::from_onnx(d as i32));
            let elem = attr_dt.or_else(|| cx.elem(n, 1)).unwrap_or(DataType::Float);
            cx.set_tensor(n, 0, elem, cx.dims(n, 0));
        }
        "DynamicQuantizeLinear" => {
            cx.set_tensor(n, 0, DataType::Uint8, cx.dims(n, 0));
            cx.set_tensor(n, 1, DataType::Float, Some(vec![]));
            cx.set_tensor(n, 2, DataType::Uint8, Some(vec![]));
        }
        _ if is(op, BroadcastArith) || is(op, Compare) || is(op, Variadic) => {
            let idx: Vec<usize> = (0..n.inputs.len()).collect();
            if cx.opset < 7 && !is(op, Variadic) {
                // Legacy broadcasting (`broadcast`/`axis` attributes): B is broadcast to A.
                let elem = if is(op, Compare) {
                    Some(DataType::Bool)
                } else {
                    cx.elem(n, 0)
                };
                if let Some(e) = elem {
                    cx.set_tensor(n, 0, e, cx.dims(n, 0));
                }
                return Ok(true);
            }
            let shape = broadcast_inputs(cx, n, &idx)?;
            let in_elem = (0..n.inputs.len()).find_map(|i| cx.elem(n, i));
            let elem = if is(op, Compare) {
                Some(DataType::Bool)
            } else {
                in_elem
            };
            let Some(elem) = elem else { return Ok(true) };
            if let (Some(s), Some(in_elem)) = (&shape, in_elem) {
                let vals: Option<Vec<&Value>> = idx.iter().map(|&i| cx.val(n, i)).collect();
                if let Some(vals) = vals {
                    if let Some(v) = fold_nary(op, s, &vals, in_elem, elem, n) {
                        cx.set_val(n, 0, v);
                        return Ok(true);
                    }
                }
            }
            cx.set_tensor(n, 0, elem, shape);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Same shape as input 0; dtype of input 0 unless `elem` says otherwise. Folds a few ops.
fn unary(cx: &mut Ctx, n: &Node, op: &str, elem: Option<DataType>) {
    let Some(ty) = cx.ty(n, 0) else { return };
    let Some(in_elem) = ty.elem() else { return };
    let out_elem = elem.unwrap_or(in_elem);
    if let Some(v) = cx.val(n, 0) {
        let f: Option<fn(f64) -> f64> = match op {
            "Abs" => Some(f64::abs),
            "Neg" => Some(|x| -x),
            "Relu" => Some(|x| x.max(0.0)),
            "Floor" => Some(f64::floor),
            "Ceil" => Some(f64::ceil),
            "Round" => Some(f64::round_ties_even),
            "Sqrt" => Some(f64::sqrt),
            "Sign" => Some(|x| {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }),
            "Not" => Some(|x| if x == 0.0 { 1.0 } else { 0.0 }),
            _ => None,
        };
        if let Some(f) = f {
            let folded = match &v.data {
                Data::Int(d)
                    if op == "Neg"
                        || op == "Abs"
                        || op == "Relu"
                        || op == "Sign"
                        || op == "Not" =>
                {
                    Some(Data::Int(
                        d.iter()
                            .map(|x| match x {
                                Dim::Known(k) => Dim::Known(f(*k as f64) as i64),
                                Dim::Sym(_) if op == "Abs" || op == "Relu" => x.clone(),
                                _ => Dim::Unknown,
                            })
                            .collect(),
                    ))
                }
                Data::Int(d) => Some(Data::Int(d.clone())),
                Data::Float(d) => Some(Data::Float(d.iter().map(|&x| f(x)).collect())),
            };
            if let Some(data) = folded {
                let v = Value::new(out_elem, v.dims.clone(), data);
                cx.set_val(n, 0, v);
                return;
            }
        }
    }
    let shape = ty.dims().map(|d| d.to_vec());
    cx.set_tensor(n, 0, out_elem, shape);
}

fn cast(cx: &mut Ctx, n: &Node, to: DataType) {
    if let Some(v) = cx.val(n, 0).and_then(|v| v.cast(to)) {
        cx.set_val(n, 0, v);
        return;
    }
    if let Some(ty) = cx.ty(n, 0) {
        let shape = match ty {
            crate::ir::ValueType::Tensor { shape, .. }
            | crate::ir::ValueType::TensorUnknownElem { shape } => shape.clone(),
            _ => None,
        };
        cx.set_tensor(n, 0, to, shape);
    }
}

fn static_of(shape: &[Dim]) -> Option<Vec<i64>> {
    shape.iter().map(|d| d.known()).collect()
}

fn fold_where(shape: &[Dim], c: &Value, x: &Value, y: &Value, elem: DataType) -> Option<Value> {
    let s = static_of(shape)?;
    if tensor::element_count(&s) > MAX_CONST_ELEMS {
        return None;
    }
    let ci = broadcast_index(&c.dims, &s);
    let xi = broadcast_index(&x.dims, &s);
    let yi = broadcast_index(&y.dims, &s);
    let cond: Vec<bool> = ci
        .iter()
        .map(|&i| c.data.f64_at(i).map(|v| v != 0.0))
        .collect::<Option<_>>()?;
    let data = match (&x.data, &y.data) {
        (Data::Int(a), Data::Int(b)) => Data::Int(
            cond.iter()
                .enumerate()
                .map(|(k, &t)| {
                    if t {
                        a.get(xi[k]).cloned()
                    } else {
                        b.get(yi[k]).cloned()
                    }
                })
                .collect::<Option<_>>()?,
        ),
        _ => Data::Float(
            cond.iter()
                .enumerate()
                .map(|(k, &t)| {
                    if t {
                        x.data.f64_at(xi[k])
                    } else {
                        y.data.f64_at(yi[k])
                    }
                })
                .collect::<Option<_>>()?,
        ),
    };
    Some(Value::new(elem, s, data))
}

/// Folds a broadcasting n-ary op over known values.
fn fold_nary(
    op: &str,
    shape: &[Dim],
    vals: &[&Value],
    in_elem: DataType,
    elem: DataType,
    n: &Node,
) -> Option<Value> {
    let s = static_of(shape)?;
    if tensor::element_count(&s) > MAX_CONST_ELEMS || vals.is_empty() {
        return None;
    }
    let idx: Vec<Vec<usize>> = vals.iter().map(|v| broadcast_index(&v.dims, &s)).collect();
    let total = tensor::element_count(&s) as usize;
    let int_math = in_elem.is_integer() || in_elem == DataType::Bool;
    let fmod = attr_i(n, "fmod").unwrap_or(0) != 0;
    let left_shift = super::attr_s(n, "direction") == Some("LEFT");
    if int_math {
        let mut out = Vec::with_capacity(total);
        for k in 0..total {
            let mut acc: Option<Dim> = None;
            for (v, ix) in vals.iter().zip(&idx) {
                let Data::Int(d) = &v.data else { return None };
                let x = d.get(ix[k])?.clone();
                acc = Some(match acc {
                    None => x,
                    Some(a) => int_op(op, &a, &x, fmod, left_shift)?,
                });
            }
            let a = acc?;
            if op == "Mean" {
                out.push(
                    a.known()
                        .map(|x| Dim::Known(x / vals.len() as i64))
                        .unwrap_or(Dim::Unknown),
                );
            } else {
                out.push(a);
            }
        }
        return Some(Value::new(elem, s, Data::Int(out)));
    }
    let mut out = Vec::with_capacity(total);
    for k in 0..total {
        let mut acc: Option<f64> = None;
        for (v, ix) in vals.iter().zip(&idx) {
            let x = v.data.f64_at(ix[k])?;
            acc = Some(match acc {
                None => x,
                Some(a) => float_op(op, a, x, fmod)?,
            });
        }
        let a = acc?;
        out.push(if op == "Mean" {
            a / vals.len() as f64
        } else {
            a
        });
    }
    let data = if elem == DataType::Bool {
        Data::Int(out.into_iter().map(|x| Dim::Known(x as i64)).collect())
    } else {
        Data::Float(out)
    };
    Some(Value::new(elem, s, data))
}

fn int_op(op: &str, a: &Dim, b: &Dim, fmod: bool, left: bool) -> Option<Dim> {
    // Symbolic identities first.
    match (op, a, b) {
        ("Add", x, Dim::Known(0)) | ("Add", Dim::Known(0), x) | ("Sub", x, Dim::Known(0)) => {
            return Some(x.clone())
        }
        ("Mul", x, Dim::Known(1)) | ("Mul", Dim::Known(1), x) | ("Div", x, Dim::Known(1)) => {
            return Some(x.clone())
        }
        ("Mul", _, Dim::Known(0)) | ("Mul", Dim::Known(0), _) => return Some(Dim::Known(0)),
        ("Max" | "Min", Dim::Sym(x), Dim::Sym(y)) if x == y => return Some(a.clone()),
        ("Sub", Dim::Sym(x), Dim::Sym(y)) if x == y => return Some(Dim::Known(0)),
        ("Div", Dim::Sym(x), Dim::Sym(y)) if x == y => return Some(Dim::Known(1)),
        ("Equal", Dim::Sym(x), Dim::Sym(y)) if x == y => return Some(Dim::Known(1)),
        _ => {}
    }
    let (Some(x), Some(y)) = (a.known(), b.known()) else {
        return Some(Dim::Unknown);
    };
    let r = match op {
        "Add" => x.wrapping_add(y),
        "Sub" => x.wrapping_sub(y),
        "Mul" => x.wrapping_mul(y),
        "Div" => {
            if y == 0 {
                return None;
            }
            x.wrapping_div(y)
        }
        "Mod" => {
            if y == 0 {
                return None;
            }
            let r = x.wrapping_rem(y);
            if !fmod && r != 0 && ((r < 0) != (y < 0)) {
                r + y
            } else {
                r
            }
        }
        "Max" => x.max(y),
        "Min" => x.min(y),
        "Sum" => x.wrapping_add(y),
        "Mean" => x.wrapping_add(y),
        "Equal" => (x == y) as i64,
        "Less" => (x < y) as i64,
        "Greater" => (x > y) as i64,
        "LessOrEqual" => (x <= y) as i64,
        "GreaterOrEqual" => (x >= y) as i64,
        "And" => (x != 0 && y != 0) as i64,
        "Or" => (x != 0 || y != 0) as i64,
        "Xor" => ((x != 0) != (y != 0)) as i64,
        "BitwiseAnd" => x & y,
        "BitwiseOr" => x | y,
        "BitwiseXor" => x ^ y,
        "BitShift" => {
            if !(0..64).contains(&y) {
                0
            } else if left {
                x << y
            } else {
                x >> y
            }
        }
        _ => return None,
    };
    Some(Dim::Known(r))
}

fn float_op(op: &str, x: f64, y: f64, fmod: bool) -> Option<f64> {
    Some(match op {
        "Add" | "Sum" | "Mean" => x + y,
        "Sub" => x - y,
        "Mul" => x * y,
        "Div" => x / y,
        "Mod" => {
            let r = x % y;
            if !fmod && r != 0.0 && ((r < 0.0) != (y < 0.0)) {
                r + y
            } else {
                r
            }
        }
        "Max" => x.max(y),
        "Min" => x.min(y),
        "Equal" => (x == y) as i64 as f64,
        "Less" => (x < y) as i64 as f64,
        "Greater" => (x > y) as i64 as f64,
        "LessOrEqual" => (x <= y) as i64 as f64,
        "GreaterOrEqual" => (x >= y) as i64 as f64,
        _ => return None,
    })
}
