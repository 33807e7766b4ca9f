//! Which operators tile, and how each input's region follows from an output region.
//!
//! An operator tiles (along H and W of NCHW tensors) only where the tiled form computes
//! exactly what the whole operator computes: convolutions and pooling windows with any
//! stride, dilation, group and padding (pads only at the borders, `ceil_mode` by padding
//! the last tile), transposed convolutions whose span is at least their stride, `Resize`
//! with integer upsampling factors (nearest or linear; `align_corners` and the crop modes
//! are global and do not tile), elementwise operators, channel `Concat`, and reductions
//! over H and W (consumed stripe by stripe). Everything else is opaque: it runs whole.

use super::halo::{Coord, Nearest, Resample, WindowAxis};
use optimize_ir::ir::attr::AttrExt;
use optimize_ir::ir::op_table::{self, Trait};
use optimize_ir::ir::{Graph, Node};

/// How the region an operator computes maps to the region one input must supply.
#[derive(Clone, Debug, PartialEq)]
pub enum Map {
    /// The same rows and columns (elementwise, channel concat).
    Same,
    /// The whole input (broadcast tensors, inputs of opaque operators).
    Whole,
    /// A sliding window per axis (H, W).
    Window([WindowAxis; 2]),
    /// A transposed convolution per axis.
    Transposed([WindowAxis; 2]),
    /// Integer upsampling per axis.
    Upsample([Resample; 2]),
    /// Rows in any order, all of them before the output exists (reduction over H, W).
    Stream,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Computes any output region from the corresponding input regions.
    Tiled,
    /// A reduction over H and W: consumes stripes, its output exists after the last.
    Reduce,
    /// Runs whole.
    Opaque,
}

/// What the tiling needs to know about one operator.
#[derive(Clone, Debug)]
pub struct Class {
    pub kind: Kind,
    /// Map per input slot (static inputs included; they are read whole).
    pub maps: Vec<Map>,
    /// Multiply-accumulates per output pixel (per input pixel for a transposed conv).
    pub macs_per_pixel: u64,
    /// Why the operator is opaque.
    pub why: Option<String>,
}

impl Class {
    fn opaque(n: usize, why: impl Into<String>) -> Class {
        Class {
            kind: Kind::Opaque,
            maps: vec![Map::Whole; n],
            macs_per_pixel: 0,
            why: Some(why.into()),
        }
    }
}

/// True for operators whose output at (h, w) depends only on their inputs at (h, w).
pub fn is_elementwise(n: &Node) -> bool {
    op_table::has(&n.domain, &n.op_type, Trait::Pointwise)
}

/// Shapes the classification reads: per input slot `None` for an absent input, else the
/// static dims and whether it is a constant; the static dims of output 0.
pub struct Shapes<'a> {
    pub inputs: &'a [Option<(Vec<i64>, bool)>],
    pub output: &'a [i64],
    pub opset: i64,
}

/// Classifies `n`; `g` gives constant values (Resize scales).
pub fn classify(g: &Graph, n: &Node, sh: &Shapes) -> Class {
    let slots = n.inputs.len();
    let outs = n.outputs.iter().filter(|o| !o.is_empty()).count();
    if outs != 1 || n.outputs.first().is_none_or(|o| o.is_empty()) {
        return Class::opaque(slots, "it has more than one output");
    }
    if sh.output.len() != 4 {
        return Class::opaque(slots, "its output is not a 4-D NCHW tensor");
    }
    let r = match n.op_type.as_str() {
        _ if !optimize_ir::ir::canonical_domain(&n.domain).is_empty() => {
            Err("custom-domain operators run whole".to_string())
        }
        "Conv" | "MaxPool" | "AveragePool" => window(n, sh),
        "ConvTranspose" => transposed(n, sh),
        "Resize" => resize(g, n, sh),
        "Concat" => concat(n, sh),
        "GlobalAveragePool" | "GlobalMaxPool" => reduce(sh),
        "ReduceMean" | "ReduceMax" | "ReduceMin" => reduce_axes(g, n, sh),
        _ if is_elementwise(n) => elementwise(sh),
        other => Err(format!(
            "{other} is not a spatial operator the tiling handles"
        )),
    };
    match r {
        Ok(c) => c,
        Err(why) => Class::opaque(slots, why),
    }
}

fn ints(n: &Node, name: &str) -> Option<Vec<i64>> {
    n.attr(name).and_then(|a| a.as_ints()).map(|v| v.to_vec())
}

