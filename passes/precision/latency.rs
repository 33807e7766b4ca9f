//! The latency model: what each candidate operator's precision costs in time on this
//! machine, measured with onnxruntime's CPU provider in the operator's real context.
//!
//! **Measurement.** One whole-model variant per precision: every candidate that allows
//! the precision takes it (the others stay fp32), rewritten exactly as the output would be
//! (Q/DQ, MatMulNBits, decoding chains, the int8 glue). Each variant is timed as deployed
//! (all graph optimizations, the target's thread count, median of `runs`) and profiled;
//! every kernel onnxruntime ran is attributed to the candidate it came from by name
//! ([`Attribution`]), so `t_i(p)` is candidate `i`'s own kernels (its Conv or QLinearConv,
//! its Q/DQ, its decoding, the glue after it) in variant `p`.
//!
//! **Prediction** for an assignment `a`, linear in the ILP's variables:
//! `wall_fp32 + Σ_i (w_i / W_{a_i}) (wall_{a_i} − wall_fp32) + Σ_edges b_e·[int8-ness differs]`,
//! with `w_i = t_i(fp32)`, operator `i`'s measured share of fp32's time, and `W_p` the sum
//! of `w_i` over the candidates allowing `p`: a variant's change of time is spread over its
//! operators by their share, so every uniform variant is predicted exactly as measured.
//! Each operator's own kernel times per variant (`ops`) are kept in the table (the cache
//! file), but only the fp32 ones steer: onnxruntime's fusions move time between neighbours (an
//! int8 Conv makes the glue after it cheap), so per-operator differences favoured operators
//! whose neighbours carried the gain, and mis-predicted mixed assignments by 25% (PP-OCRv4
//! rec), where the shares predict within 5%. A variant within [`NOISE_FRACTION`] of fp32
//! predicts no change. `b_e` is fitted on a mixed variant ([`BoundaryFit`]).

use super::candidate::OpCandidate;
use super::latency_cache::{self, CacheKey, CacheStatus};
use super::{Assignment, NodeKey, Precision, Ranges};
use optimize_ir::data::HostTensor;
use optimize_ir::error::Result;
use optimize_ir::ir::{Graph, Model};
use optimize_ir::onnx_io::export::{to_bytes, ExportOptions};
use optimize_runtimes::host::CpuInfo;
use optimize_runtimes::profile::{time_model, KernelTime};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// How the table is measured.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencySettings {
    /// Intra-op threads of the target (`--threads`).
    pub threads: usize,
    /// Timed runs per variant (median).
    pub runs: usize,
    /// Cache folder (`None`: [`latency_cache::default_dir`]; no cache when that is unset).
    pub cache_dir: Option<PathBuf>,
}

impl Default for LatencySettings {
    fn default() -> Self {
        LatencySettings {
            threads: 1,
            runs: 9,
            cache_dir: None,
        }
    }
}

/// One measured variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VariantTiming {
    pub precision: Precision,
    /// Candidates at this precision in the variant (the others stay fp32).
    pub operators: usize,
    /// Median wall time of the plain session.
    pub wall_ms: f64,
    /// Sum of the profiled kernels' mean times.
    pub kernel_ms: f64,
    /// Of which attributed to a candidate.
    pub attributed_ms: f64,
}

/// The measured table (also the cache file's content).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyTable {
    pub key: CacheKey,
    pub runs: usize,
    pub variants: Vec<VariantTiming>,
    /// Per candidate, its kernels' milliseconds in each variant it takes part in.
    pub ops: BTreeMap<NodeKey, BTreeMap<Precision, f64>>,
    /// Milliseconds per million elements of one QuantizeLinear plus one DequantizeLinear.
    pub qdq_ms_per_melem: f64,
    /// What one int8/float boundary costs per million elements of its tensor, fitted on a
    /// mixed variant (see [`BoundaryFit`]); the Q/DQ cost when there is none.
    pub boundary_ms_per_melem: f64,
    pub boundary_fit: Option<BoundaryFit>,
}

