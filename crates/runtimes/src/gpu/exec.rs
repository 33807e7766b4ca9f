//! What one node's op code sees while the executor runs: the plan's types and constants
//! ([`Plan`], [`TInfo`]), the device state kept across runs ([`Runtime`]) and the run in
//! progress ([`Exec`]: inputs, outputs, uploads, dispatch). It sits below both the executor
//! and the op files under `ops/`, so that the ops need not import the executor that calls them.

use super::buffers::{BufferPool, TENSOR_USAGE};
use super::device::GpuDevice;
use super::host::{is_float_class, HVal};
use super::kernels;
use optimize_ir::error::{Error, Result};
use optimize_ir::ir::{DataType, Node};
use std::collections::HashMap;
use std::sync::Arc;
use wgpu::util::DeviceExt;

/// Dtype and static shape of a tensor.
#[derive(Clone, Debug)]
pub struct TInfo {
    pub dtype: DataType,
    pub shape: Vec<usize>,
}

impl TInfo {
    pub fn count(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Everything known before running: the graph, tensor types, folded constants, liveness.
pub struct Plan {
    pub nodes: Vec<Node>,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub infos: HashMap<String, TInfo>,
    /// Host-known values: initializers, Constants and folded shape subgraphs.
    pub consts: HashMap<String, HVal>,
    /// Per node: true when it was folded on the host (not run on the device).
    pub folded: Vec<bool>,
    /// Per node: the device tensors read for the last time by it.
    pub dies_after: Vec<Vec<String>>,
    pub opset: i64,
}

/// A tensor larger than the device's largest storage binding, held as blocks of whole rows
/// along its first dimension, each block its own buffer under the limit. Only the ops that
/// know how to read blocks take one (Gemm and MatMul as the weight, filled by
/// ConstantOfShape or uploaded from a constant); any other reader is an error naming the limit.
pub struct Chunked {
    /// Rows (first dimension) and elements per row.
    pub rows: usize,
    pub row_len: usize,
    /// (first row, rows, buffer) per block, in order.
    pub blocks: Vec<(usize, usize, Arc<wgpu::Buffer>)>,
}

impl Chunked {
    /// Row blocks of a `rows × row_len` tensor of 32-bit words, balanced, each at most
    /// `max_bytes`; an error naming the limit when a single row does not fit.
    pub fn layout(
        name: &str,
        rows: usize,
        row_len: usize,
        max_bytes: u64,
    ) -> Result<Vec<(usize, usize)>> {
        let row_bytes = row_len as u64 * 4;
        if row_bytes > max_bytes || rows == 0 {
            return Err(Error::Runtime(format!(
                "wgpu: tensor '{name}' cannot be split into row blocks under the device's \
                 max_storage_buffer_binding_size ({max_bytes} bytes): one row takes {row_bytes} bytes"
            )));
        }
        let per_block_max = (max_bytes / row_bytes) as usize;
        let n = rows.div_ceil(per_block_max);
        let per = rows.div_ceil(n);
        Ok((0..n)
            .map(|b| (b * per, per.min(rows - b * per)))
            .filter(|&(_, r)| r > 0)
            .collect())
    }
}

/// Device state kept across runs.
pub struct Runtime {
    pub gpu: GpuDevice,
    pub(super) pipelines: HashMap<String, Arc<wgpu::ComputePipeline>>,
    /// Uploaded host-known tensors (constants never change between runs).
    pub(super) uploads: HashMap<String, Arc<wgpu::Buffer>>,
    /// Uploaded constants too large for one binding, in row blocks.
    pub(super) chunk_uploads: HashMap<String, Arc<Chunked>>,
    pub pool: BufferPool,
    pub(super) dummy: Arc<wgpu::Buffer>,
}

/// Converts host values to the device's 32-bit words (f32 or i32 by dtype class).
pub fn to_words(name: &str, dtype: DataType, data: &[f64]) -> Result<Vec<u32>> {
    if is_float_class(dtype) {
        return Ok(data.iter().map(|&v| (v as f32).to_bits()).collect());
    }
    let mut out = Vec::with_capacity(data.len());
    for &v in data {
        if v < i32::MIN as f64 || v > i32::MAX as f64 {
            return Err(Error::Runtime(format!(
                "wgpu: tensor '{name}' ({dtype}) holds {v}, outside the int32 range in which the wgpu \
                 executor stores integers"
            )));
        }
        out.push((v as i32) as u32);
    }
    Ok(out)
}

/// One run in progress: the plan, the device state, the commands being recorded.
pub struct Exec<'a> {
    pub plan: &'a Plan,
    pub rt: &'a mut Runtime,
    pub enc: wgpu::CommandEncoder,
    pub live: HashMap<String, Arc<wgpu::Buffer>>,
    /// Tensors of this run held in row blocks (see [`Chunked`]).
    pub chunked: HashMap<String, Arc<Chunked>>,
    pub node: &'a Node,
    pub dispatches: usize,
}

/// An error about one node, named by its name (or first output) and its op.
pub fn node_error(n: &Node, msg: impl std::fmt::Display) -> Error {
    Error::Runtime(format!(
        "wgpu: node '{}' ({}): {msg}",
        if n.name.is_empty() {
            n.outputs.first().map(|s| s.as_str()).unwrap_or("")
        } else {
            n.name.as_str()
        },
        n.qualified_op()
    ))
}

impl Exec<'_> {
    pub fn err(&self, msg: impl std::fmt::Display) -> Error {
        node_error(self.node, msg)
    }

