//! Convolutions and pooling: Conv, ConvTranspose, MaxPool, AveragePool, LpPool, Global*Pool.

use super::elementwise::out0;
use super::{attr_i_or, attr_ints, attr_s, node_err, Ctx, Res};
use crate::ir::{DataType, Dim, Node};

/// How padding is chosen (`auto_pad`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoPad {
    NotSet,
    SameUpper,
    SameLower,
    Valid,
}

impl AutoPad {
    fn parse(n: &Node) -> Res<AutoPad> {
        Ok(match attr_s(n, "auto_pad").unwrap_or("NOTSET") {
            "NOTSET" | "" => AutoPad::NotSet,
            "SAME_UPPER" => AutoPad::SameUpper,
            "SAME_LOWER" => AutoPad::SameLower,
            "VALID" => AutoPad::Valid,
            other => return Err(node_err(n, out0(n), format!("unknown auto_pad '{other}'"))),
        })
    }
}

/// One spatial axis of a sliding window.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub kernel: i64,
    pub stride: i64,
    pub dilation: i64,
    pub pad_begin: i64,
    pub pad_end: i64,
}

/// Output size of a convolution or pooling window over `input` elements, as onnxruntime
/// computes it (pooling's `ceil_mode` drops a last window that would start in the padding).
pub fn window_out(
    input: i64,
    w: Window,
    auto_pad: AutoPad,
    ceil_mode: bool,
) -> Result<i64, String> {
    if w.stride <= 0 || w.dilation <= 0 || w.kernel <= 0 {
        return Err(format!(
            "invalid kernel {} / stride {} / dilation {}",
            w.kernel, w.stride, w.dilation
        ));
    }
    let (input, stride) = (input as i128, w.stride as i128);
    let span = (w.kernel as i128 - 1) * w.dilation as i128 + 1;
    let (pb, pe) = match auto_pad {
        AutoPad::SameUpper | AutoPad::SameLower => {
            return Ok(((input + stride - 1) / stride) as i64)
        }
        AutoPad::Valid => (0, 0),
        AutoPad::NotSet => (w.pad_begin as i128, w.pad_end as i128),
    };
    let num = input + pb + pe - span;
    if num < 0 {
        return Err(format!(
            "window of size {span} (kernel {}, dilation {}) does not fit input size {input} with pads {pb}+{pe}",
            w.kernel, w.dilation
        ));
    }
    let mut out = num / stride + 1;
    if ceil_mode {
        out = (num + stride - 1) / stride + 1;
        if (out - 1) * stride >= input + pb {
            out -= 1;
        }
    }
    i64::try_from(out).map_err(|_| format!("output size {out} overflows"))
}

