//! onnxruntime through `ort` with `load-dynamic`: finds `libonnxruntime.so`, opens sessions,
//! and converts between `HostTensor` and ort values.
//!
//! The library is looked up in this order: `$ORT_DYLIB_PATH`; `.deps/onnxruntime/` in the
//! folders above the executable (a project checkout); `.deps/onnxruntime/` of the source tree
//! the binary was built from.

use optimize_ir::data::HostTensor;
use optimize_ir::error::{Error, Result};
use optimize_ir::ir::DataType;
use ort::session::{builder::GraphOptimizationLevel, Session};
use ort::value::{DynValue, Tensor, TensorElementType, ValueType as OrtValueType};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// The library version the project installs and tests against.
pub const ORT_LIBRARY_FILE: &str = "libonnxruntime.so.1.31.1";

/// Finds the onnxruntime shared library, or says where it looked.
pub fn locate_onnxruntime() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        return Err(Error::Runtime(format!(
            "onnxruntime not found: ORT_DYLIB_PATH={} is not a file",
            p.display()
        )));
    }
    let mut tried = Vec::new();
    let rel = Path::new(".deps")
        .join("onnxruntime")
        .join(ORT_LIBRARY_FILE);
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1) {
            let cand = dir.join(&rel);
            if cand.is_file() {
                return Ok(cand);
            }
        }
        tried.push(format!("{} and the folders above it", exe.display()));
    }
    // Where setup.sh put it at build time: the workspace root, two levels above this crate.
    let built = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(&rel);
    if built.is_file() {
        return Ok(built);
    }
    tried.push(built.display().to_string());
    Err(Error::Runtime(format!(
        "onnxruntime not found (looked in {}); run scripts/setup.sh or set ORT_DYLIB_PATH",
        tried.join(", ")
    )))
}

/// A loaded onnxruntime library with its environment. Loaded once per process.
pub struct OrtRuntime {
    env: ort::environment::Environment,
    pub library: PathBuf,
}

static RUNTIME: OnceLock<std::result::Result<OrtRuntime, String>> = OnceLock::new();

