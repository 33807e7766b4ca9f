//! Sequence ops. When a sequence's length and element types are known (built by
//! SequenceConstruct/Insert/Erase with constant positions), SequenceAt, SequenceLength and
//! ConcatFromSequence give exact results; otherwise the merged element type is used.

use super::constant::Value;
use super::elementwise::out0;
use super::tensor_ops::{merge_dim, split_sizes};
use super::{attr_i, attr_i_or, node_err, norm_axis, Ctx, Res};
use crate::ir::{DataType, Dim, Node, ValueType};

/// The most specific type that covers both `a` and `b`.
pub(crate) fn merge_types(a: &ValueType, b: &ValueType) -> ValueType {
    match (a, b) {
        (
            ValueType::Tensor {
                elem: ea,
                shape: sa,
            },
            ValueType::Tensor {
                elem: eb,
                shape: sb,
            },
        ) => {
            let shape = match (sa, sb) {
                (Some(x), Some(y)) if x.len() == y.len() => Some(
                    x.iter()
                        .zip(y)
                        .map(|(p, q)| if p == q { p.clone() } else { Dim::Unknown })
                        .collect(),
                ),
                _ => None,
            };
            if ea == eb {
                ValueType::Tensor { elem: *ea, shape }
            } else {
                ValueType::TensorUnknownElem { shape }
            }
        }
        _ if a == b => a.clone(),
        _ => ValueType::TensorUnknownElem { shape: None },
    }
}

fn merge_all(items: &[ValueType]) -> Option<ValueType> {
    let mut it = items.iter();
    let first = it.next()?.clone();
    Some(it.fold(first, |acc, t| merge_types(&acc, t)))
}

/// Element type of a sequence-typed input.
fn seq_elem(cx: &Ctx, n: &Node, i: usize) -> Option<ValueType> {
    match cx.ty(n, i)? {
        ValueType::Sequence(e) => Some((**e).clone()),
        _ => None,
    }
}

/// Sets output `i` to a sequence with known elements (or an unknown list with element `fallback`).
fn set_seq(
    cx: &mut Ctx,
    n: &Node,
    i: usize,
    items: Option<Vec<ValueType>>,
    fallback: Option<ValueType>,
) {
    let Some(name) = cx.out_name(n, i) else {
        return;
    };
    let elem = match &items {
        Some(v) if !v.is_empty() => merge_all(v),
        _ => fallback,
    };
    if let Some(e) = elem {
        cx.types
            .insert(name.to_string(), ValueType::Sequence(Box::new(e)));
    }
    match items {
        Some(v) => {
            cx.seqs.insert(name.to_string(), v);
        }
        None => {
            cx.seqs.remove(name);
        }
    }
}

fn seq_items(cx: &Ctx, n: &Node, i: usize) -> Option<Vec<ValueType>> {
    cx.seqs.get(cx.in_name(n, i)?).cloned()
}

/// A position input (scalar), normalized against `len` (`len` allowed when `insert`).
fn position(cx: &Ctx, n: &Node, i: usize, len: usize, insert: bool) -> Res<Option<usize>> {
    if !cx.has_input(n, i) {
        return Ok(Some(if insert { len } else { len.wrapping_sub(1) }));
    }
    let Some(p) = cx.ints(n, i).and_then(|v| v.first().copied()) else {
        return Ok(None);
    };
    let l = len as i64;
    let q = if p < 0 { p + l } else { p };
    let hi = if insert { l } else { l - 1 };
    if q < 0 || q > hi {
        return Err(node_err(
            n,
            &n.inputs[i],
            format!("position {p} is out of range for a sequence of length {len}"),
        ));
    }
    Ok(Some(q as usize))
}

pub(crate) fn infer(cx: &mut Ctx, n: &Node, op: &str) -> Res<bool> {
    match op {
        "SequenceEmpty" => {
            let dt = attr_i(n, "dtype")
                .and_then(|d| DataType::from_onnx(d as i32))
                .unwrap_or(DataType::Float);
            set_seq(
                cx,
                n,
                0,
                Some(vec![]),
                Some(ValueType::Tensor {
                    elem: dt,
                    shape: None,
                }),
            );
        }
        "SequenceConstruct" => {
            let items: Option<Vec<ValueType>> =
                (0..n.inputs.len()).map(|i| cx.ty(n, i).cloned()).collect();
            let fallback = (0..n.inputs.len()).find_map(|i| cx.ty(n, i).cloned());
            set_seq(cx, n, 0, items, fallback);
        }
        "SequenceInsert" => {
            let Some(t) = cx.ty(n, 1).cloned() else {
                return Ok(true);
            };
            let items = match seq_items(cx, n, 0) {
                Some(mut v) => position(cx, n, 2, v.len(), true)?.map(|p| {
                    v.insert(p, t.clone());
                    v
                }),
                None => None,
            };
            let prev =
                seq_elem(cx, n, 0).filter(|e| !matches!(e, ValueType::Tensor { shape: None, .. }));
            let fallback = match prev {
                Some(p) if seq_items(cx, n, 0).is_none_or(|v| !v.is_empty()) => merge_types(&p, &t),
                _ => t,
            };
            set_seq(cx, n, 0, items, Some(fallback));
        }
        "SequenceErase" => {
            let items = match seq_items(cx, n, 0) {
                Some(mut v) if !v.is_empty() => position(cx, n, 1, v.len(), false)?.map(|p| {
                    v.remove(p);
                    v
                }),
                Some(_) => return Err(node_err(n, out0(n), "erasing from an empty sequence")),
                None => None,
            };
            let fallback = seq_elem(cx, n, 0);
            set_seq(cx, n, 0, items, fallback);
        }
        "SequenceAt" => {
            if let Some(v) = seq_items(cx, n, 0) {
                if v.is_empty() {
                    return Err(node_err(n, out0(n), "SequenceAt on an empty sequence"));
                }
                if let Some(p) = position(cx, n, 1, v.len(), false)? {
                    cx.set(n, 0, v[p].clone());
                    return Ok(true);
                }
            }
            if let Some(e) = seq_elem(cx, n, 0) {
                cx.set(n, 0, e);
            }
        }
        "SequenceLength" => match seq_items(cx, n, 0) {
            Some(v) => cx.set_val(n, 0, Value::int_scalar(DataType::Int64, v.len() as i64)),
            None => cx.set_tensor(n, 0, DataType::Int64, Some(vec![])),
        },
        "SplitToSequence" => split_to_sequence(cx, n)?,
        "ConcatFromSequence" => concat_from_sequence(cx, n)?,
        _ => return Ok(false),
    }
    Ok(true)
}