fn int(n: &Node, name: &str, default: i64) -> i64 {
    n.attr(name).and_then(|a| a.as_int()).unwrap_or(default)
}

fn string<'a>(n: &'a Node, name: &str, default: &'a str) -> &'a str {
    n.attr(name).and_then(|a| a.as_str()).unwrap_or(default)
}

/// Explicit pads `[top, left, bottom, right]` (auto_pad resolved from the shapes).
fn explicit_pads(
    n: &Node,
    input: [i64; 2],
    output: [i64; 2],
    span: [i64; 2],
    stride: [i64; 2],
) -> Result<[i64; 4], String> {
    match string(n, "auto_pad", "NOTSET") {
        "NOTSET" | "" => match ints(n, "pads") {
            None => Ok([0; 4]),
            Some(p) if p.len() == 4 => Ok([p[0], p[1], p[2], p[3]]),
            Some(p) => Err(format!("pads {p:?} are not 2-D")),
        },
        "VALID" => Ok([0; 4]),
        mode => {
            let mut out = [0; 4];
            for a in 0..2 {
                let total = ((output[a] - 1) * stride[a] + span[a] - input[a]).max(0);
                let begin = if mode == "SAME_LOWER" {
                    total - total / 2
                } else {
                    total / 2
                };
                out[a] = begin;
                out[a + 2] = total - begin;
            }
            Ok(out)
        }
    }
}

/// Conv, MaxPool, AveragePool.
fn window(n: &Node, sh: &Shapes) -> Result<Class, String> {
    let x = sh.inputs[0].as_ref().ok_or("no input")?;
    if x.0.len() != 4 || x.1 {
        return Err("a window over something else than a 4-D activation".into());
    }
    let conv = n.is("Conv");
    let (kernel, per_pixel) = if conv {
        let w = sh
            .inputs
            .get(1)
            .and_then(|w| w.as_ref())
            .ok_or("no weight")?;
        if !w.1 || w.0.len() != 4 {
            return Err("its weight is not a constant 4-D tensor".into());
        }
        let pp = (sh.output[0] * w.0[0] * w.0[1] * w.0[2] * w.0[3]) as u64;
        ([w.0[2], w.0[3]], pp)
    } else {
        let k = ints(n, "kernel_shape").ok_or("no kernel_shape")?;
        if k.len() != 2 {
            return Err("not 2-D".into());
        }
        if int(n, "storage_order", 0) != 0 {
            return Err("storage_order 1".into());
        }
        (
            [k[0], k[1]],
            (sh.output[0] * sh.output[1] * k[0] * k[1]) as u64,
        )
    };
    let strides = ints(n, "strides").unwrap_or(vec![1, 1]);
    let dil = ints(n, "dilations").unwrap_or(vec![1, 1]);
    if strides.len() != 2 || dil.len() != 2 {
        return Err("strides or dilations are not 2-D".into());
    }
    let span = [(kernel[0] - 1) * dil[0] + 1, (kernel[1] - 1) * dil[1] + 1];
    let input = [x.0[2], x.0[3]];
    let output = [sh.output[2], sh.output[3]];
    let pads = explicit_pads(n, input, output, span, [strides[0], strides[1]])?;
    let axes = window_axes([kernel[0], kernel[1]], &strides, &dil, &pads);
    for a in 0..2 {
        if pads[a] >= span[a] || pads[a + 2] >= span[a] || strides[a] < 1 {
            return Err("a pad as wide as the window".into());
        }
        // Ceil mode with count_include_pad: the last window's divisor would change.
        let end = (output[a] - 1) * strides[a] - pads[a] + span[a];
        if n.is("AveragePool")
            && int(n, "count_include_pad", 0) == 1
            && end > input[a] + pads[a + 2]
        {
            return Err(
                "AveragePool ceil_mode with count_include_pad changes the last divisor in a tile"
                    .into(),
            );
        }
    }
    let mut maps = vec![Map::Whole; sh.inputs.len()];
    maps[0] = Map::Window(axes);
    Ok(Class {
        kind: Kind::Tiled,
        maps,
        macs_per_pixel: per_pixel,
        why: None,
    })
}

/// The H and W window axes of a 2-D sliding window: `pads` is ONNX's
/// `[h_begin, w_begin, h_end, w_end]`; strides and dilations have two entries.
fn window_axes(kernel: [i64; 2], strides: &[i64], dil: &[i64], pads: &[i64]) -> [WindowAxis; 2] {
    std::array::from_fn(|a| WindowAxis {
        kernel: kernel[a],
        stride: strides[a],
        dilation: dil[a],
        pad_begin: pads[a],
        pad_end: pads[a + 2],
    })
}