impl OrtRuntime {
    /// Loads onnxruntime (once); later calls return the same instance or the same error.
    pub fn get() -> Result<&'static OrtRuntime> {
        RUNTIME
            .get_or_init(|| {
                let library = locate_onnxruntime().map_err(|e| e.to_string())?;
                let builder = ort::init_from(&library).map_err(|e| {
                    format!("cannot load onnxruntime from {}: {e}", library.display())
                })?;
                // No telemetry: a build step sends nothing anywhere, and onnxruntime's
                // telemetry also leaves a session file (`$TMPDIR/.ses`) behind.
                let env = builder
                    .with_name("optimize")
                    .with_telemetry(false)
                    .build()
                    .map_err(|e| {
                        format!("cannot start onnxruntime from {}: {e}", library.display())
                    })?;
                Ok(OrtRuntime { env, library })
            })
            .as_ref()
            .map_err(|e| Error::Runtime(e.clone()))
    }

    /// The library's version string, e.g. `1.31.1`.
    pub fn version(&self) -> String {
        self.library
            .file_name()
            .and_then(|f| f.to_str())
            .and_then(|f| f.strip_prefix("libonnxruntime.so."))
            .unwrap_or("unknown")
            .to_string()
    }

    fn builder(&self) -> Result<ort::session::builder::SessionBuilder> {
        self.builder_at(GraphOptimizationLevel::Disable)
    }

    fn builder_at(
        &self,
        level: GraphOptimizationLevel,
    ) -> Result<ort::session::builder::SessionBuilder> {
        let e = |e: ort::Error<ort::session::builder::SessionBuilder>| {
            Error::Runtime(format!("onnxruntime: {e}"))
        };
        Session::builder(&self.env)
            .map_err(|e| Error::Runtime(format!("onnxruntime: {e}")))?
            .with_optimization_level(level)
            .map_err(e)?
            .with_intra_threads(1)
            .map_err(e)?
            .with_inter_threads(1)
            .map_err(e)
    }

    /// Opens a session on a model file (external data resolved by onnxruntime itself).
    pub fn session_from_file(&self, path: &Path) -> Result<OrtSession> {
        self.file_session_at(path, GraphOptimizationLevel::Disable)
    }

    /// Opens a session with all of onnxruntime's graph optimizations on (still one thread):
    /// the forward pass a user deploys, as a benchmark baseline. Everything else in this
    /// crate runs unoptimized graphs so that exposed intermediates keep their values.
    pub fn optimized_session_from_file(&self, path: &Path) -> Result<OrtSession> {
        self.file_session_at(path, GraphOptimizationLevel::All)
    }

    /// A session for running graphs of thousands of nodes (tiled programs) once:
    /// onnxruntime's single-stream memory planner is quadratic in the number of values
    /// whose shapes never repeat (a tiled PP-OCR det with 9k nodes took 240 s to open);
    /// its parallel execution mode with two inter-op threads plans differently, in about a
    /// second, and runs the same kernels (one intra-op thread), so outputs are identical.
    pub fn large_graph_session_from_file(
        &self,
        path: &Path,
        optimized: bool,
    ) -> Result<OrtSession> {
        let e = |e: ort::Error<ort::session::builder::SessionBuilder>| {
            Error::Runtime(format!("onnxruntime: {e}"))
        };
        let level = if optimized {
            GraphOptimizationLevel::All
        } else {
            GraphOptimizationLevel::Disable
        };
        let s = self
            .builder_at(level)?
            .with_parallel_execution(true)
            .map_err(e)?
            .with_inter_threads(2)
            .map_err(e)?
            .commit_from_file(path)
            .map_err(|e| Error::Runtime(format!("onnxruntime refused {}: {e}", path.display())))?;
        Ok(OrtSession { session: s })
    }

    fn file_session_at(&self, path: &Path, level: GraphOptimizationLevel) -> Result<OrtSession> {
        let s = self
            .builder_at(level)?
            .commit_from_file(path)
            .map_err(|e| Error::Runtime(format!("onnxruntime refused {}: {e}", path.display())))?;
        Ok(OrtSession { session: s })
    }

    /// Opens a session on serialized model bytes (inline data only).
    pub fn session_from_bytes(&self, bytes: &[u8], what: &str) -> Result<OrtSession> {
        self.commit_bytes(self.builder()?, bytes, what)
    }

    /// [`OrtRuntime::session_from_bytes`] whose outputs are plain heap allocations instead
    /// of onnxruntime's arena, for a model with hundreds of exposed intermediates that runs
    /// once: the arena's first run faulted in fresh pages for all of them, and halving that
    /// run (measured on PP-OCRv4 rec and light_resnet50) is why this exists.
    pub fn session_without_arena_from_bytes(&self, bytes: &[u8], what: &str) -> Result<OrtSession> {
        let cpu = ort::ep::CPU::default().with_arena_allocator(false).build();
        let b = self
            .builder()?
            .with_execution_providers([cpu])
            .map_err(|e| Error::Runtime(format!("onnxruntime: {e}")))?;
        self.commit_bytes(b, bytes, what)
    }

    /// A session as a user deploys it, for timing: all graph optimizations, `threads`
    /// intra-op threads, one inter-op thread and no spin-waiting (spinning idle pools of
    /// other sessions would burn the cores the timed one needs). With `profile`,
    /// onnxruntime's profiler records every kernel's time in a file with that prefix
    /// ([`OrtSession::end_profiling`] names it).
    pub fn timing_session_from_bytes(
        &self,
        bytes: &[u8],
        what: &str,
        threads: usize,
        profile: Option<&Path>,
    ) -> Result<OrtSession> {
        let e = |e: ort::Error<ort::session::builder::SessionBuilder>| {
            Error::Runtime(format!("onnxruntime: {e}"))
        };
        let mut b = self
            .builder_at(GraphOptimizationLevel::All)?
            .with_intra_threads(threads.max(1))
            .map_err(e)?
            .with_intra_op_spinning(false)
            .map_err(e)?
            .with_inter_op_spinning(false)
            .map_err(e)?;
        if let Some(prefix) = profile {
            b = b.with_profiling(prefix).map_err(e)?;
        }
        self.commit_bytes(b, bytes, what)
    }

    fn commit_bytes(
        &self,
        mut b: ort::session::builder::SessionBuilder,
        bytes: &[u8],
        what: &str,
    ) -> Result<OrtSession> {
        let s = b
            .commit_from_memory(bytes)
            .map_err(|e| Error::Runtime(format!("onnxruntime refused {what}: {e}")))?;
        Ok(OrtSession { session: s })
    }
}