fn split_to_sequence(cx: &mut Ctx, n: &Node) -> Res {
    let Some(elem) = cx.elem(n, 0) else {
        return Ok(());
    };
    let Some(d) = cx.dims(n, 0) else {
        set_seq(
            cx,
            n,
            0,
            None,
            Some(ValueType::Tensor { elem, shape: None }),
        );
        return Ok(());
    };
    let a = norm_axis(n, out0(n), attr_i_or(n, "axis", 0), d.len())?;
    let keepdims = attr_i_or(n, "keepdims", 1) != 0;
    let piece = |len: Dim| -> ValueType {
        let mut s = d.clone();
        s[a] = len;
        ValueType::Tensor {
            elem,
            shape: Some(s),
        }
    };
    if !cx.has_input(n, 1) {
        // Size-1 chunks; keepdims=0 drops the axis.
        let mut s = d.clone();
        if keepdims {
            s[a] = Dim::Known(1);
        } else {
            s.remove(a);
        }
        let t = ValueType::Tensor {
            elem,
            shape: Some(s),
        };
        let items = d[a]
            .known()
            .filter(|&k| k as u64 <= super::MAX_CONST_ELEMS)
            .map(|k| vec![t.clone(); k as usize]);
        set_seq(cx, n, 0, items, Some(t));
        return Ok(());
    }
    let split = cx.ints(n, 1);
    let split_rank = cx.rank(n, 1);
    let items = match (split, split_rank, d[a].known()) {
        (Some(s), Some(0), Some(dim)) => {
            let Some(&c) = s.first() else {
                return Err(node_err(n, &n.inputs[1], "empty split"));
            };
            if c <= 0 {
                return Err(node_err(
                    n,
                    &n.inputs[1],
                    format!("split size {c} must be positive"),
                ));
            }
            let parts = (dim as usize).div_ceil(c as usize);
            if parts as u64 > super::MAX_CONST_ELEMS {
                set_seq(cx, n, 0, None, Some(piece(Dim::Unknown)));
                return Ok(());
            }
            Some(
                (0..parts)
                    .map(|i| piece(Dim::Known(c.min(dim - i as i64 * c))))
                    .collect::<Vec<_>>(),
            )
        }
        (Some(s), Some(1), _) => {
            let sizes =
                split_sizes(&d[a], Some(&s), s.len(), None).map_err(|e| node_err(n, out0(n), e))?;
            Some(sizes.into_iter().map(piece).collect())
        }
        _ => None,
    };
    set_seq(cx, n, 0, items, Some(piece(Dim::Unknown)));
    Ok(())
}

fn concat_from_sequence(cx: &mut Ctx, n: &Node) -> Res {
    let axis = attr_i(n, "axis").ok_or_else(|| node_err(n, out0(n), "missing attribute axis"))?;
    let new_axis = attr_i_or(n, "new_axis", 0) != 0;
    let items = seq_items(cx, n, 0);
    let Some(elem_ty) = seq_elem(cx, n, 0) else {
        return Ok(());
    };
    let Some(elem) = elem_ty.elem() else {
        return Ok(());
    };
    let Some(d) = elem_ty.dims().map(|d| d.to_vec()) else {
        cx.set_tensor(n, 0, elem, None);
        return Ok(());
    };
    let r = if new_axis { d.len() + 1 } else { d.len() };
    let a = norm_axis(n, out0(n), axis, r)?;
    let mut out = d.clone();
    if new_axis {
        out.insert(
            a,
            items
                .as_ref()
                .map(|v| Dim::Known(v.len() as i64))
                .unwrap_or(Dim::Unknown),
        );
        cx.set_tensor(n, 0, elem, Some(out));
        return Ok(());
    }
    out[a] = Dim::Unknown;
    if let Some(v) = items {
        let mut total = Some(0i64);
        let mut merged = d.clone();
        for t in &v {
            let Some(td) = t.dims() else {
                total = None;
                continue;
            };
            if td.len() != d.len() {
                return Err(node_err(n, out0(n), "sequence elements differ in rank"));
            }
            total = total.zip(td[a].known()).map(|(x, y)| x + y);
            for i in 0..td.len() {
                if i != a {
                    merged[i] =
                        merge_dim(&merged[i], &td[i]).map_err(|e| node_err(n, out0(n), e))?;
                }
            }
        }
        merged[a] = total.map(Dim::Known).unwrap_or(Dim::Unknown);
        out = merged;
    }
    cx.set_tensor(n, 0, elem, Some(out));
    Ok(())
}