/// The boundary cost, fitted: a variant with every other int8-capable operator at int8
/// (the most boundaries) is timed, and the time the uniform variants do not explain is
/// divided over its boundaries' elements. A boundary costs more than its Q and DQ: the glue
/// ops around it fall back to fp32 kernels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoundaryFit {
    pub operators_at_int8: usize,
    pub wall_ms: f64,
    pub predicted_without_boundaries_ms: f64,
    pub boundary_melems: f64,
}

/// Differences between a variant and fp32 below this fraction of fp32's time are timer
/// noise (interleaved medians here move by ~2.5%): such a variant predicts no change.
pub const NOISE_FRACTION: f64 = 0.03;

impl LatencyTable {
    fn variant(&self, p: Precision) -> Option<&VariantTiming> {
        self.variants.iter().find(|v| v.precision == p)
    }

    /// fp32's measured wall time.
    pub fn fp32_ms(&self) -> f64 {
        self.variant(Precision::Fp32).map_or(0.0, |v| v.wall_ms)
    }

    fn op_ms(&self, key: &str, p: Precision) -> f64 {
        self.ops
            .get(key)
            .and_then(|m| m.get(&p))
            .copied()
            .unwrap_or(0.0)
    }

    /// Per candidate (in `cands` order) and allowed precision: the predicted change of the
    /// model's time against fp32 when that candidate alone takes it (0 for fp32).
    pub fn option_deltas(&self, cands: &[OpCandidate]) -> Vec<BTreeMap<Precision, f64>> {
        let weight = |c: &OpCandidate| self.op_ms(&c.key, Precision::Fp32).max(1e-6);
        let share_total = |p: Precision| -> f64 {
            cands
                .iter()
                .filter(|c| c.bytes_at(p).is_some())
                .map(weight)
                .sum()
        };
        let fp32_ms = self.fp32_ms();
        let moves: BTreeMap<Precision, (f64, f64)> = self
            .variants
            .iter()
            .filter(|v| (v.wall_ms - fp32_ms).abs() >= NOISE_FRACTION * fp32_ms)
            .map(|v| {
                let change = v.wall_ms - fp32_ms;
                (v.precision, (change, share_total(v.precision).max(1e-12)))
            })
            .collect();
        cands
            .iter()
            .map(|c| {
                c.options
                    .iter()
                    .map(|&(p, _)| {
                        let delta = match (p, moves.get(&p)) {
                            (Precision::Fp32, _) | (_, None) => 0.0,
                            (_, Some(&(change, total))) => weight(c) / total * change,
                        };
                        (p, delta)
                    })
                    .collect()
            })
            .collect()
    }

    /// Milliseconds one int8/float boundary on a tensor of `elements` costs.
    pub fn boundary_ms(&self, elements: u64) -> f64 {
        self.boundary_ms_per_melem * elements as f64 / 1e6
    }
}

/// What the pass reports of the latency model besides the table.
#[derive(Clone, Debug)]
pub struct Measured {
    pub table: LatencyTable,
    pub cache: CacheStatus,
    pub cache_file: Option<PathBuf>,
    pub cache_note: Option<String>,
    pub cpu: CpuInfo,
    pub seconds: f64,
}

