//! Explain benchmark: seconds and peak memory to explain one input of a model (a session on
//! the model with the tensors the sweep reads exposed, one run, then the Rust backward
//! sweep), next to the median time of one plain onnxruntime forward pass on the same input,
//! in the same process. Run by scripts/bench_explain.sh. Also prints where the time goes:
//! the collect phases (prepare, session, run), the cost per input when the session is
//! reused (explaining several inputs), and with `--profile` the sweep's seconds per op type.
//! `--expose-all` exposes every intermediate (the old collect) for comparison.
//!
//! usage: bench_explain MODEL [--input-shape NAME=DIMS] [--preset P] [--runs N] [--profile]
//!        [--expose-all]
//!
//! Prints one `key=value` line (parsed by the script) and, with `--profile`, the sweep's
//! seconds per op type.

use optimize::data::{parse_input_shapes, random_inputs};
use optimize::passes::relevance::activations::{CollectTimes, Collector};
use optimize::passes::relevance::{explain_with_times, RuleConfig, Target};
use optimize::pipeline::load_and_infer;
use optimize::runtime::OrtRuntime;
use optimize::validate::input_specs;
use std::path::PathBuf;
use std::time::Instant;

#[path = "common/memory.rs"]
mod memory;
use memory::{peak_heap_bytes, peak_rss_bytes};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn fail(msg: String) -> ! {
    eprintln!("bench_explain: {msg}");
    std::process::exit(2);
}

fn main() {
    // As the command line does (optimize::cli::run).
    optimize::heap::keep_freed_memory();
    let mut model = None;
    let mut shapes = Vec::new();
    let mut preset = "auto".to_string();
    let mut runs = 3usize;
    let mut profile = false;
    let mut all = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--input-shape" => shapes.push(args.next().unwrap_or_default()),
            "--preset" => preset = args.next().unwrap_or_default(),
            "--runs" => runs = args.next().and_then(|s| s.parse().ok()).unwrap_or(3).max(1),
            "--profile" => profile = true,
            "--expose-all" => all = true,
            _ if model.is_none() => model = Some(PathBuf::from(a)),
            _ => fail(format!("unexpected argument '{a}'")),
        }
    }
    let Some(model) = model else {
        fail("usage: bench_explain MODEL [--input-shape NAME=DIMS] [--preset P] [--runs N] [--profile]".into())
    };
    let bindings = parse_input_shapes(&shapes).unwrap_or_else(|e| fail(e.to_string()));
    let cfg = RuleConfig::preset(&preset).unwrap_or_else(|e| fail(e));
    let m = load_and_infer(&model, &bindings).unwrap_or_else(|e| fail(e.to_string()));
    let specs = input_specs(&m, &bindings).unwrap_or_else(|e| fail(e.to_string()));
    let sample = random_inputs(&specs, 0, 1)
        .unwrap_or_else(|e| fail(e.to_string()))
        .remove(0);
    let rt = OrtRuntime::get().unwrap_or_else(|e| fail(e.to_string()));
    let rss_before = peak_rss_bytes();

    // Explain first, so the process's peak memory is the explanation's (plus the runtime).
    let (mut t_total, mut t_fwd, mut t_sweep) = (Vec::new(), Vec::new(), Vec::new());
    let mut times = Default::default();
    let mut heap_peak = 0usize;
    let mut nodes = 0usize;
    let mut phases: Vec<CollectTimes> = Vec::new();
    for _ in 0..runs {
        let base = memory::live_heap_bytes();
        memory::reset_peak_heap();
        let t0 = Instant::now();
        let mut collector =
            Collector::with_all(&m, &cfg, all).unwrap_or_else(|e| fail(e.to_string()));
        let acts = collector
            .run(&sample.values)
            .unwrap_or_else(|e| fail(e.to_string()));
        phases.push(collector.times);
        let t1 = Instant::now();
        let (r, op_times) = explain_with_times(&m, &acts, &Target::default(), &cfg, false)
            .unwrap_or_else(|e| fail(e.to_string()));
        let t2 = Instant::now();
        drop(acts);
        heap_peak = heap_peak.max(peak_heap_bytes().saturating_sub(base));
        t_total.push((t2 - t0).as_secs_f64());
        t_fwd.push((t1 - t0).as_secs_f64());
        t_sweep.push((t2 - t1).as_secs_f64());
        nodes = r.coverage.nodes;
        times = op_times;
    }
    let rss_explain = peak_rss_bytes();

    // A plain forward pass of the original model on the same input.
    let tmp = tempfile::tempdir().unwrap_or_else(|e| fail(e.to_string()));
    let path = tmp.path().join("plain.onnx");
    optimize::onnx_io::save_model(&m, &path, &Default::default())
        .unwrap_or_else(|e| fail(e.to_string()));
    let t0 = Instant::now();
    let mut session = rt
        .session_from_file(&path)
        .unwrap_or_else(|e| fail(e.to_string()));
    let session_s = t0.elapsed().as_secs_f64();
    // Median of max(runs, 5) forward passes after one warm-up.
    let time_forward = |session: &mut optimize::runtime::OrtSession| {
        session
            .run(&sample.values)
            .unwrap_or_else(|e| fail(e.to_string()));
        let mut times = Vec::new();
        for _ in 0..runs.max(5) {
            let t = Instant::now();
            session
                .run(&sample.values)
                .unwrap_or_else(|e| fail(e.to_string()));
            times.push(t.elapsed().as_secs_f64());
        }
        median(times)
    };
    let forward = time_forward(&mut session);
    // The same forward pass with onnxruntime's graph optimizations on (what users deploy).
    let forward_opt = time_forward(
        &mut rt
            .optimized_session_from_file(&path)
            .unwrap_or_else(|e| fail(e.to_string())),
    );
    let explain = median(t_total);
    println!(
        "nodes={nodes} forward_s={forward:.4} forward_opt_s={forward_opt:.4} session_s={session_s:.4} \
         explain_s={explain:.4} collect_s={:.4} sweep_s={:.4} ratio={:.2} ratio_opt={:.2} heap_mb={:.1} \
         rss_mb={:.1} rss_before_mb={:.1}",
        median(t_fwd.clone()),
        median(t_sweep.clone()),
        explain / forward,
        explain / forward_opt,
        heap_peak as f64 / 1048576.0,
        rss_explain as f64 / 1048576.0,
        rss_before as f64 / 1048576.0,
    );
    let ph = |f: fn(&CollectTimes) -> f64| median(phases.iter().map(f).collect());
    println!(
        "  collect: prepare {:.4} s, session {:.4} s, run {:.4} s ({:.1} forwards), {} tensors exposed ({:.1} MB)",
        ph(|t| t.prepare_s),
        ph(|t| t.session_s),
        ph(|t| t.run_s),
        ph(|t| t.run_s) / forward,
        phases.last().map(|t| t.exposed).unwrap_or(0),
        phases.last().map(|t| t.bytes).unwrap_or(0) as f64 / 1e6
    );
    println!(
        "  per input with the session reused: {:.4} s = {:.2} forwards",
        ph(|t| t.run_s) + median(t_sweep.clone()),
        (ph(|t| t.run_s) + median(t_sweep.clone())) / forward
    );
    if profile {
        let mut v: Vec<_> = times.into_iter().collect();
        v.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
        for (op, (n, s)) in v {
            println!("  sweep {op:<22} {n:>5} nodes {s:>9.4} s");
        }
    }
}