/// An open onnxruntime session.
pub struct OrtSession {
    session: Session,
}

impl OrtSession {
    pub fn input_names(&self) -> Vec<String> {
        self.session
            .inputs()
            .iter()
            .map(|i| i.name().to_string())
            .collect()
    }

    pub fn output_names(&self) -> Vec<String> {
        self.session
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect()
    }

    /// Ends onnxruntime's profiling of a session opened with a profile prefix and returns
    /// the JSON file it wrote.
    pub fn end_profiling(&mut self) -> Result<PathBuf> {
        self.session
            .end_profiling()
            .map(PathBuf::from)
            .map_err(|e| Error::Runtime(format!("onnxruntime profiling: {e}")))
    }

    /// Runs the model on named inputs and returns every output, in the session's output order.
    pub fn run(&mut self, inputs: &[(String, HostTensor)]) -> Result<Vec<(String, HostTensor)>> {
        self.run_with(inputs, |name, v, _| {
            from_ort(&v).map_err(|e| Error::Runtime(format!("output '{name}': {e}")))
        })
    }

    /// [`OrtSession::run`] that leaves the outputs in onnxruntime's buffers: copying out
    /// hundreds of exposed intermediates (and faulting in fresh pages for the copies) was
    /// half the cost of a relevance collect run.
    pub fn run_kept(
        &mut self,
        inputs: &[(String, HostTensor)],
    ) -> Result<Vec<(String, OrtTensor)>> {
        self.run_with(inputs, |name, v, feed| {
            OrtTensor::new(v, feed.clone())
                .map_err(|e| Error::Runtime(format!("output '{name}': {e}")))
        })
    }

    /// Runs the session and hands each output to `take` together with the inputs fed.
    ///
    /// Lifetime: onnxruntime returns a graph output that *is* a graph input (a model whose
    /// output names an input, e.g. a graph without nodes) as a value sharing the input's
    /// buffer, and that buffer belongs to the input value on our side. The inputs are
    /// therefore fed by reference and kept alive (`feed`) until every output has been
    /// taken; outputs kept beyond this call ([`OrtTensor`]) hold a reference to them.
    /// Feeding them by value (as this did before) freed the buffer when `run` returned,
    /// and such an output then read freed memory.
    fn run_with<O>(
        &mut self,
        inputs: &[(String, HostTensor)],
        mut take: impl FnMut(&str, DynValue, &Arc<Feed>) -> Result<O>,
    ) -> Result<Vec<(String, O)>> {
        let mut feed: Vec<(String, DynValue)> = Vec::with_capacity(inputs.len());
        for (name, t) in inputs {
            feed.push((
                name.clone(),
                to_ort(t).map_err(|e| Error::Runtime(format!("input '{name}': {e}")))?,
            ));
        }
        let feed = Arc::new(Feed(feed));
        let names = self.output_names();
        let views: Vec<(&str, &DynValue)> = feed.0.iter().map(|(n, v)| (n.as_str(), v)).collect();
        let mut outputs = self
            .session
            .run(views)
            .map_err(|e| Error::Runtime(format!("onnxruntime run failed: {e}")))?;
        let mut result = Vec::with_capacity(names.len());
        for name in names {
            let v = outputs.remove(&name).ok_or_else(|| {
                Error::Runtime(format!("onnxruntime did not return output '{name}'"))
            })?;
            let t = take(&name, v, &feed)?;
            result.push((name, t));
        }
        drop(outputs);
        Ok(result)
    }
}

/// The input values of one run, kept alive while any output of that run may share their
/// buffers (see [`OrtSession::run_with`]).
pub struct Feed(Vec<(String, DynValue)>);

