//! The tiling view of a model: operators in the model's order with their class
//! ([`super::classify`]), the activation tensors they exchange (NCHW: rows of H, columns
//! of W, `pixel` bytes per (h, w) across N and C), and the constant subgraph kept aside.
//!
//! * Static nodes (every input a constant, e.g. the ConstantOfShape weights of the light
//!   models or DequantizeLinear of int8 weights) are not operators here: their outputs
//!   are weights.
//! * A DequantizeLinear read by exactly one tiled operator is *attached* to it: the
//!   operator reads the quantized tensor directly and the rewrite gives every tile its
//!   own copy of the DequantizeLinear, so onnxruntime still fuses DQ → op → Q into integer
//!   kernels tile by tile (a shared DQ would block the fusion).

use super::classify::{classify, is_elementwise, Class, Kind, Map, Shapes};
use optimize_ir::ir::{DataType, Graph, Model, Node, Source, ValueType};
use petgraph::stable_graph::NodeIndex;
use std::collections::{HashMap, HashSet};

pub type TId = usize;
pub type XId = usize;

/// An activation input of an operator.
#[derive(Clone, Debug)]
pub struct SInput {
    pub tensor: TId,
    /// The ONNX input slot.
    pub slot: usize,
    pub map: Map,
    /// The attached DequantizeLinear between the tensor and the slot.
    pub dq: Option<NodeIndex>,
}

/// A constant input (weights, scales, shapes), read whole.
#[derive(Clone, Debug)]
pub struct Static {
    pub slot: usize,
    /// The attached DequantizeLinear that produces it.
    pub dq: Option<NodeIndex>,
}

#[derive(Clone, Debug)]
pub struct SOp {
    pub node: NodeIndex,
    pub name: String,
    pub op_type: String,
    pub kind: Kind,
    pub inputs: Vec<SInput>,
    pub statics: Vec<Static>,
    pub outputs: Vec<TId>,
    /// Bytes of the constant inputs (what weights-in-scratchpad must hold).
    pub weight_bytes: u64,
    pub macs: u64,
    pub macs_per_pixel: u64,
    /// Output (h, w) depends only on inputs at (h, w): eligible to overwrite an input.
    pub elementwise: bool,
    pub why: Option<String>,
}

impl SOp {
    pub fn output(&self) -> TId {
        self.outputs[0]
    }
}

#[derive(Clone, Debug)]
pub struct STensor {
    pub name: String,
    pub elem: DataType,
    pub dims: Vec<i64>,
    /// Rows and columns (1 × 1 for tensors that are not 4-D).
    pub h: i64,
    pub w: i64,
    /// Bytes of one (h, w) position across N and C (all bytes for non-4-D tensors).
    pub pixel: u64,
    pub bytes: u64,
    pub producer: Option<XId>,
    pub consumers: Vec<XId>,
    pub graph_input: bool,
    pub graph_output: bool,
}

impl STensor {
    /// Bytes of a region of `rows × cols`.
    pub fn region(&self, rows: i64, cols: i64) -> u64 {
        (rows.max(0) as u64) * (cols.max(0) as u64) * self.pixel
    }
}

#[derive(Clone, Debug)]
pub struct SGraph {
    pub ops: Vec<SOp>,
    pub tensors: Vec<STensor>,
    pub alignment: u64,
    /// Weights must sit in the scratchpad while their operator runs.
    pub weights_tracked: bool,
    /// Static nodes and attached DequantizeLinear nodes, in model order.
    pub kept: Vec<NodeIndex>,
    pub attached: HashSet<NodeIndex>,
}

fn tensor_type(g: &Graph, name: &str) -> Result<(DataType, Vec<i64>), String> {
    match g.value_type(name) {
        Some(ValueType::Tensor { elem, shape }) => match optimize_ir::ir::types::static_dims(shape) {
            Some(d) => Ok((*elem, d)),
            None => Err(format!(
                "tensor '{name}' has a dynamic shape: bind the model's symbolic input dimensions with --input-shape NAME=DIMS so the tiling knows every size"
            )),
        },
        _ => Err(format!(
            "tensor '{name}' has no known tensor type: bind the model's input shapes with --input-shape"
        )),
    }
}

