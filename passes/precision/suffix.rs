//! Single-operator error measurements on the part of the graph a change reaches.
//!
//! Measuring one operator at one precision used to run the whole rewritten model on every
//! sample. The operators upstream of the change compute exactly what the reference model
//! computes, so one collect run per sample (every intermediate tensor captured) serves all
//! measurements: each rewritten model is cut to its *suffix* (the changed nodes and every
//! node downstream of them), fed the captured tensors that cross the cut, and compared on
//! the outputs it produces; outputs the change cannot reach keep the reference values.
//! A cut that needs a tensor the capture lacks (an output shape inference could not
//! type) is not measured this way: the caller falls back to the whole model.

use optimize_ir::data::{HostTensor, Sample};
use optimize_ir::error::{Error, Result};
use optimize_ir::ir::attr::outer_scope_reads;
use optimize_ir::ir::{Model, Node, ValueType};
use optimize_ir::onnx_io::export::to_bytes;
use optimize_ir::onnx_io::ExportOptions;
use optimize_runtimes::intermediates::expose_intermediates;
use optimize_runtimes::OrtRuntime;
use petgraph::stable_graph::NodeIndex;
use std::collections::{HashMap, HashSet};

/// Float outputs per sample, in output order.
pub type SampleOutputs = Vec<Vec<Vec<f32>>>;

/// Above this many bytes of captured tensors, measurements run the whole model.
const MAX_CAPTURE_BYTES: usize = 4 << 30;

/// The reference model's tensors per sample (inputs and every typed intermediate), and
/// the model itself, against whose nodes a rewrite's changes are found.
pub struct Captures<'m> {
    model: &'m Model,
    per_sample: Vec<HashMap<String, HostTensor>>,
    /// Each reference node by its first non-empty output.
    nodes: HashMap<&'m str, NodeIndex>,
}

impl<'m> Captures<'m> {
    /// One run per sample of `model` with every typed intermediate exposed.
    pub fn collect(model: &'m Model, samples: &[Sample]) -> Result<Captures<'m>> {
        let (exposed, _) = expose_intermediates(model);
        let bytes = to_bytes(&exposed, &ExportOptions::default())?;
        let mut session = OrtRuntime::get()?
            .session_without_arena_from_bytes(&bytes, "the fp32 model with its intermediates")?;
        let mut per_sample = Vec::with_capacity(samples.len());
        let mut held = 0usize;
        for s in samples {
            let mut values: HashMap<String, HostTensor> = s.values.iter().cloned().collect();
            values.extend(session.run(&s.values)?);
            held += values.values().map(|t| t.bytes.len()).sum::<usize>();
            if held > MAX_CAPTURE_BYTES {
                return Err(Error::Runtime(format!(
                    "the intermediates of {} sample(s) exceed {} MiB",
                    per_sample.len() + 1,
                    MAX_CAPTURE_BYTES >> 20
                )));
            }
            per_sample.push(values);
        }
        let nodes = model
            .graph
            .nodes()
            .filter_map(|(i, n)| Some((first_output(n)?.as_str(), i)))
            .collect();
        Ok(Captures {
            model,
            per_sample,
            nodes,
        })
    }

    /// The reference node with `n`'s first output.
    fn reference_node(&self, n: &Node) -> Option<&'m Node> {
        let i = self.nodes.get(first_output(n)?.as_str())?;
        Some(&self.model.graph.ops[*i])
    }

    /// The reference's float outputs per sample, in output order (as the whole-model
    /// measurement returns them).
    pub fn reference(&self) -> SampleOutputs {
        self.per_sample
            .iter()
            .map(|v| float_outputs(&self.model.graph.outputs, |o| v.get(o)))
            .collect()
    }