/// A tensor onnxruntime returned, left in its buffer.
pub struct OrtTensor {
    value: DynValue,
    dtype: DataType,
    shape: Vec<usize>,
    /// The run's inputs: `value` may share the buffer of one of them. Declared after
    /// `value`, so it is dropped after it.
    _inputs: Arc<Feed>,
}

impl OrtTensor {
    fn new(value: DynValue, inputs: Arc<Feed>) -> std::result::Result<OrtTensor, String> {
        let OrtValueType::Tensor { ty, shape, .. } = value.dtype() else {
            return Err(format!("is a {:?}, not a tensor", value.dtype()));
        };
        let dtype = elem_to_dtype(*ty).ok_or_else(|| format!("unsupported element type {ty:?}"))?;
        let shape = shape.iter().map(|&d| d.max(0) as usize).collect();
        Ok(OrtTensor {
            value,
            dtype,
            shape,
            _inputs: inputs,
        })
    }

    pub fn dtype(&self) -> DataType {
        self.dtype
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The elements of an f32 tensor, in place.
    pub fn f32s(&self) -> Option<&[f32]> {
        if self.dtype != DataType::Float {
            return None;
        }
        self.value.try_extract_tensor::<f32>().ok().map(|(_, d)| d)
    }

    /// Bytes of the elements.
    pub fn byte_len(&self) -> usize {
        self.dtype
            .storage_bytes(self.shape.iter().product::<usize>() as u64) as usize
    }

    /// A copy on the host.
    pub fn to_host(&self) -> std::result::Result<HostTensor, String> {
        from_ort(&self.value)
    }
}

fn elem_to_dtype(t: TensorElementType) -> Option<DataType> {
    use TensorElementType as E;
    Some(match t {
        E::Float32 => DataType::Float,
        E::Uint8 => DataType::Uint8,
        E::Int8 => DataType::Int8,
        E::Uint16 => DataType::Uint16,
        E::Int16 => DataType::Int16,
        E::Int32 => DataType::Int32,
        E::Int64 => DataType::Int64,
        E::String => DataType::String,
        E::Bool => DataType::Bool,
        E::Float16 => DataType::Float16,
        E::Float64 => DataType::Double,
        E::Uint32 => DataType::Uint32,
        E::Uint64 => DataType::Uint64,
        E::Bfloat16 => DataType::Bfloat16,
        _ => return None,
    })
}

macro_rules! le_vec {
    ($bytes:expr, $t:ty) => {
        $bytes
            .chunks_exact(std::mem::size_of::<$t>())
            .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk has the element size")))
            .collect::<Vec<$t>>()
    };
}

/// Builds an ort value from a host tensor.
pub fn to_ort(t: &HostTensor) -> std::result::Result<DynValue, String> {
    let shape: Vec<usize> = t.shape.clone();
    let want = t.dtype.storage_bytes(t.element_count() as u64) as usize;
    if t.dtype != DataType::String && t.bytes.len() != want {
        return Err(format!(
            "holds {} bytes, {}{:?} needs {want}",
            t.bytes.len(),
            t.dtype,
            t.shape
        ));
    }
    let e = |e: ort::Error| e.to_string();
    Ok(match t.dtype {
        DataType::Float => Tensor::from_array((shape, le_vec!(t.bytes, f32)))
            .map_err(e)?
            .into_dyn(),
        DataType::Double => Tensor::from_array((shape, le_vec!(t.bytes, f64)))
            .map_err(e)?
            .into_dyn(),
        DataType::Int8 => Tensor::from_array((shape, le_vec!(t.bytes, i8)))
            .map_err(e)?
            .into_dyn(),
        DataType::Uint8 => Tensor::from_array((shape, t.bytes.clone()))
            .map_err(e)?
            .into_dyn(),
        DataType::Int16 => Tensor::from_array((shape, le_vec!(t.bytes, i16)))
            .map_err(e)?
            .into_dyn(),
        DataType::Uint16 => Tensor::from_array((shape, le_vec!(t.bytes, u16)))
            .map_err(e)?
            .into_dyn(),
        DataType::Int32 => Tensor::from_array((shape, le_vec!(t.bytes, i32)))
            .map_err(e)?
            .into_dyn(),
        DataType::Uint32 => Tensor::from_array((shape, le_vec!(t.bytes, u32)))
            .map_err(e)?
            .into_dyn(),
        DataType::Int64 => Tensor::from_array((shape, le_vec!(t.bytes, i64)))
            .map_err(e)?
            .into_dyn(),
        DataType::Uint64 => Tensor::from_array((shape, le_vec!(t.bytes, u64)))
            .map_err(e)?
            .into_dyn(),
        DataType::Bool => Tensor::from_array((
            shape,
            t.bytes.iter().map(|&b| b != 0).collect::<Vec<bool>>(),
        ))
        .map_err(e)?
        .into_dyn(),
        DataType::Float16 => {
            let v: Vec<half::f16> = t
                .bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]))
                .collect();
            Tensor::from_array((shape, v)).map_err(e)?.into_dyn()
        }
        DataType::Bfloat16 => {
            let v: Vec<half::bf16> = t
                .bytes
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]))
                .collect();
            Tensor::from_array((shape, v)).map_err(e)?.into_dyn()
        }
        DataType::String => Tensor::from_string_array((shape, t.strings.as_slice()))
            .map_err(e)?
            .into_dyn(),
        other => {
            return Err(format!(
                "element type {other} cannot be passed to onnxruntime"
            ))
        }
    })
}

