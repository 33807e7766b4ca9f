//! Forward activations from one real onnxruntime run with every intermediate tensor
//! exposed as an output, plus the model's initializers, readable as f64 tensors.

use super::tensor::{reshape, T};
use crate::data::HostTensor;
use crate::error::{Error, Result};
use crate::ir::tensor::to_f64;
use crate::ir::Model;
use crate::onnx_io::{save_model, ExportOptions};
use crate::runtime::intermediates::expose_intermediates;
use crate::runtime::OrtRuntime;
use ndarray::{ArrayD, IxDyn};
use std::collections::HashMap;

/// Every tensor value of one forward pass, by name.
pub struct Activations {
    values: HashMap<String, HostTensor>,
    consts: HashMap<String, T>,
}

impl Activations {
    /// Runs `model` (whose types were inferred) once on onnxruntime with all intermediates
    /// exposed, and keeps every output, the fed inputs and the initializers.
    pub fn collect(model: &Model, inputs: &[(String, HostTensor)]) -> Result<Activations> {
        let (exposed, _) = expose_intermediates(model);
        let dir = tempfile::tempdir()
            .map_err(|e| Error::Runtime(format!("cannot create a temporary folder: {e}")))?;
        let path = dir.path().join("relevance_forward.onnx");
        save_model(&exposed, &path, &ExportOptions::default())?;
        let mut session = OrtRuntime::get()?.session_from_file(&path)?;
        let outs = session.run(inputs)?;
        let mut values: HashMap<String, HostTensor> = outs.into_iter().collect();
        for (n, t) in inputs {
            values.insert(n.clone(), t.clone());
        }
        let mut consts = HashMap::new();
        for (name, t) in &model.graph.initializers {
            if let Some(v) = to_f64(t) {
                let dims: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
                if let Ok(a) = ArrayD::from_shape_vec(IxDyn(&dims), v) {
                    consts.insert(name.clone(), a);
                }
            }
        }
        Ok(Activations { values, consts })
    }

    /// Activations from given values only (tests, or values computed elsewhere).
    pub fn from_values(values: HashMap<String, T>) -> Activations {
        Activations {
            values: HashMap::new(),
            consts: values,
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.values.contains_key(name) || self.consts.contains_key(name)
    }

    /// The value of `name` as f64.
    pub fn get(&self, name: &str) -> std::result::Result<T, String> {
        if let Some(c) = self.consts.get(name) {
            return Ok(c.clone());
        }
        let t = self
            .values
            .get(name)
            .ok_or_else(|| format!("no value recorded for tensor '{name}'"))?;
        let v = t
            .to_f64()
            .ok_or_else(|| format!("tensor '{name}' ({}) has no numeric view", t.type_string()))?;
        reshape(
            ArrayD::from_shape_vec(IxDyn(&[v.len()]), v).map_err(|e| e.to_string())?,
            &t.shape,
        )
    }

    /// The shape of `name`.
    pub fn shape(&self, name: &str) -> std::result::Result<Vec<usize>, String> {
        if let Some(c) = self.consts.get(name) {
            return Ok(c.shape().to_vec());
        }
        self.values
            .get(name)
            .map(|t| t.shape.clone())
            .ok_or_else(|| format!("no value recorded for tensor '{name}'"))
    }

    /// The value of `name` as integers (axes, shapes, indices).
    pub fn ints(&self, name: &str) -> std::result::Result<Vec<i64>, String> {
        Ok(self.get(name)?.iter().map(|&v| v as i64).collect())
    }
}