/// Nodes whose every input is a constant, and the names they define.
fn statics(g: &Graph) -> (Vec<NodeIndex>, HashSet<String>) {
    let mut names: HashSet<String> = g
        .initializers
        .keys()
        .filter(|k| !g.runtime_inputs().contains(&k.as_str()))
        .cloned()
        .collect();
    let mut nodes = Vec::new();
    for (i, n) in g.nodes() {
        let pure = n.subgraphs().next().is_none() && !n.op_type.starts_with("Random");
        if pure && n.inputs.iter().all(|x| x.is_empty() || names.contains(x)) {
            nodes.push(i);
            names.extend(n.outputs.iter().filter(|o| !o.is_empty()).cloned());
        }
    }
    (nodes, names)
}

/// Per input slot: `None` when absent, else (static dims, is a constant).
type SlotShapes = Vec<Option<(Vec<i64>, bool)>>;

fn shapes_of(g: &Graph, n: &Node, constant: &HashSet<String>) -> Result<SlotShapes, String> {
    n.inputs
        .iter()
        .map(|i| {
            if i.is_empty() {
                return Ok(None);
            }
            let dims = match g.value_type(i) {
                Some(ValueType::Tensor { shape, .. }) => optimize_ir::ir::types::static_dims(shape),
                _ => None,
            };
            match (dims, constant.contains(i)) {
                (Some(d), c) => Ok(Some((d, c))),
                (None, true) => Ok(Some((Vec::new(), true))),
                (None, false) => tensor_type(g, i).map(|(_, d)| Some((d, false))),
            }
        })
        .collect()
}

/// Builds the tiling view of `model` (shapes inferred, graph relinked).
pub fn extract(model: &Model, alignment: u64, weights_tracked: bool) -> Result<SGraph, String> {
    let g = &model.graph;
    let opset = model.opset("").unwrap_or(1);
    let (static_nodes, constant) = statics(g);
    let static_set: HashSet<NodeIndex> = static_nodes.iter().copied().collect();
    let mut readers: HashMap<&str, Vec<NodeIndex>> = HashMap::new();
    for (i, n) in g.nodes() {
        for x in n.inputs.iter().filter(|x| !x.is_empty()) {
            let v = readers.entry(x.as_str()).or_default();
            if !v.contains(&i) {
                v.push(i);
            }
        }
    }
    let outputs: HashSet<&str> = g.outputs.iter().map(|s| s.as_str()).collect();
    // Classify every operator.
    let mut classes: HashMap<NodeIndex, Class> = HashMap::new();
    for (i, n) in g.nodes().filter(|(i, _)| !static_set.contains(i)) {
        let ins = shapes_of(g, n, &constant)?;
        let out = n.outputs.first().filter(|o| !o.is_empty());
        let out_dims = match out {
            Some(o) => tensor_type(g, o)?.1,
            None => Vec::new(),
        };
        let sh = Shapes {
            inputs: &ins,
            output: &out_dims,
            opset,
        };
        classes.insert(i, classify(g, n, &sh));
    }
    // DequantizeLinear nodes read by exactly one tiled operator are attached to it.
    let mut attached = HashSet::new();
    for (i, n) in g.nodes().filter(|(_, n)| n.is("DequantizeLinear")) {
        let Some(out) = n.outputs.first() else {
            continue;
        };
        let readers = readers
            .get(out.as_str())
            .map(|v| v.as_slice())
            .unwrap_or(&[]);
        let scales_const = n
            .inputs
            .iter()
            .skip(1)
            .all(|x| x.is_empty() || constant.contains(x));
        if let [x] = readers {
            let tiled = classes.get(x).is_some_and(|c| c.kind != Kind::Opaque);
            if tiled && scales_const && !outputs.contains(out.as_str()) {
                attached.insert(i);
            }
        }
    }
    build(
        g,
        &static_nodes,
        &constant,
        &classes,
        &attached,
        alignment,
        weights_tracked,
    )
}