/// The table for `model` (after the passes precision requires) with its candidates, from
/// the cache or measured now on `input`.
pub fn measure(
    model: &Model,
    cands: &[OpCandidate],
    ranges: &Ranges,
    input: &[(String, HostTensor)],
    settings: &LatencySettings,
    boundaries: &[Boundary],
) -> Result<Measured> {
    let start = std::time::Instant::now();
    let cpu = CpuInfo::host();
    let version = optimize_runtimes::OrtRuntime::get()?.version();
    let fp32_bytes = to_bytes(model, &ExportOptions::default())?;
    let key = CacheKey::new(
        &cpu,
        &version,
        settings.threads,
        model_hash(&fp32_bytes, cands, input),
    );
    let dir = settings
        .cache_dir
        .clone()
        .or_else(latency_cache::default_dir);
    if let Some(table) = dir
        .as_deref()
        .and_then(|d| latency_cache::load(d, &key, |t: &LatencyTable| &t.key))
    {
        return Ok(Measured {
            cache_file: dir.map(|d| d.join("latency").join(key.file_name())),
            table,
            cache: CacheStatus::Hit,
            cache_note: None,
            cpu,
            seconds: start.elapsed().as_secs_f64(),
        });
    }
    let mut table = measure_now(model, &fp32_bytes, cands, ranges, input, settings, key)?;
    fit_boundaries(
        model, cands, ranges, input, settings, boundaries, &mut table,
    )?;
    let (cache, cache_file, cache_note) = match dir
        .as_deref()
        .map(|d| latency_cache::store(d, &table.key, &table))
    {
        Some(Ok(path)) => (CacheStatus::Miss, Some(path), None),
        Some(Err(e)) => (
            CacheStatus::MissNotStored,
            None,
            Some(format!("the latency cache could not be written: {e}")),
        ),
        None => (
            CacheStatus::MissNotStored,
            None,
            Some("no cache folder (set HOME, XDG_CACHE_HOME or OPTIMIZE_CACHE_DIR)".into()),
        ),
    };
    Ok(Measured {
        table,
        cache,
        cache_file,
        cache_note,
        cpu,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// An edge between two candidates (indices) and the elements of the tensor between them.
pub type Boundary = (usize, usize, u64);

/// Fits [`LatencyTable::boundary_ms_per_melem`] (see [`BoundaryFit`]).
fn fit_boundaries(
    model: &Model,
    cands: &[OpCandidate],
    ranges: &Ranges,
    input: &[(String, HostTensor)],
    settings: &LatencySettings,
    boundaries: &[Boundary],
    table: &mut LatencyTable,
) -> Result<()> {
    table.boundary_ms_per_melem = table.qdq_ms_per_melem;
    let int8 = |c: &OpCandidate| c.bytes_at(Precision::Int8).is_some();
    let capable: Vec<usize> = (0..cands.len()).filter(|&i| int8(&cands[i])).collect();
    if capable.len() < 2 || table.variant(Precision::Int8).is_none() {
        return Ok(());
    }
    let on: Vec<bool> = {
        let mut v = vec![false; cands.len()];
        for (n, &i) in capable.iter().enumerate() {
            v[i] = n % 2 == 0;
        }
        v
    };
    let melems: f64 = boundaries
        .iter()
        .filter(|&&(u, v, _)| int8(&cands[u]) && int8(&cands[v]) && on[u] != on[v])
        .map(|&(_, _, e)| e as f64 / 1e6)
        .sum();
    if melems <= 0.0 {
        return Ok(());
    }
    let assignment: Assignment = (0..cands.len())
        .filter(|&i| on[i])
        .map(|i| (cands[i].key.clone(), Precision::Int8))
        .collect();
    let deltas = table.option_deltas(cands);
    let predicted = table.fp32_ms()
        + (0..cands.len())
            .filter(|&i| on[i])
            .map(|i| deltas[i].get(&Precision::Int8).copied().unwrap_or(0.0))
            .sum::<f64>();
    let mut m = model.clone();
    super::rewrite::apply_with(&mut m, &assignment, ranges, true)?;
    let bytes = to_bytes(&m, &ExportOptions::default())?;
    let t = time_model(
        &bytes,
        "the boundary variant",
        input,
        settings.threads,
        table.runs,
    )?;
    table.boundary_ms_per_melem = ((t.wall_ms - predicted) / melems).max(0.0);
    table.boundary_fit = Some(BoundaryFit {
        operators_at_int8: assignment.len(),
        wall_ms: t.wall_ms,
        predicted_without_boundaries_ms: predicted,
        boundary_melems: melems,
    });
    Ok(())
}

/// sha256 of the model bytes, the input shapes and every candidate's options.
fn model_hash(model_bytes: &[u8], cands: &[OpCandidate], input: &[(String, HostTensor)]) -> String {
    let mut h = Sha256::new();
    h.update(model_bytes);
    for (name, t) in input {
        h.update(format!("input {name} {:?}\n", t.shape).as_bytes());
    }
    for c in cands {
        let opts: Vec<&str> = c.options.iter().map(|o| o.0.name()).collect();
        h.update(format!("cand {} {}\n", c.key, opts.join(",")).as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The precisions worth a variant: fp32 and every one some candidate allows.
fn variant_precisions(cands: &[OpCandidate]) -> Vec<Precision> {
    Precision::ALL
        .into_iter()
        .filter(|&p| p == Precision::Fp32 || cands.iter().any(|c| c.bytes_at(p).is_some()))
        .collect()
}

fn measure_now(
    model: &Model,
    fp32_bytes: &[u8],
    cands: &[OpCandidate],
    ranges: &Ranges,
    input: &[(String, HostTensor)],
    settings: &LatencySettings,
    key: CacheKey,
) -> Result<LatencyTable> {
    let progress = optimize_ir::progress::spinner("latency");
    let mut variants = Vec::new();
    let mut ops: BTreeMap<NodeKey, BTreeMap<Precision, f64>> = BTreeMap::new();
    let mut qdq_ms_per_melem = 0.0;
    let runs = runs_for(fp32_bytes, input, settings)?;
    for p in variant_precisions(cands) {
        progress.set_message(format!(
            "timing the {} variant ({} threads)",
            p.name(),
            settings.threads
        ));
        let assignment: Assignment = cands
            .iter()
            .filter(|c| p != Precision::Fp32 && c.bytes_at(p).is_some())
            .map(|c| (c.key.clone(), p))
            .collect();
        let rewritten;
        let (graph, bytes) = if assignment.is_empty() {
            (&model.graph, fp32_bytes.to_vec())
        } else {
            let mut m = model.clone();
            super::rewrite::apply_with(&mut m, &assignment, ranges, true)?;
            let bytes = to_bytes(&m, &ExportOptions::default())?;
            rewritten = m;
            (&rewritten.graph, bytes)
        };
        keep_variant(&bytes, p);
        let what = format!("the {} latency variant", p.name());
        let timing = time_model(&bytes, &what, input, settings.threads, runs)?;
        let attribution = Attribution::new(graph, cands);
        // The profiler adds its own time to every kernel, so kernel times are scaled to sum
        // to the plain session's wall time (the unit every prediction is in).
        let scale = if timing.kernel_ms() > 0.0 {
            timing.wall_ms / timing.kernel_ms()
        } else {
            1.0
        };
        let mut attributed = 0.0;
        for k in &timing.kernels {
            if let Some(key) = attribution.owner(&k.node) {
                let ms = k.us / 1e3 * scale;
                let at = if assignment.contains_key(key) {
                    p
                } else {
                    Precision::Fp32
                };
                if at == p {
                    *ops.entry(key.clone()).or_default().entry(p).or_insert(0.0) += ms;
                }
                attributed += ms;
            }
        }
        if p == Precision::Int8 {
            qdq_ms_per_melem = qdq_cost(&timing.kernels);
        }
        variants.push(VariantTiming {
            precision: p,
            operators: assignment.len(),
            wall_ms: timing.wall_ms,
            kernel_ms: timing.kernel_ms(),
            attributed_ms: attributed,
        });
    }
    progress.finish_and_clear();
    Ok(LatencyTable {
        key,
        runs,
        variants,
        ops,
        qdq_ms_per_melem,
        boundary_ms_per_melem: qdq_ms_per_melem,
        boundary_fit: None,
    })
}

/// With `OPTIMIZE_KEEP_LATENCY_VARIANTS=DIR`, writes each timed variant to
/// `DIR/latency_variant_P.onnx`, for looking at what was timed (a debugging aid; a failed
/// write is ignored).
fn keep_variant(bytes: &[u8], p: Precision) {
    if let Some(dir) = std::env::var_os("OPTIMIZE_KEEP_LATENCY_VARIANTS") {
        let dir = PathBuf::from(dir);
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(
            dir.join(format!("latency_variant_{}.onnx", p.name())),
            bytes,
        );
    }
}

/// Timed runs per variant: `settings.runs`, or more for a fast model, so that every variant
/// is timed for about 0.3 s (at most 300 runs): a model of a millisecond or less is
/// otherwise within scheduling noise.
fn runs_for(
    fp32_bytes: &[u8],
    input: &[(String, HostTensor)],
    settings: &LatencySettings,
) -> Result<usize> {
    let first = time_model(fp32_bytes, "the fp32 model", input, settings.threads, 3)?;
    let wanted = (300.0 / first.wall_ms.max(1e-3)).ceil() as usize;
    Ok(wanted.clamp(settings.runs.max(1), 300))
}

/// Milliseconds per million elements of one Q plus one DQ, from the int8 variant's kernels.
fn qdq_cost(kernels: &[KernelTime]) -> f64 {
    let per = |op: &str, bytes_per_elem: f64| -> Option<f64> {
        let (us, elems) = kernels
            .iter()
            .filter(|k| k.op == op && k.output_bytes > 0)
            .fold((0.0, 0.0), |(u, e), k| {
                (u + k.us, e + k.output_bytes as f64 / bytes_per_elem)
            });
        (elems > 0.0).then(|| us / 1e3 / (elems / 1e6))
    };
    per("QuantizeLinear", 1.0).unwrap_or(0.0) + per("DequantizeLinear", 4.0).unwrap_or(0.0)
}

/// Which candidate a kernel onnxruntime ran belongs to, by name. Our rewrite names what it
/// inserts after the operator's key (`KEY__w_dequantize`, `X__dq_for_KEY__node`) and keeps
/// the operator's own node name; onnxruntime names a fused kernel after the node it
/// replaced (`NAME_token_12`, `NAME/duplicated`) or after its output tensor (`T_nchwc`).
pub struct Attribution<'a> {
    by_node: HashMap<&'a str, &'a NodeKey>,
    producer_of: HashMap<&'a str, &'a str>,
    first_input: HashMap<&'a str, &'a str>,
}

impl<'a> Attribution<'a> {
    pub fn new(g: &'a Graph, cands: &'a [OpCandidate]) -> Attribution<'a> {
        let mut keys: Vec<&NodeKey> = cands.iter().map(|c| &c.key).collect();
        keys.sort_by_key(|k| std::cmp::Reverse(k.len()));
        let by_name: HashMap<&str, &NodeKey> = cands
            .iter()
            .filter(|c| !c.node_name.is_empty())
            .map(|c| (c.node_name.as_str(), &c.key))
            .collect();
        let direct = |name: &str, outputs: &[String]| -> Option<&'a NodeKey> {
            if let Some(k) = by_name.get(name) {
                return Some(*k);
            }
            if let Some(k) = keys
                .iter()
                .find(|k| outputs.iter().any(|o| o == k.as_str()))
            {
                return Some(*k);
            }
            if let Some((_, tail)) = name.split_once("__dq_for_") {
                let owner = tail.strip_suffix("__node").unwrap_or(tail);
                if let Some(k) = keys.iter().find(|k| k.as_str() == owner) {
                    return Some(*k);
                }
            }
            keys.iter()
                .find(|k| {
                    name.len() > k.len() + 2
                        && name.starts_with(k.as_str())
                        && name[k.len()..].starts_with("__")
                })
                .copied()
        };
        let mut by_node = HashMap::new();
        let mut producer_of = HashMap::new();
        let mut first_input = HashMap::new();
        let mut quantizers = Vec::new();
        for (_, n) in g.nodes() {
            for o in &n.outputs {
                producer_of.insert(o.as_str(), n.name.as_str());
            }
            if let Some(i) = n
                .inputs
                .iter()
                .find(|i| !i.is_empty() && g.constant_tensor(i).is_none())
            {
                first_input.insert(n.name.as_str(), i.as_str());
            }
            match direct(&n.name, &n.outputs) {
                Some(k) => {
                    by_node.insert(n.name.as_str(), k);
                }
                None if n.op_type == "QuantizeLinear" => quantizers.push(n),
                None => {}
            }
        }
        // An activation's quantizer is shared by its int8 consumers: the first one owns it.
        for q in quantizers {
            let owner = q
                .outputs
                .iter()
                .flat_map(|o| g.consumers(o))
                .find_map(|(idx, _)| {
                    g.ops
                        .node_weight(idx)
                        .and_then(|c| by_node.get(c.name.as_str()).copied())
                });
            if let Some(k) = owner {
                by_node.insert(q.name.as_str(), k);
            }
        }
        // Every other op belongs to the operator upstream of it, through its first dynamic
        // input (the activation after a Conv, the glue ops the int8 glue pass quantizes):
        // its time moves with that operator's precision.
        for &idx in &g.order {
            let Some(n) = g.ops.node_weight(idx) else {
                continue;
            };
            if by_node.contains_key(n.name.as_str()) || n.op_type == "Constant" {
                continue;
            }
            let upstream = first_input
                .get(n.name.as_str())
                .and_then(|t| producer_of.get(t))
                .and_then(|p| by_node.get(p).copied());
            if let Some(k) = upstream {
                by_node.insert(n.name.as_str(), k);
            }
        }
        Attribution {
            by_node,
            producer_of,
            first_input,
        }
    }

    /// The candidate a profiled kernel belongs to, if any.
    pub fn owner(&self, kernel: &str) -> Option<&'a NodeKey> {
        let name = strip_runtime_suffixes(kernel);
        if let Some(k) = self.by_node.get(name) {
            return Some(*k);
        }
        // A kernel named after a tensor: a fused node whose last op (an activation, a
        // residual Add) produced it; walk up to the operator it was fused into.
        let mut tensor = name;
        for _ in 0..4 {
            let node = self.producer_of.get(tensor)?;
            if let Some(k) = self.by_node.get(node) {
                return Some(*k);
            }
            tensor = self.first_input.get(node)?;
        }
        None
    }
}

/// `NAME_token_12/duplicated_token_3` → `NAME`; `T_nchwc` → `T`.
pub fn strip_runtime_suffixes(kernel: &str) -> &str {
    // onnxruntime appends `/duplicated…` to a DQ it copied; node names may hold `/` too.
    let mut name = kernel.find("/duplicated").map_or(kernel, |i| &kernel[..i]);
    loop {
        let before = name;
        if let Some(i) = name.rfind("_token_") {
            if name[i + 7..].chars().all(|c| c.is_ascii_digit()) && i + 7 < name.len() {
                name = &name[..i];
            }
        }
        name = name.strip_suffix("_nchwc").unwrap_or(name);
        if name == before {
            return name;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_suffixes_are_stripped() {
        assert_eq!(strip_runtime_suffixes("p2o.Conv.0_token_17"), "p2o.Conv.0");
        assert_eq!(
            strip_runtime_suffixes("a__dequantize/duplicated_token_7"),
            "a__dequantize"
        );
        assert_eq!(
            strip_runtime_suffixes("conv2d_494.tmp_0_nchwc"),
            "conv2d_494.tmp_0"
        );
        assert_eq!(strip_runtime_suffixes("x_token_"), "x_token_");
        assert_eq!(
            strip_runtime_suffixes("ReorderOutput_token_184"),
            "ReorderOutput"
        );
        assert_eq!(
            strip_runtime_suffixes("/model.0/conv/Conv_token_3"),
            "/model.0/conv/Conv"
        );
        assert_eq!(
            strip_runtime_suffixes("/model.2/Split_output_0/duplicated"),
            "/model.2/Split_output_0"
        );
    }
}
