//! Writing the IR back to ONNX, atomically.

use super::external::externalize;
use super::type_proto::value_type_to_proto;
use crate::error::{Error, Result};
use crate::ir::{Graph, Model};
use onnx_protobuf::{
    GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto, ValueInfoProto,
};
use std::io::Write;
use std::path::Path;

/// Tensors at least this large go to the external data file when one is written.
pub const EXTERNAL_DATA_THRESHOLD: usize = 1024;
/// Protobuf cannot hold messages of 2 GiB or more; past this, external data is forced.
const PROTOBUF_LIMIT: u64 = (1 << 31) - 1;

#[derive(Clone, Debug, Default)]
pub struct ExportOptions {
    /// Also write inferred types of intermediate tensors as `value_info`.
    pub with_inferred_value_info: bool,
    /// Force (Some(true)) or forbid (Some(false)) external data; `None` follows the source model.
    pub external_data: Option<bool>,
}

fn value_info(g: &Graph, name: &str) -> ValueInfoProto {
    if let Some(d) = g.values.get(name).and_then(|v| v.declared.clone()) {
        return d;
    }
    let mut vi = ValueInfoProto::new();
    vi.name = name.to_string();
    if let Some(t) = g.value_type(name) {
        vi.type_ = Some(value_type_to_proto(t)).into();
    }
    vi
}

/// Builds the GraphProto: nodes in `g.order`, declarations as imported.
pub fn graph_to_proto(g: &Graph, opts: &ExportOptions) -> GraphProto {
    let mut gp = GraphProto::new();
    gp.name = g.name.clone();
    gp.doc_string = g.doc_string.clone();
    gp.node = g
        .nodes()
        .map(|(_, n)| {
            let mut np = NodeProto::new();
            np.name = n.name.clone();
            np.op_type = n.op_type.clone();
            np.domain = n.domain.clone();
            np.overload = n.overload.clone();
            np.input = n.inputs.clone();
            np.output = n.outputs.clone();
            np.attribute = n.attributes.clone();
            np.doc_string = n.doc_string.clone();
            np.metadata_props = n.metadata_props.clone();
            np
        })
        .collect();
    gp.initializer = g.initializers.values().cloned().collect();
    gp.sparse_initializer = g.sparse_initializers.clone();
    gp.input = g.inputs.iter().map(|n| value_info(g, n)).collect();
    gp.output = g.outputs.iter().map(|n| value_info(g, n)).collect();
    gp.value_info = g
        .value_info_names
        .iter()
        .map(|n| value_info(g, n))
        .collect();
    if opts.with_inferred_value_info {
        let mut known: std::collections::HashSet<&str> =
            g.value_info_names.iter().map(|s| s.as_str()).collect();
        known.extend(g.inputs.iter().map(|s| s.as_str()));
        known.extend(g.outputs.iter().map(|s| s.as_str()));
        for (_, n) in g.nodes() {
            for o in n.outputs.iter().filter(|o| !o.is_empty()) {
                if known.insert(o.as_str()) && g.value_type(o).is_some() {
                    gp.value_info.push(value_info(g, o));
                }
            }
        }
    }
    gp.quantization_annotation = g.quantization_annotation.clone();
    gp.metadata_props = g.metadata_props.clone();
    gp
}

/// Builds the ModelProto for a model.
pub fn to_proto(m: &Model, opts: &ExportOptions) -> ModelProto {
    let mut p = ModelProto::new();
    p.ir_version = m.ir_version;
    p.opset_import = m
        .opsets
        .iter()
        .map(|(d, v)| {
            let mut o = OperatorSetIdProto::new();
            o.domain = d.clone();
            o.version = *v;
            o
        })
        .collect();
    p.producer_name = m.producer_name.clone();
    p.producer_version = m.producer_version.clone();
    p.domain = m.domain.clone();
    p.model_version = m.model_version;
    p.doc_string = m.doc_string.clone();
    p.metadata_props = m.metadata_props.clone();
    p.functions = m.functions.clone();
    p.training_info = m.training_info.clone();
    p.graph = Some(graph_to_proto(&m.graph, opts)).into();
    p
}

/// Serializes a model to bytes (inline data only).
pub fn to_bytes(m: &Model, opts: &ExportOptions) -> Result<Vec<u8>> {
    to_proto(m, opts)
        .write_to_bytes()
        .map_err(|e| Error::Internal(format!("cannot serialize model: {e}")))
}

/// Whether [`save_model`] writes `<file name>.data` beside the model: when asked to, or
/// by default when the input had external data or the tensors reach protobuf's 2 GiB limit.
pub fn writes_external_data(m: &Model, opts: &ExportOptions) -> bool {
    let inline_bytes: u64 = m
        .graph
        .initializers
        .values()
        .map(|t| t.raw_data.len() as u64)
        .sum();
    opts.external_data
        .unwrap_or(m.had_external_data || inline_bytes >= PROTOBUF_LIMIT)
}

/// Writes `m` to `path` atomically (temporary file beside it, then rename). External data,
/// when written, goes to `<file name>.data` beside the model, also atomically.
pub fn save_model(m: &Model, path: &Path, opts: &ExportOptions) -> Result<()> {
    let mut proto = to_proto(m, opts);
    let external = writes_external_data(m, opts);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .and_then(|f| f.to_str())
        .ok_or_else(|| Error::input(path, "output path has no usable file name"))?;
    // The reason only: tempfile's errors carry the temporary file's path.
    let werr = |e: std::io::Error| {
        Error::input(
            path,
            format!("cannot write output: {}", crate::error::io_reason(&e)),
        )
    };
    let mut data_tmp = None;
    if external {
        let location = format!("{file_name}.data");
        let mut tmp = tempfile::Builder::new()
            .prefix(".optimize-")
            .tempfile_in(dir)
            .map_err(werr)?;
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        let graph = proto
            .graph
            .as_mut()
            .ok_or_else(|| Error::Internal("model without graph".into()))?;
        externalize(
            graph.initializer.iter_mut(),
            EXTERNAL_DATA_THRESHOLD,
            &location,
            &mut w,
        )
        .map_err(werr)?;
        w.flush().map_err(werr)?;
        drop(w);
        data_tmp = Some((tmp, dir.join(location)));
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".optimize-")
        .tempfile_in(dir)
        .map_err(werr)?;
    {
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        proto
            .write_to_writer(&mut w)
            .map_err(|e| Error::input(path, format!("cannot write output: {e}")))?;
        w.flush().map_err(werr)?;
    }
    tmp.as_file().sync_all().map_err(werr)?;
    if let Some((data, data_path)) = data_tmp {
        data.as_file().sync_all().map_err(werr)?;
        data.persist(&data_path).map_err(|e| werr(e.error))?;
    }
    tmp.persist(path).map_err(|e| werr(e.error))?;
    Ok(())
}
