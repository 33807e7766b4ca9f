//! The machine-readable report (`--report report.json`). Sections are added by the stages
//! that ran; later passes add sections of their own under `sections`.

use crate::error::{Error, Result};
use crate::ir::Model;
use crate::pass_manager::PassRecord;
use crate::validate::ValidationReport;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// Version of the report's layout; bumped when a field changes meaning or disappears.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize)]
pub struct ModelSummary {
    pub path: String,
    pub nodes: usize,
    pub parameters: u64,
    pub bytes: u64,
    pub file_bytes: u64,
    pub ir_version: i64,
    pub opsets: BTreeMap<String, i64>,
}

impl ModelSummary {
    pub fn of(model: &Model, path: &Path) -> ModelSummary {
        let (parameters, bytes) = model.graph.parameter_stats();
        ModelSummary {
            path: path.display().to_string(),
            nodes: model.graph.node_count(),
            parameters,
            bytes,
            file_bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
            ir_version: model.ir_version,
            opsets: model
                .opsets
                .iter()
                .map(|(d, v)| {
                    (
                        if crate::ir::canonical_domain(d).is_empty() {
                            "ai.onnx".to_string()
                        } else {
                            d.clone()
                        },
                        *v,
                    )
                })
                .collect(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool: String,
    pub model: ModelSummary,
    pub output: Option<ModelSummary>,
    pub passes: Vec<PassRecord>,
    pub validation: Option<ValidationReport>,
    /// Sections added by later passes, by name.
    #[serde(flatten)]
    pub sections: BTreeMap<String, serde_json::Value>,
}

impl Report {
    pub fn new(model: ModelSummary) -> Report {
        Report {
            schema_version: REPORT_SCHEMA_VERSION,
            tool: format!("optimize {}", env!("CARGO_PKG_VERSION")),
            model,
            output: None,
            passes: Vec::new(),
            validation: None,
            sections: BTreeMap::new(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// Writes the report atomically (temporary file, then rename).
    pub fn write(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_json().as_bytes())
    }
}

/// Writes bytes to `path` through a temporary file beside it and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // The reason only: tempfile's errors carry the temporary file's path.
    let werr = |e: std::io::Error| {
        Error::input(
            path,
            format!("cannot write: {}", crate::error::io_reason(&e)),
        )
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".optimize-")
        .tempfile_in(dir)
        .map_err(werr)?;
    tmp.write_all(bytes).map_err(werr)?;
    tmp.write_all(b"\n").map_err(werr)?;
    tmp.persist(path).map_err(|e| werr(e.error))?;
    Ok(())
}