/// Output size of a transposed convolution.
pub fn transpose_out(input: i64, w: Window, output_padding: i64, auto_pad: AutoPad) -> i64 {
    let (i, s, k, d) = (
        input as i128,
        w.stride as i128,
        w.kernel as i128,
        w.dilation as i128,
    );
    let full = s * (i - 1) + output_padding as i128 + (k - 1) * d + 1;
    let out = match auto_pad {
        AutoPad::SameUpper | AutoPad::SameLower => i * s,
        AutoPad::Valid => full,
        AutoPad::NotSet => full - w.pad_begin as i128 - w.pad_end as i128,
    };
    out.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

pub(crate) fn infer(cx: &mut Ctx, n: &Node, op: &str) -> Res<bool> {
    match op {
        "Conv" | "ConvInteger" | "QLinearConv" => conv(cx, n, op)?,
        "ConvTranspose" => conv_transpose(cx, n)?,
        "MaxPool" | "AveragePool" | "LpPool" => pool(cx, n, op)?,
        "GlobalAveragePool" | "GlobalMaxPool" | "GlobalLpPool" => {
            let Some(elem) = cx.elem(n, 0) else {
                return Ok(true);
            };
            let shape = cx.dims(n, 0).map(|d| {
                d.iter()
                    .enumerate()
                    .map(|(i, x)| if i < 2 { x.clone() } else { Dim::Known(1) })
                    .collect()
            });
            cx.set_tensor(n, 0, elem, shape);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Window parameters for `nsp` spatial axes from the node's attributes.
fn windows(n: &Node, kernel: &[i64], nsp: usize) -> Res<Vec<Window>> {
    let o = out0(n);
    let strides = attr_ints(n, "strides").unwrap_or_else(|| vec![1; nsp]);
    let dil = attr_ints(n, "dilations").unwrap_or_else(|| vec![1; nsp]);
    let pads = attr_ints(n, "pads").unwrap_or_else(|| vec![0; 2 * nsp]);
    if kernel.len() != nsp || strides.len() != nsp || dil.len() != nsp || pads.len() != 2 * nsp {
        return Err(node_err(
            n,
            o,
            format!(
                "{nsp} spatial axes, but kernel {kernel:?}, strides {strides:?}, dilations {dil:?}, pads {pads:?}"
            ),
        ));
    }
    Ok((0..nsp)
        .map(|i| Window {
            kernel: kernel[i],
            stride: strides[i],
            dilation: dil[i],
            pad_begin: pads[i],
            pad_end: pads[i + nsp],
        })
        .collect())
}

fn spatial_out(
    n: &Node,
    x: &[Dim],
    ws: &[Window],
    auto_pad: AutoPad,
    ceil_mode: bool,
) -> Res<Vec<Dim>> {
    let mut out = Vec::with_capacity(ws.len());
    for (i, w) in ws.iter().enumerate() {
        out.push(match &x[2 + i] {
            Dim::Known(v) => Dim::Known(
                window_out(*v, *w, auto_pad, ceil_mode)
                    .map_err(|e| node_err(n, out0(n), format!("spatial axis {i}: {e}")))?,
            ),
            _ => Dim::Unknown,
        });
    }
    Ok(out)
}

fn conv(cx: &mut Ctx, n: &Node, op: &str) -> Res {
    // QLinearConv: x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp.
    let (wi, out_elem) = match op {
        "QLinearConv" => (3, cx.elem(n, 7).or_else(|| cx.elem(n, 0))),
        "ConvInteger" => (1, Some(DataType::Int32)),
        _ => (1, cx.elem(n, 0)),
    };
    let Some(elem) = out_elem else { return Ok(()) };
    let (Some(x), wd) = (cx.dims(n, 0), cx.dims(n, wi)) else {
        cx.set_tensor(n, 0, elem, cx.rank(n, wi).map(|r| vec![Dim::Unknown; r]));
        return Ok(());
    };
    if x.len() < 3 {
        return Err(node_err(
            n,
            &n.inputs[0],
            format!("Conv input must have rank >= 3, got {}", x.len()),
        ));
    }
    let nsp = x.len() - 2;
    let kernel = match attr_ints(n, "kernel_shape") {
        Some(k) => Some(k),
        None => wd.as_ref().and_then(|w| {
            w.get(2..)
                .and_then(|s| s.iter().map(|d| d.known()).collect())
        }),
    };
    let m = wd
        .as_ref()
        .and_then(|w| w.first().cloned())
        .unwrap_or(Dim::Unknown);
    let mut out = vec![x[0].clone(), m];
    match kernel {
        Some(k) => {
            let ws = windows(n, &k, nsp)?;
            out.extend(spatial_out(n, &x, &ws, AutoPad::parse(n)?, false)?);
        }
        None => out.extend(std::iter::repeat_n(Dim::Unknown, nsp)),
    }
    cx.set_tensor(n, 0, elem, Some(out));
    Ok(())
}

fn conv_transpose(cx: &mut Ctx, n: &Node) -> Res {
    let Some(elem) = cx.elem(n, 0) else {
        return Ok(());
    };
    let (Some(x), wd) = (cx.dims(n, 0), cx.dims(n, 1)) else {
        cx.set_tensor(n, 0, elem, cx.rank(n, 1).map(|r| vec![Dim::Unknown; r]));
        return Ok(());
    };
    if x.len() < 3 {
        return Err(node_err(
            n,
            &n.inputs[0],
            format!("ConvTranspose input must have rank >= 3, got {}", x.len()),
        ));
    }
    let nsp = x.len() - 2;
    let group = attr_i_or(n, "group", 1);
    let m = match wd.as_ref().and_then(|w| w.get(1).cloned()) {
        Some(Dim::Known(v)) => Dim::Known(v * group),
        Some(other) if group == 1 => other,
        _ => Dim::Unknown,
    };
    let mut out = vec![x[0].clone(), m];
    if let Some(os) = attr_ints(n, "output_shape") {
        let tail = if os.len() == nsp + 2 {
            &os[2..]
        } else {
            &os[..]
        };
        if tail.len() != nsp {
            return Err(node_err(
                n,
                out0(n),
                format!("output_shape {os:?} does not match {nsp} spatial axes"),
            ));
        }
        out.extend(tail.iter().map(|&v| Dim::Known(v)));
        cx.set_tensor(n, 0, elem, Some(out));
        return Ok(());
    }
    let kernel = match attr_ints(n, "kernel_shape") {
        Some(k) => Some(k),
        None => wd.as_ref().and_then(|w| {
            w.get(2..)
                .and_then(|s| s.iter().map(|d| d.known()).collect())
        }),
    };
    let Some(kernel) = kernel else {
        out.extend(std::iter::repeat_n(Dim::Unknown, nsp));
        cx.set_tensor(n, 0, elem, Some(out));
        return Ok(());
    };
    let ws = windows(n, &kernel, nsp)?;
    let op = attr_ints(n, "output_padding").unwrap_or_else(|| vec![0; nsp]);
    if op.len() != nsp {
        return Err(node_err(
            n,
            out0(n),
            format!("output_padding {op:?} does not match {nsp} spatial axes"),
        ));
    }
    let ap = AutoPad::parse(n)?;
    for i in 0..nsp {
        out.push(match x[2 + i].known() {
            Some(v) => {
                let o = transpose_out(v, ws[i], op[i], ap);
                if o < 0 {
                    return Err(node_err(
                        n,
                        out0(n),
                        format!("spatial axis {i}: negative output size {o}"),
                    ));
                }
                Dim::Known(o)
            }
            None => Dim::Unknown,
        });
    }
    cx.set_tensor(n, 0, elem, Some(out));
    Ok(())
}

fn pool(cx: &mut Ctx, n: &Node, op: &str) -> Res {
    let Some(elem) = cx.elem(n, 0) else {
        return Ok(());
    };
    let Some(x) = cx.dims(n, 0) else {
        cx.set_tensor(n, 0, elem, None);
        if op == "MaxPool" {
            cx.set_tensor(n, 1, DataType::Int64, None);
        }
        return Ok(());
    };
    if x.len() < 3 {
        return Err(node_err(
            n,
            &n.inputs[0],
            format!("{op} input must have rank >= 3, got {}", x.len()),
        ));
    }
    let nsp = x.len() - 2;
    let kernel = attr_ints(n, "kernel_shape")
        .ok_or_else(|| node_err(n, out0(n), "missing attribute kernel_shape"))?;
    let ws = windows(n, &kernel, nsp)?;
    let ceil_mode = attr_i_or(n, "ceil_mode", 0) != 0;
    let mut out = vec![x[0].clone(), x[1].clone()];
    out.extend(spatial_out(n, &x, &ws, AutoPad::parse(n)?, ceil_mode)?);
    cx.set_tensor(n, 0, elem, Some(out.clone()));
    if op == "MaxPool" {
        cx.set_tensor(n, 1, DataType::Int64, Some(out));
    }
    Ok(())
}