fn build(
    g: &Graph,
    static_nodes: &[NodeIndex],
    constant: &HashSet<String>,
    classes: &HashMap<NodeIndex, Class>,
    attached: &HashSet<NodeIndex>,
    alignment: u64,
    weights_tracked: bool,
) -> Result<SGraph, String> {
    let mut sg = SGraph {
        ops: Vec::new(),
        tensors: Vec::new(),
        alignment: alignment.max(1),
        weights_tracked,
        kept: Vec::new(),
        attached: attached.clone(),
    };
    let mut ids: HashMap<String, TId> = HashMap::new();
    let outputs: HashSet<&str> = g.outputs.iter().map(|s| s.as_str()).collect();
    let mut add = |sg: &mut SGraph, name: &str, input: bool| -> Result<TId, String> {
        if let Some(&t) = ids.get(name) {
            return Ok(t);
        }
        let (elem, dims) = tensor_type(g, name)?;
        let (h, w, lead) = if dims.len() == 4 {
            (dims[2], dims[3], (dims[0] * dims[1]).max(0) as u64)
        } else {
            (1, 1, dims.iter().map(|&d| d.max(0) as u64).product())
        };
        sg.tensors.push(STensor {
            name: name.to_string(),
            elem,
            h,
            w,
            pixel: elem.storage_bytes(lead),
            bytes: elem.storage_bytes(lead * (h * w).max(0) as u64),
            dims,
            producer: None,
            consumers: Vec::new(),
            graph_input: input,
            graph_output: outputs.contains(name),
        });
        ids.insert(name.to_string(), sg.tensors.len() - 1);
        Ok(sg.tensors.len() - 1)
    };
    for name in g.runtime_inputs() {
        add(&mut sg, name, true)?;
    }
    let producer_of = |name: &str| match g.source(name) {
        Some(Source::Node(idx, _)) => Some(idx),
        _ => None,
    };
    for (i, n) in g.nodes() {
        if static_nodes.contains(&i) || attached.contains(&i) {
            sg.kept.push(i);
            continue;
        }
        let class = &classes[&i];
        let x = sg.ops.len();
        let mut op = SOp {
            node: i,
            name: if n.name.is_empty() {
                format!("{}#{x}", n.op_type)
            } else {
                n.name.clone()
            },
            op_type: n.op_type.clone(),
            kind: class.kind,
            inputs: Vec::new(),
            statics: Vec::new(),
            outputs: Vec::new(),
            weight_bytes: 0,
            macs: 0,
            macs_per_pixel: class.macs_per_pixel,
            elementwise: class.kind == Kind::Tiled && is_elementwise(n),
            why: class.why.clone(),
        };
        for (slot, name) in n.inputs.iter().enumerate().filter(|(_, s)| !s.is_empty()) {
            let dq = producer_of(name).filter(|p| attached.contains(p));
            let map = class.maps.get(slot).cloned().unwrap_or(Map::Whole);
            // The tensor behind an attached DequantizeLinear, else the input itself.
            let source = match dq {
                Some(d) => g.ops[d].inputs[0].clone(),
                None => name.clone(),
            };
            if constant.contains(&source) {
                op.weight_bytes += match dq {
                    Some(d) => g.ops[d]
                        .inputs
                        .iter()
                        .filter(|s| !s.is_empty())
                        .map(|s| const_bytes(g, s))
                        .sum(),
                    None => const_bytes(g, &source),
                };
                op.statics.push(Static { slot, dq });
            } else {
                let t = add(&mut sg, &source, false)?;
                op.inputs.push(SInput {
                    tensor: t,
                    slot,
                    map,
                    dq,
                });
            }
        }
        for o in n.outputs.iter().filter(|o| !o.is_empty()) {
            let t = add(&mut sg, o, false)?;
            sg.tensors[t].producer = Some(x);
            op.outputs.push(t);
        }
        op.macs = op_macs(&sg, &op);
        for inp in &op.inputs {
            let c = &mut sg.tensors[inp.tensor].consumers;
            if !c.contains(&x) {
                c.push(x);
            }
        }
        sg.ops.push(op);
    }
    Ok(sg)
}

fn const_bytes(g: &Graph, name: &str) -> u64 {
    tensor_type(g, name)
        .map(|(e, d)| e.storage_bytes(d.iter().map(|&v| v.max(0) as u64).product()))
        .unwrap_or(0)
}

fn op_macs(sg: &SGraph, op: &SOp) -> u64 {
    if op.kind == Kind::Opaque || op.outputs.is_empty() {
        return 0;
    }
    let pixels = |t: TId| (sg.tensors[t].h * sg.tensors[t].w).max(0) as u64;
    match op.inputs.first().map(|i| &i.map) {
        Some(Map::Transposed(_)) | Some(Map::Stream) => {
            pixels(op.inputs[0].tensor) * op.macs_per_pixel
        }
        _ => pixels(op.output()) * op.macs_per_pixel,
    }
}
