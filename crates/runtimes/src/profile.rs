//! Times a model as a user deploys it on onnxruntime's CPU provider, and reads
//! onnxruntime's own profiler for the time each kernel takes.
//!
//! Two sessions of the same bytes run in turn: a plain one, whose median wall time is the
//! model's latency, and a profiled one, whose per-kernel times say where that time goes
//! (the profiler itself adds a little per kernel, so its sum is not the wall time).

use crate::OrtRuntime;
use optimize_ir::data::HostTensor;
use optimize_ir::error::{Error, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Instant;

/// One kernel of the optimized graph onnxruntime ran.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTime {
    /// onnxruntime's node name (after its fusions: `Conv_token_12`, `t_nchwc`, …).
    pub node: String,
    pub op: String,
    /// Mean microseconds per run.
    pub us: f64,
    /// Bytes of the kernel's outputs.
    pub output_bytes: u64,
}

/// What [`time_model`] measured.
#[derive(Clone, Debug)]
pub struct Timing {
    /// Median wall milliseconds of the plain session's runs.
    pub wall_ms: f64,
    pub runs: usize,
    pub threads: usize,
    /// Kernels in the order onnxruntime first ran them.
    pub kernels: Vec<KernelTime>,
}

impl Timing {
    /// Sum of the kernels' mean times, in milliseconds.
    pub fn kernel_ms(&self) -> f64 {
        self.kernels.iter().map(|k| k.us).sum::<f64>() / 1e3
    }
}

/// Runs `bytes` (a model) on `inputs`: two warm-up runs, then `runs` rounds of one plain and
/// one profiled run, with `threads` intra-op threads. The profile file is written into a
/// temporary folder of its own and removed.
pub fn time_model(
    bytes: &[u8],
    what: &str,
    inputs: &[(String, HostTensor)],
    threads: usize,
    runs: usize,
) -> Result<Timing> {
    let rt = OrtRuntime::get()?;
    let runs = runs.max(1);
    let scratch = tempfile::tempdir()
        .map_err(|e| Error::Runtime(format!("cannot create a folder for profiles: {e}")))?;
    let mut plain = rt.timing_session_from_bytes(bytes, what, threads, None)?;
    let prefix = scratch.path().join("ort_profile");
    let mut profiled = rt.timing_session_from_bytes(bytes, what, threads, Some(&prefix))?;
    for _ in 0..2 {
        plain.run(inputs)?;
        profiled.run(inputs)?;
    }
    let mut walls = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        plain.run(inputs)?;
        walls.push(t.elapsed().as_secs_f64() * 1e3);
        profiled.run(inputs)?;
    }
    let file = profiled.end_profiling()?;
    let text = std::fs::read_to_string(&file)
        .map_err(|e| Error::Runtime(format!("cannot read {}: {e}", file.display())));
    let _ = std::fs::remove_file(&file);
    let events: Value = serde_json::from_str(&text?)
        .map_err(|e| Error::Runtime(format!("onnxruntime's profile of {what}: {e}")))?;
    walls.sort_by(f64::total_cmp);
    Ok(Timing {
        wall_ms: walls[walls.len() / 2],
        runs,
        threads,
        kernels: kernel_times(&events, runs),
    })
}

fn num(v: Option<&Value>) -> f64 {
    match v {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        Some(Value::String(s)) => s.parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// Mean per-run kernel times over the last `runs` `model_run` events of a profile (the
/// warm-up runs before them are left out).
pub fn kernel_times(events: &Value, runs: usize) -> Vec<KernelTime> {
    let list = events.as_array().map(Vec::as_slice).unwrap_or(&[]);
    let mut windows: Vec<(f64, f64)> = list
        .iter()
        .filter(|e| e["cat"] == "Session" && e["name"] == "model_run")
        .map(|e| {
            let ts = num(e.get("ts"));
            (ts, ts + num(e.get("dur")))
        })
        .collect();
    windows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let timed = &windows[windows.len().saturating_sub(runs)..];
    let counted = timed.len().max(1) as f64;
    let mut order: Vec<String> = Vec::new();
    let mut sums: BTreeMap<String, KernelTime> = BTreeMap::new();
    for e in list {
        let Some(name) = e["name"]
            .as_str()
            .and_then(|n| n.strip_suffix("_kernel_time"))
        else {
            continue;
        };
        if e["cat"] != "Node" {
            continue;
        }
        let ts = num(e.get("ts"));
        if !timed.iter().any(|&(a, b)| ts >= a && ts <= b) {
            continue;
        }
        let entry = sums.entry(name.to_string()).or_insert_with(|| {
            order.push(name.to_string());
            KernelTime {
                node: name.to_string(),
                op: e["args"]["op_name"].as_str().unwrap_or("").to_string(),
                us: 0.0,
                output_bytes: num(e["args"].get("output_size")) as u64,
            }
        });
        entry.us += num(e.get("dur")) / counted;
    }
    order.into_iter().filter_map(|n| sums.remove(&n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kernel_times_skip_warm_up_runs_and_average() {
        let ev = json!([
            {"cat": "Session", "name": "model_run", "ts": 0, "dur": 100},
            {"cat": "Node", "name": "a_kernel_time", "ts": 10, "dur": 50, "args": {"op_name": "Conv", "output_size": "64"}},
            {"cat": "Session", "name": "model_run", "ts": 200, "dur": 100},
            {"cat": "Node", "name": "a_kernel_time", "ts": 210, "dur": 8, "args": {"op_name": "Conv", "output_size": "64"}},
            {"cat": "Node", "name": "b_kernel_time", "ts": 220, "dur": 2, "args": {"op_name": "Relu"}},
            {"cat": "Session", "name": "model_run", "ts": 400, "dur": 100},
            {"cat": "Node", "name": "a_kernel_time", "ts": 410, "dur": 12, "args": {"op_name": "Conv", "output_size": "64"}},
            {"cat": "Node", "name": "a_fence_before", "ts": 411, "dur": 0}
        ]);
        let k = kernel_times(&ev, 2);
        assert_eq!(k.len(), 2);
        assert_eq!((k[0].node.as_str(), k[0].op.as_str()), ("a", "Conv"));
        assert!((k[0].us - 10.0).abs() < 1e-9, "{k:?}");
        assert_eq!(k[0].output_bytes, 64);
        assert!((k[1].us - 1.0).abs() < 1e-9);
    }
}