fn transposed(n: &Node, sh: &Shapes) -> Result<Class, String> {
    let x = sh.inputs[0].as_ref().ok_or("no input")?;
    let w = sh
        .inputs
        .get(1)
        .and_then(|w| w.as_ref())
        .ok_or("no weight")?;
    if !w.1 || w.0.len() != 4 || x.0.len() != 4 || x.1 {
        return Err("its weight is not a constant 4-D tensor".into());
    }
    if !matches!(string(n, "auto_pad", "NOTSET"), "NOTSET" | "") || n.attr("output_shape").is_some()
    {
        return Err("ConvTranspose with auto_pad or output_shape".into());
    }
    if ints(n, "output_padding").is_some_and(|p| p.iter().any(|&v| v != 0)) {
        return Err("ConvTranspose with output_padding".into());
    }
    let strides = ints(n, "strides").unwrap_or(vec![1, 1]);
    let dil = ints(n, "dilations").unwrap_or(vec![1, 1]);
    let pads = ints(n, "pads").unwrap_or(vec![0; 4]);
    if strides.len() != 2 || dil.len() != 2 || pads.len() != 4 {
        return Err("not 2-D".into());
    }
    let axes = window_axes([w.0[2], w.0[3]], &strides, &dil, &pads);
    for (a, axis) in axes.iter().enumerate() {
        if axis.span() < strides[a] {
            return Err("ConvTranspose whose kernel is narrower than its stride".into());
        }
    }
    // Weight [C_in, C_out/group, kh, kw]: every input pixel feeds C_out/group × kh × kw.
    let per_pixel = (x.0[0] * w.0[0] * w.0[1] * w.0[2] * w.0[3]) as u64;
    let mut maps = vec![Map::Whole; sh.inputs.len()];
    maps[0] = Map::Transposed(axes);
    Ok(Class {
        kind: Kind::Tiled,
        maps,
        macs_per_pixel: per_pixel,
        why: None,
    })
}

/// `Resize` (opset 11+) with integer upsampling on H and W only.
fn resize(g: &Graph, n: &Node, sh: &Shapes) -> Result<Class, String> {
    if sh.opset < 11 {
        return Err("Resize before opset 11".into());
    }
    let x = sh.inputs[0].as_ref().ok_or("no input")?;
    if x.0.len() != 4 || x.1 {
        return Err("Resize of something else than a 4-D activation".into());
    }
    for slot in 1..sh.inputs.len() {
        if sh.inputs[slot].as_ref().is_some_and(|i| !i.1) {
            return Err("Resize with computed scales or sizes".into());
        }
    }
    if x.0[0] != sh.output[0] || x.0[1] != sh.output[1] {
        return Err("Resize that scales N or C".into());
    }
    if let Some(axes) = ints(n, "axes") {
        if axes != [2, 3] && axes != [-2, -1] {
            return Err("Resize over other axes".into());
        }
    }
    if int(n, "antialias", 0) != 0 {
        return Err("antialiased Resize".into());
    }
    let linear = match string(n, "mode", "nearest") {
        "nearest" => false,
        "linear" => true,
        m => return Err(format!("Resize mode {m}")),
    };
    let coord = match string(n, "coordinate_transformation_mode", "half_pixel") {
        "asymmetric" => Coord::Asymmetric,
        "half_pixel" => Coord::HalfPixel,
        "pytorch_half_pixel" => Coord::PytorchHalfPixel,
        m => {
            return Err(format!(
                "Resize with coordinate_transformation_mode {m} does not tile exactly"
            ))
        }
    };
    let nearest = match string(n, "nearest_mode", "round_prefer_floor") {
        "floor" => Nearest::Floor,
        "ceil" => Nearest::Ceil,
        "round_prefer_ceil" => Nearest::RoundPreferCeil,
        _ => Nearest::RoundPreferFloor,
    };
    let mut axes = [Resample {
        scale: 1,
        linear,
        coord,
        nearest,
    }; 2];
    for (a, axis) in axes.iter_mut().enumerate() {
        let (i, o) = (x.0[2 + a], sh.output[2 + a]);
        if i < 1 || o % i != 0 {
            return Err("Resize by a non-integer factor".into());
        }
        axis.scale = o / i;
    }
    // Given scales must be exactly the integer factors (ONNX floors in × scale).
    if let Some(name) = n.inputs.get(2).filter(|s| !s.is_empty()) {
        let s = constant_f64(g, name).ok_or("Resize scales are not a constant")?;
        let want = [1.0, 1.0, axes[0].scale as f64, axes[1].scale as f64];
        if !s.is_empty() && s != want {
            return Err(format!("Resize scales {s:?} are not integer factors"));
        }
    }
    let per_pixel = (x.0[0] * x.0[1]) as u64 * if linear { 4 } else { 1 };
    let mut maps = vec![Map::Whole; sh.inputs.len()];
    maps[0] = Map::Upsample(axes);
    Ok(Class {
        kind: Kind::Tiled,
        maps,
        macs_per_pixel: per_pixel,
        why: None,
    })
}