    /// The float outputs per sample of `rewritten` (a rewrite of the captured model),
    /// running only its suffix. Gives the model back when the cut needs a tensor that was
    /// not captured or leaves no output (then run the whole model).
    pub fn run_suffix(
        &self,
        mut rewritten: Model,
    ) -> std::result::Result<Result<SampleOutputs>, Box<Model>> {
        let Some(first) = self.per_sample.first() else {
            return Err(Box::new(rewritten));
        };
        let plan = match plan(|n| self.reference_node(n), &rewritten) {
            Some(p) if p.cut.iter().all(|n| first.contains_key(n)) => p,
            _ => return Err(Box::new(rewritten)),
        };
        let cut = plan.cut.clone();
        cut_down(&mut rewritten, plan);
        for name in &cut {
            // The element type the capture saw; no shape, which may differ per sample
            // (sequence lengths).
            let elem = first[name].dtype;
            let v = rewritten.graph.values.entry(name.clone()).or_default();
            v.declared = None;
            v.ty = Some(ValueType::Tensor { elem, shape: None });
        }
        rewritten.graph.inputs = cut.clone();
        Ok(self.run_cut(&rewritten, &cut))
    }

    fn run_cut(&self, suffix: &Model, cut: &[String]) -> Result<SampleOutputs> {
        let bytes = to_bytes(suffix, &ExportOptions::default())?;
        let mut session = OrtRuntime::get()?.session_from_bytes(&bytes, "a one-operator suffix")?;
        let mut all = Vec::with_capacity(self.per_sample.len());
        for values in &self.per_sample {
            let feed: Vec<(String, HostTensor)> =
                cut.iter().map(|n| (n.clone(), values[n].clone())).collect();
            let got: HashMap<String, HostTensor> = session.run(&feed)?.into_iter().collect();
            all.push(float_outputs(&self.model.graph.outputs, |o| {
                got.get(o).or_else(|| values.get(o))
            }));
        }
        Ok(all)
    }
}

fn first_output(n: &Node) -> Option<&String> {
    n.outputs.iter().find(|o| !o.is_empty())
}

fn float_outputs<'t>(
    outputs: &[String],
    value: impl Fn(&str) -> Option<&'t HostTensor>,
) -> Vec<Vec<f32>> {
    outputs.iter().filter_map(|o| value(o)?.as_f32()).collect()
}

/// Names a node reads: its inputs and what its subgraphs read from the outer scope.
fn reads(n: &Node) -> Vec<String> {
    let mut r: Vec<String> = n.inputs.iter().filter(|i| !i.is_empty()).cloned().collect();
    r.extend(n.subgraphs().flat_map(outer_scope_reads));
    r
}

/// What cutting a rewritten model down to its suffix keeps.
struct Plan {
    drop: Vec<NodeIndex>,
    /// Names read by the suffix that it does not produce and that are not initializers:
    /// fed from the captures.
    cut: Vec<String>,
    initializers: HashSet<String>,
    /// Tensors the suffix produces.
    produced: HashSet<String>,
}

/// The nodes of `m` that differ from the reference, and those downstream of them, make
/// the suffix; `None` when no original output is among what they produce.
fn plan<'r>(reference: impl Fn(&Node) -> Option<&'r Node>, m: &Model) -> Option<Plan> {
    let g = &m.graph;
    let mut produced: HashSet<String> = HashSet::new();
    let (mut keep, mut drop) = (Vec::new(), Vec::new());
    for (idx, n) in g.nodes() {
        let same = reference(n) == Some(n);
        if !same || reads(n).iter().any(|r| produced.contains(r)) {
            produced.extend(n.outputs.iter().filter(|o| !o.is_empty()).cloned());
            keep.push(idx);
        } else {
            drop.push(idx);
        }
    }
    if !g.outputs.iter().any(|o| produced.contains(o)) {
        return None;
    }
    let (mut cut, mut seen, mut initializers) = (Vec::new(), HashSet::new(), HashSet::new());
    for &idx in &keep {
        for r in reads(&g.ops[idx]) {
            if produced.contains(&r) || !seen.insert(r.clone()) {
                continue;
            }
            if g.initializers.contains_key(&r) && !g.inputs.contains(&r) {
                initializers.insert(r);
            } else {
                cut.push(r);
            }
        }
    }
    Some(Plan {
        drop,
        cut,
        initializers,
        produced,
    })
}

/// Removes from `m` what `plan` does not keep; its outputs become the original outputs
/// the suffix produces.
fn cut_down(m: &mut Model, plan: Plan) {
    let g = &mut m.graph;
    for idx in plan.drop {
        g.remove_node(idx);
    }
    g.initializers.retain(|k, _| plan.initializers.contains(k));
    g.outputs.retain(|o| plan.produced.contains(o));
    g.value_info_names.clear();
}
