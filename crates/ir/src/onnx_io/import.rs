//! Reading ONNX files into the IR.

use super::external::load_external;
use super::type_proto::value_type_from_proto;
use crate::error::{Error, Result};
use crate::ir::{DataType, Graph, Model, Node, ValueType};
use onnx_protobuf::{GraphProto, Message, ModelProto, ValueInfoProto};
use std::path::Path;

/// Oldest and newest IR versions we accept (onnxruntime 1.31 reads this range).
pub const MIN_IR_VERSION: i64 = 3;
pub const MAX_IR_VERSION: i64 = 12;

/// Reads, parses and links a model file. Every failure names the file and the problem.
pub fn load_model(path: &Path) -> Result<Model> {
    let bytes = crate::bounded_read::read_regular(path, "ONNX model file")?;
    model_from_bytes(&bytes, path)
}

/// Parses model bytes; `path` is used for messages and to resolve external data.
pub fn model_from_bytes(bytes: &[u8], path: &Path) -> Result<Model> {
    if bytes.is_empty() {
        return Err(Error::input(path, "empty file, not an ONNX model"));
    }
    let proto = parse_exact(bytes).map_err(|e| super::limits::parse_error(path, e))?;
    model_from_proto(proto, path)
}

/// Parses a ModelProto whose every length prefix must fit inside `bytes`.
///
/// `ModelProto::parse_from_bytes` starts with no limit, so a truncated file whose last
/// submessage claims more bytes than remain parses "successfully" with fields missing.
/// Setting the outer limit to the buffer length makes such a length prefix an error.
fn parse_exact(bytes: &[u8]) -> protobuf::Result<ModelProto> {
    let mut is = protobuf::CodedInputStream::from_bytes(bytes);
    is.push_limit(bytes.len() as u64)?;
    let mut proto = ModelProto::new();
    proto.merge_from(&mut is)?;
    is.check_eof()?;
    Ok(proto)
}

/// Converts a parsed ModelProto into the IR, loading external data and linking the graph.
pub fn model_from_proto(mut proto: ModelProto, path: &Path) -> Result<Model> {
    super::limits::check_model_proto(&proto, path)?;
    let Some(graph) = proto.graph.take() else {
        return Err(Error::input(path, "not an ONNX model: it has no graph"));
    };
    if proto.ir_version <= 0 {
        return Err(Error::input(
            path,
            "not an ONNX model: ir_version is missing",
        ));
    }
    if !(MIN_IR_VERSION..=MAX_IR_VERSION).contains(&proto.ir_version) {
        return Err(Error::input(
            path,
            format!(
                "unsupported IR version {} (supported: {MIN_IR_VERSION} to {MAX_IR_VERSION})",
                proto.ir_version
            ),
        ));
    }
    if proto.opset_import.is_empty() {
        return Err(Error::input(
            path,
            "not a valid ONNX model: it imports no operator set (opset_import is empty; a truncated file?)",
        ));
    }
    let mut external_data_files = Vec::new();
    let graph = graph_from_proto(graph, path, &mut external_data_files)?;
    Ok(Model {
        ir_version: proto.ir_version,
        opsets: proto
            .opset_import
            .iter()
            .map(|o| (o.domain.clone(), o.version))
            .collect(),
        producer_name: proto.producer_name,
        producer_version: proto.producer_version,
        domain: proto.domain,
        model_version: proto.model_version,
        doc_string: proto.doc_string,
        metadata_props: proto.metadata_props,
        functions: proto.functions,
        training_info: proto.training_info,
        graph,
        had_external_data: !external_data_files.is_empty(),
        external_data_files,
    })
}

fn declare(g: &mut Graph, vi: ValueInfoProto) {
    let ty = vi.type_.as_ref().and_then(value_type_from_proto);
    let entry = g.values.entry(vi.name.clone()).or_default();
    if entry.ty.is_none() {
        entry.ty = ty;
    }
    if entry.declared.is_none() {
        entry.declared = Some(vi);
    }
}

/// Builds the IR graph; the files external data was read from are added to `external`.
fn graph_from_proto(
    mut gp: GraphProto,
    path: &Path,
    external: &mut Vec<std::path::PathBuf>,
) -> Result<Graph> {
    let mut g = Graph::default();
    g.name = gp.name;
    g.doc_string = gp.doc_string;
    for mut t in gp.initializer.drain(..) {
        if let Some(f) = load_external(&mut t, path)? {
            if !external.contains(&f) {
                external.push(f);
            }
        }
        if t.name.is_empty() {
            return Err(Error::input(path, "an initializer has no name"));
        }
        let ty = DataType::from_onnx(t.data_type)
            .map(|elem| ValueType::tensor(elem, &t.dims))
            .ok_or_else(|| {
                Error::input(
                    path,
                    format!(
                        "initializer '{}' has unknown data type {}",
                        t.name, t.data_type
                    ),
                )
            })?;
        g.values.entry(t.name.clone()).or_default().ty = Some(ty);
        if g.initializers.insert(t.name.clone(), t).is_some() {
            return Err(Error::input(path, "two initializers share a name"));
        }
    }
    g.sparse_initializers = gp.sparse_initializer;
    // Graph outputs and value_info are recorded before inputs so an input's declared type wins.
    g.inputs = gp.input.iter().map(|v| v.name.clone()).collect();
    g.outputs = gp.output.iter().map(|v| v.name.clone()).collect();
    g.value_info_names = gp.value_info.iter().map(|v| v.name.clone()).collect();
    for vi in gp.input {
        if let Some(entry) = g.values.get_mut(&vi.name) {
            // An initializer that is also listed as input (IR < 4 style): keep its declaration.
            entry.declared = Some(vi);
        } else {
            declare(&mut g, vi);
        }
    }
    // A name declared in several roles (an input that is also an output) keeps its first declaration.
    for vi in gp.output.into_iter().chain(gp.value_info) {
        declare(&mut g, vi);
    }
    g.quantization_annotation = gp.quantization_annotation;
    g.metadata_props = gp.metadata_props;
    for np in gp.node {
        let mut node = Node {
            name: np.name,
            op_type: np.op_type,
            domain: np.domain,
            overload: np.overload,
            inputs: np.input,
            outputs: np.output,
            attributes: np.attribute,
            doc_string: np.doc_string,
            metadata_props: np.metadata_props,
        };
        for a in &mut node.attributes {
            if let Some(t) = a.t.as_mut() {
                if let Some(f) = load_external(t, path)? {
                    if !external.contains(&f) {
                        external.push(f);
                    }
                }
            }
        }
        g.add_node(node);
    }
    g.relink().map_err(|e| Error::input(path, e))?;
    Ok(g)
}