fn concat(n: &Node, sh: &Shapes) -> Result<Class, String> {
    let axis = int(n, "axis", 1);
    if axis != 1 && axis != -3 {
        return Err("Concat along H or W ends a cascade".into());
    }
    for i in sh.inputs.iter().flatten() {
        if i.0.len() != 4 || i.0[2] != sh.output[2] || i.0[3] != sh.output[3] {
            return Err("Concat of inputs of other sizes".into());
        }
    }
    let per_pixel = (sh.output[0] * sh.output[1]) as u64;
    Ok(Class {
        kind: Kind::Tiled,
        maps: vec![Map::Same; sh.inputs.len()],
        macs_per_pixel: per_pixel,
        why: None,
    })
}

fn reduce(sh: &Shapes) -> Result<Class, String> {
    if !sh
        .inputs
        .first()
        .is_some_and(|i| i.as_ref().is_some_and(|(d, c)| d.len() == 4 && !c))
    {
        return Err("a reduction of something else than a 4-D activation".into());
    }
    let mut maps = vec![Map::Whole; sh.inputs.len()];
    maps[0] = Map::Stream;
    Ok(Class {
        kind: Kind::Reduce,
        maps,
        macs_per_pixel: (sh.output[0] * sh.output[1]) as u64,
        why: None,
    })
}

fn reduce_axes(g: &Graph, n: &Node, sh: &Shapes) -> Result<Class, String> {
    let axes = match ints(n, "axes") {
        Some(a) => a,
        None => match n.inputs.get(1).filter(|s| !s.is_empty()) {
            Some(name) => constant_f64(g, name)
                .ok_or("reduction axes are not a constant")?
                .into_iter()
                .map(|v| v as i64)
                .collect(),
            None => return Err("a reduction over every axis".into()),
        },
    };
    let mut a: Vec<i64> = axes
        .iter()
        .map(|&v| if v < 0 { v + 4 } else { v })
        .collect();
    a.sort_unstable();
    if a != [2, 3] || int(n, "keepdims", 1) != 1 {
        return Err("a reduction over other axes than H and W".into());
    }
    if sh.output[2] != 1 || sh.output[3] != 1 {
        return Err("a reduction that keeps H or W".into());
    }
    reduce(sh)
}

fn elementwise(sh: &Shapes) -> Result<Class, String> {
    let (h, w) = (sh.output[2], sh.output[3]);
    let mut maps = Vec::with_capacity(sh.inputs.len());
    for i in sh.inputs {
        let m = match i {
            None => Map::Whole,
            Some((_, true)) => Map::Whole,
            Some((d, false)) => {
                let r = d.len();
                let dh = if r >= 2 { d[r - 2] } else { 1 };
                let dw = if r >= 1 { d[r - 1] } else { 1 };
                if r <= 4 && dh == h && dw == w && r == 4 {
                    Map::Same
                } else if dh == 1 && dw == 1 {
                    Map::Whole
                } else {
                    return Err("an elementwise input broadcast along only H or W".into());
                }
            }
        };
        maps.push(m);
    }
    if !maps.contains(&Map::Same) {
        return Err("no input has the output's H and W".into());
    }
    Ok(Class {
        kind: Kind::Tiled,
        maps,
        macs_per_pixel: (sh.output[0] * sh.output[1]) as u64,
        why: None,
    })
}

/// A constant tensor's values (initializer or Constant node).
pub fn constant_f64(g: &Graph, name: &str) -> Option<Vec<f64>> {
    optimize_ir::ir::tensor::to_f64(g.constant_tensor(name)?)
}
