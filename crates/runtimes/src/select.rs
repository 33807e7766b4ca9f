//! Choosing the runtime that validation runs on: onnxruntime, the wgpu executor, or `auto`
//! (onnxruntime, falling back to wgpu when its library cannot be loaded or it refuses or
//! fails on a model).

use super::gpu::WgpuSession;
use super::{OrtRuntime, OrtSession};
use optimize_ir::data::HostTensor;
use optimize_ir::error::{Error, Result};
use optimize_ir::shape::Bindings;
use std::borrow::Cow;
use std::path::Path;

/// `--runtime ort|wgpu|auto`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeChoice {
    Ort,
    Wgpu,
    #[default]
    Auto,
}

/// An open session on either runtime.
pub enum AnySession {
    Ort(OrtSession),
    Wgpu(Box<WgpuSession>),
}

impl AnySession {
    pub fn run(&mut self, inputs: &[(String, HostTensor)]) -> Result<Vec<(String, HostTensor)>> {
        match self {
            AnySession::Ort(s) => s.run(inputs),
            AnySession::Wgpu(s) => s.run(inputs),
        }
    }
}

/// The original and the candidate model opened on the same runtime.
pub struct SessionPair {
    pub original: AnySession,
    pub candidate: AnySession,
    /// e.g. `onnxruntime 1.31.1` or `wgpu on llvmpipe (...) (Vulkan, Cpu)`.
    pub runtime: String,
}

/// Opens both models on onnxruntime.
pub fn open_ort(original: &Path, candidate: &Path) -> Result<SessionPair> {
    let rt = OrtRuntime::get()?;
    Ok(SessionPair {
        // Tiled outputs have thousands of nodes: open both with the planner that scales.
        original: AnySession::Ort(rt.large_graph_session_from_file(original, false)?),
        candidate: AnySession::Ort(rt.large_graph_session_from_file(candidate, false)?),
        runtime: format!("onnxruntime {}", rt.version()),
    })
}

/// Opens both models on the wgpu executor (shapes inferred with `bindings`).
pub fn open_wgpu(
    original: &Path,
    candidate: &Path,
    bindings: &Bindings,
    adapter: Option<&str>,
) -> Result<SessionPair> {
    let a = WgpuSession::from_file(original, bindings, adapter)?;
    let b = WgpuSession::from_file(candidate, bindings, adapter)?;
    let runtime = format!("wgpu on {}", a.device_description());
    Ok(SessionPair {
        original: AnySession::Wgpu(Box::new(a)),
        candidate: AnySession::Wgpu(Box::new(b)),
        runtime,
    })
}

/// One run's named outputs.
pub type NamedOutputs = Vec<(String, HostTensor)>;

/// The samples a validation feeds, by index: held in memory (a folder's) or made one at a
/// time (seeded random ones), so that memory does not grow with their number.
pub trait SampleSource {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn get(&self, i: usize) -> Cow<'_, [(String, HostTensor)]>;
}

/// Runs every sample through a pair, folding each sample's (original, candidate) outputs
/// into an accumulator as it goes (one sample's outputs are held at a time).
fn run_all<A>(
    pair: &mut SessionPair,
    samples: &dyn SampleSource,
    init: &dyn Fn() -> A,
    fold: &dyn Fn(&mut A, &NamedOutputs, &NamedOutputs),
) -> Result<A> {
    let mut acc = init();
    for i in 0..samples.len() {
        let s = samples.get(i);
        let a = pair.original.run(&s)?;
        let b = pair.candidate.run(&s)?;
        fold(&mut acc, &a, &b);
    }
    Ok(acc)
}

/// What validation ran on.
pub struct Execution<A> {
    pub runtime: String,
    /// Why `auto` left onnxruntime, when it did.
    pub fallback_reason: Option<String>,
    /// The folded outputs, or why no runtime could produce them (`auto` only).
    pub outputs: std::result::Result<A, String>,
}

/// Runs both models on the chosen runtime, folding the outputs of each sample with `fold`
/// into `init()`. With `Ort` or `Wgpu` a failure is an error; with `Auto` a failure of
/// onnxruntime falls back to wgpu (starting a fresh accumulator), and a failure of both is
/// returned as `outputs: Err(reason)` (validation not done).
#[allow(clippy::too_many_arguments)]
pub fn execute<A>(
    choice: RuntimeChoice,
    original: &Path,
    candidate: &Path,
    bindings: &Bindings,
    adapter: Option<&str>,
    samples: &dyn SampleSource,
    init: &dyn Fn() -> A,
    fold: &dyn Fn(&mut A, &NamedOutputs, &NamedOutputs),
) -> Result<Execution<A>> {
    let on_ort = || -> Result<(String, A)> {
        let mut p = open_ort(original, candidate)?;
        let o = run_all(&mut p, samples, init, fold)?;
        Ok((p.runtime, o))
    };
    let on_wgpu = || -> Result<(String, A)> {
        let mut p = open_wgpu(original, candidate, bindings, adapter)?;
        let o = run_all(&mut p, samples, init, fold)?;
        Ok((p.runtime, o))
    };
    match choice {
        RuntimeChoice::Ort => {
            let (runtime, o) = on_ort()?;
            Ok(Execution {
                runtime,
                fallback_reason: None,
                outputs: Ok(o),
            })
        }
        RuntimeChoice::Wgpu => {
            let (runtime, o) = on_wgpu()?;
            Ok(Execution {
                runtime,
                fallback_reason: None,
                outputs: Ok(o),
            })
        }
        RuntimeChoice::Auto => match on_ort() {
            Ok((runtime, o)) => Ok(Execution {
                runtime,
                fallback_reason: None,
                outputs: Ok(o),
            }),
            // Input errors are the user's, not onnxruntime's: no fallback hides them.
            Err(e @ (Error::Input { .. } | Error::Usage(_))) => Err(e),
            Err(ort_err) => {
                let reason = ort_err.to_string();
                match on_wgpu() {
                    Ok((runtime, o)) => Ok(Execution {
                        runtime,
                        fallback_reason: Some(reason),
                        outputs: Ok(o),
                    }),
                    Err(e) => Ok(Execution {
                        runtime: "none".into(),
                        fallback_reason: Some(reason),
                        outputs: Err(e.to_string()),
                    }),
                }
            }
        },
    }
}