/// Copies an ort tensor value into a host tensor.
pub fn from_ort(v: &DynValue) -> std::result::Result<HostTensor, String> {
    let OrtValueType::Tensor { ty, .. } = v.dtype() else {
        return Err(format!("is a {:?}, not a tensor", v.dtype()));
    };
    let dtype = elem_to_dtype(*ty).ok_or_else(|| format!("unsupported element type {ty:?}"))?;
    let e = |e: ort::Error| e.to_string();
    macro_rules! grab {
        ($t:ty) => {{
            let (shape, data) = v.try_extract_tensor::<$t>().map_err(e)?;
            // One memcpy on little-endian hosts: copying hundreds of exposed intermediates
            // element by element was the largest fixed cost of relevance and calibration.
            #[cfg(target_endian = "little")]
            let bytes = {
                // SAFETY: `$t` is a plain numeric type (no padding, every byte initialized);
                // its in-memory bytes on a little-endian host are its little-endian encoding.
                let raw = unsafe {
                    std::slice::from_raw_parts(
                        data.as_ptr().cast::<u8>(),
                        std::mem::size_of_val(data),
                    )
                };
                raw.to_vec()
            };
            #[cfg(not(target_endian = "little"))]
            let bytes = {
                let mut bytes = Vec::with_capacity(std::mem::size_of_val(data));
                for x in data {
                    bytes.extend_from_slice(&x.to_le_bytes());
                }
                bytes
            };
            (
                shape.iter().map(|&d| d as usize).collect::<Vec<usize>>(),
                bytes,
            )
        }};
    }
    let (shape, bytes) = match dtype {
        DataType::Float => grab!(f32),
        DataType::Double => grab!(f64),
        DataType::Int8 => grab!(i8),
        DataType::Uint8 => grab!(u8),
        DataType::Int16 => grab!(i16),
        DataType::Uint16 => grab!(u16),
        DataType::Int32 => grab!(i32),
        DataType::Uint32 => grab!(u32),
        DataType::Int64 => grab!(i64),
        DataType::Uint64 => grab!(u64),
        DataType::Float16 => grab!(half::f16),
        DataType::Bfloat16 => grab!(half::bf16),
        DataType::Bool => {
            let (shape, data) = v.try_extract_tensor::<bool>().map_err(e)?;
            (
                shape.iter().map(|&d| d as usize).collect(),
                data.iter().map(|&b| b as u8).collect(),
            )
        }
        DataType::String => {
            let (shape, strings) = v.try_extract_strings().map_err(e)?;
            return Ok(HostTensor {
                dtype,
                shape: shape.iter().map(|&d| d as usize).collect(),
                bytes: Vec::new(),
                strings,
            });
        }
        other => return Err(format!("unsupported element type {other}")),
    };
    Ok(HostTensor {
        dtype,
        shape,
        bytes,
        strings: Vec::new(),
    })
}