    pub fn has_in(&self, i: usize) -> bool {
        self.node.inputs.get(i).is_some_and(|s| !s.is_empty())
    }

    pub fn n_in(&self) -> usize {
        self.node.inputs.len()
    }

    pub fn in_info(&self, i: usize) -> Result<&TInfo> {
        let name = self
            .node
            .inputs
            .get(i)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| self.err(format!("input {i} is missing")))?;
        self.plan
            .infos
            .get(name)
            .ok_or_else(|| self.err(format!("input '{name}' has no type")))
    }

    pub fn out_info(&self, j: usize) -> Result<&TInfo> {
        let name = self
            .node
            .outputs
            .get(j)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| self.err(format!("output {j} is missing")))?;
        self.plan
            .infos
            .get(name)
            .ok_or_else(|| self.err(format!("output '{name}' has no type")))
    }

    pub fn has_out(&self, j: usize) -> bool {
        self.node.outputs.get(j).is_some_and(|s| !s.is_empty())
    }

    /// The host-known value of input `i`, if it is a constant.
    pub fn host(&self, i: usize) -> Option<&HVal> {
        self.node
            .inputs
            .get(i)
            .filter(|s| !s.is_empty())
            .and_then(|n| self.plan.consts.get(n))
    }

    /// Input `i` as constant integers (shape operands), or an error saying it must be one.
    pub fn host_ints(&self, i: usize) -> Result<Vec<i64>> {
        self.host(i).map(|v| v.ints()).ok_or_else(|| {
            self.err(format!(
                "input {i} ('{}') must be a constant (or computable from static shapes) for the wgpu executor",
                self.node.inputs.get(i).map(|s| s.as_str()).unwrap_or("")
            ))
        })
    }

    /// The device buffer of input `i` (constants are uploaded once per session).
    pub fn buf(&mut self, i: usize) -> Result<Arc<wgpu::Buffer>> {
        let name = self
            .node
            .inputs
            .get(i)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| self.err(format!("input {i} is missing")))?
            .clone();
        if let Some(b) = self.live.get(&name) {
            return Ok(b.clone());
        }
        if let Some(b) = self.rt.uploads.get(&name) {
            return Ok(b.clone());
        }
        if self.chunked.contains_key(&name) || self.rt.chunk_uploads.contains_key(&name) {
            return Err(self.err(format!(
                "input '{name}' exceeds the device's max_storage_buffer_binding_size ({} bytes) \
                 and is held in row blocks, which this op cannot read (only Gemm and MatMul \
                 weights can be)",
                self.rt.gpu.limits.max_storage_buffer_binding_size
            )));
        }
        let v = self
            .plan
            .consts
            .get(&name)
            .ok_or_else(|| self.err(format!("input '{name}' has not been computed")))?;
        let words = to_words(&name, v.dtype, &v.data)?;
        self.rt.gpu.check_fits(
            &name,
            &format!("{}{:?}", v.dtype, v.shape),
            words.len() as u64 * 4,
        )?;
        let b = Arc::new(self.rt.upload(&words));
        self.rt.uploads.insert(name, b.clone());
        Ok(b)
    }

    /// True when a derived constant was uploaded under `key` already.
    pub fn has_const_upload(&self, key: &str) -> bool {
        self.rt.uploads.contains_key(key)
    }

    /// Uploads a constant derived on the host (e.g. dequantized weights) under `key`.
    pub fn upload_const(&mut self, key: &str, v: &HVal) -> Result<()> {
        let words = to_words(key, v.dtype, &v.data)?;
        self.rt.gpu.check_fits(
            key,
            &format!("{}{:?}", v.dtype, v.shape),
            words.len() as u64 * 4,
        )?;
        let b = Arc::new(self.rt.upload(&words));
        self.rt.uploads.insert(key.to_string(), b);
        Ok(())
    }

    /// Uploads raw 32-bit words derived on the host (e.g. packed 4-bit weights) under `key`.
    /// One word more than `words` is allocated, so that a kernel reading a byte window may
    /// read past the last packed byte.
    pub fn upload_words(&mut self, key: &str, what: &str, words: &[u32]) -> Result<()> {
        let mut w = words.to_vec();
        w.push(0);
        self.rt.gpu.check_fits(key, what, w.len() as u64 * 4)?;
        let b = Arc::new(self.rt.upload(&w));
        self.rt.uploads.insert(key.to_string(), b);
        Ok(())
    }

    /// The buffer uploaded under `key`.
    pub fn const_upload(&self, key: &str) -> Result<Arc<wgpu::Buffer>> {
        self.rt
            .uploads
            .get(key)
            .cloned()
            .ok_or_else(|| self.err(format!("constant '{key}' was not uploaded")))
    }

    /// True when output `j` does not fit one storage binding (but may fit row blocks).
    pub fn out_too_big(&self, j: usize) -> Result<bool> {
        let info = self.out_info(j)?;
        Ok(info.count() as u64 * 4 > self.rt.gpu.max_binding_bytes())
    }

    /// Allocates output `j` as row blocks (see [`Chunked`]), each under the binding limit.
    pub fn out_chunked(&mut self, j: usize) -> Result<Arc<Chunked>> {
        let info = self.out_info(j)?.clone();
        let name = self.node.outputs[j].clone();
        let bytes = info.count() as u64 * 4;
        self.rt
            .gpu
            .check_total(&name, &format!("{}{:?}", info.dtype, info.shape), bytes)?;
        let rows = info.shape.first().copied().unwrap_or(1);
        let row_len: usize = info.shape.iter().skip(1).product();
        let max = self.rt.gpu.max_binding_bytes();
        let mut blocks = Vec::new();
        for (r0, r) in Chunked::layout(&name, rows, row_len, max)? {
            let b = self
                .rt
                .pool
                .take(&self.rt.gpu.device, (r * row_len) as u64 * 4, max);
            blocks.push((r0, r, b));
        }
        let c = Arc::new(Chunked {
            rows,
            row_len,
            blocks,
        });
        self.chunked.insert(name, c.clone());
        Ok(c)
    }

    /// Input `i` as row blocks when it exceeds the binding limit: a tensor of this run held in
    /// blocks, or a constant uploaded in blocks (once per session). `None` when it fits one
    /// binding (read it with [`Exec::buf`]).
    pub fn chunked_in(&mut self, i: usize) -> Result<Option<Arc<Chunked>>> {
        let Some(name) = self.node.inputs.get(i).filter(|s| !s.is_empty()).cloned() else {
            return Ok(None);
        };
        if let Some(c) = self.chunked.get(&name).or(self.rt.chunk_uploads.get(&name)) {
            return Ok(Some(c.clone()));
        }
        let max = self.rt.gpu.max_binding_bytes();
        let Some(v) = self.plan.consts.get(&name) else {
            return Ok(None);
        };
        if v.data.len() as u64 * 4 <= max {
            return Ok(None);
        }
        self.rt.gpu.check_total(
            &name,
            &format!("{}{:?}", v.dtype, v.shape),
            v.data.len() as u64 * 4,
        )?;
        let rows = v.shape.first().copied().unwrap_or(1);
        let row_len: usize = v.shape.iter().skip(1).product();
        let mut blocks = Vec::new();
        for (r0, r) in Chunked::layout(&name, rows, row_len, max)? {
            let words = to_words(&name, v.dtype, &v.data[r0 * row_len..(r0 + r) * row_len])?;
            blocks.push((r0, r, Arc::new(self.rt.upload(&words))));
        }
        let c = Arc::new(Chunked {
            rows,
            row_len,
            blocks,
        });
        self.rt.chunk_uploads.insert(name, c.clone());
        Ok(Some(c))
    }

    /// Allocates the buffer of output `j`.
    pub fn out(&mut self, j: usize) -> Result<Arc<wgpu::Buffer>> {
        let info = self.out_info(j)?.clone();
        let name = self.node.outputs[j].clone();
        let bytes = info.count() as u64 * 4;
        self.rt
            .gpu
            .check_fits(&name, &format!("{}{:?}", info.dtype, info.shape), bytes)?;
        let max = self.rt.gpu.max_binding_bytes();
        let b = self.rt.pool.take(&self.rt.gpu.device, bytes, max);
        self.live.insert(name, b.clone());
        Ok(b)
    }

    /// A 4-byte buffer for unused optional bindings.
    pub fn dummy(&self) -> Arc<wgpu::Buffer> {
        self.rt.dummy.clone()
    }

    /// Records one dispatch of shader `name` (with `subs` substitutions) over `threads`
    /// invocations; `bufs` bind at 1.. in order, `params` at 0.
    pub fn dispatch(
        &mut self,
        name: &str,
        subs: &[(&str, &str)],
        params: &[u32],
        bufs: &[&wgpu::Buffer],
        threads: usize,
    ) -> Result<()> {
        if threads == 0 {
            return Ok(());
        }
        let pipeline = self.rt.pipeline(name, subs)?;
        let dev = &self.rt.gpu.device;
        let mut p = params.to_vec();
        if p.is_empty() {
            p.push(0);
        }
        let pbuf = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents: &p.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>(),
            usage: wgpu::BufferUsages::STORAGE,
        });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: pbuf.as_entire_binding(),
        }];
        for (k, b) in bufs.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: k as u32 + 1,
                resource: b.as_entire_binding(),
            });
        }
        let bg = dev.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let groups = threads.div_ceil(256) as u64;
        let maxd = self.rt.gpu.limits.max_compute_workgroups_per_dimension as u64;
        let (gx, gy) = if groups <= maxd {
            (groups, 1)
        } else {
            (maxd, groups.div_ceil(maxd))
        };
        if gy > maxd {
            return Err(self.err(format!(
                "{threads} invocations exceed the device's max_compute_workgroups_per_dimension ({maxd})²·256"
            )));
        }
        let mut pass = self.enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: None,
            timestamp_writes: None,
        });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bg, &[]);
        pass.dispatch_workgroups(gx as u32, gy as u32, 1);
        self.dispatches += 1;
        Ok(())
    }
}

impl Runtime {
    pub(super) fn upload(&self, words: &[u32]) -> wgpu::Buffer {
        let mut bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        if bytes.is_empty() {
            bytes.extend_from_slice(&[0; 4]);
        }
        self.gpu
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: &bytes,
                usage: TENSOR_USAGE,
            })
    }

    pub(super) fn pipeline(
        &mut self,
        name: &str,
        subs: &[(&str, &str)],
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        let src = kernels::source(name, subs)?;
        if let Some(p) = self.pipelines.get(&src) {
            return Ok(p.clone());
        }
        let dev = &self.gpu.device;
        let scope = dev.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = dev.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(src.clone().into()),
        });
        let p = dev.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(name),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        if let Some(e) = super::device::block_on(scope.pop()) {
            return Err(Error::Internal(format!(
                "wgpu: shader '{name}' does not compile: {e}"
            )));
        }
        let p = Arc::new(p);
        self.pipelines.insert(src, p.clone());
        Ok(p)
    }
}
