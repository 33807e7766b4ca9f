//! Speed benchmark (issue 17): PP-OCRv4 cls, rec and det on real crops, at 1 thread and at
//! all cores, in one run with interleaved timing:
//! * fp32;
//! * onnxruntime `quantize_static` (QDQ U8S8 per-channel, opset-13 upgrade);
//! * ours `--objective speed` at onnxruntime's fidelity (the optimizer as a user runs it,
//!   with `--threads T` and `--min-fidelity` = the quantizer's measured fidelity);
//! * ours `--size-budget 0.30` (the default objective).
//!
//! Fidelity is measured on the evaluation crops (disjoint photographs from calibration);
//! latency is the median of `--runs` interleaved rounds on the first evaluation crop. For
//! the speed rows it also prints the latency model's prediction against the time measured
//! here. Run by `scripts/bench_speed.sh`; the measuring code is bench_precision's.
//!
//! usage: bench_speed [cls|rec|det ...] [--threads-list 1,2] [--runs N] [--calib N]
//!        [--eval N] [--det-side S] [--work DIR]   (env OPTIMIZE_BIN: the optimizer binary)

#[path = "bench_precision.rs"]
mod bench;

use bench::{Case, Metric, Row, Runner};
use optimize::error::{Error, Result};
use optimize::runtime::host::CpuInfo;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What the optimizer's report says about the latency model (speed rows).
struct Predicted {
    predicted_ms: f64,
    fp32_model_ms: f64,
    measured_by_optimizer_ms: Option<f64>,
}

/// Runs the optimizer binary; returns the report's latency section when there is one.
fn optimize(bin: &Path, model: &Path, out: &Path, args: &[String]) -> Result<Option<Predicted>> {
    let report = out.with_extension("json");
    let res = Command::new(bin)
        .arg(model)
        .arg("-o")
        .arg(out)
        .arg("--report")
        .arg(&report)
        .args(args)
        .output()
        .map_err(|e| Error::Runtime(format!("cannot run {}: {e}", bin.display())))?;
    if !res.status.success() {
        let err = String::from_utf8_lossy(&res.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(Error::Runtime(format!(
            "optimizer exited {}: {last}",
            res.status
        )));
    }
    let text = std::fs::read_to_string(&report).map_err(|e| Error::input(&report, e))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::input(&report, e))?;
    let l = &v["precision"]["latency"];
    Ok(l["predicted_ms"].as_f64().map(|p| Predicted {
        predicted_ms: p,
        fp32_model_ms: l["fp32_ms"].as_f64().unwrap_or(f64::NAN),
        measured_by_optimizer_ms: l["measured_ms"].as_f64(),
    }))
}

/// The optimizer's fidelity metric closest to the benchmark's.
fn cli_metric(m: Metric) -> &'static str {
    match m {
        Metric::Top1 | Metric::SeqArgmax => "top1",
        Metric::MapIou => "iou:0.3",
    }
}

struct Bench<'a> {
    bin: &'a Path,
    work: &'a Path,
    runs: usize,
}

impl Bench<'_> {
    fn model(&self, case: &Case, threads_list: &[usize]) -> Result<()> {
        let data = bench::prepare(case, self.work, 0)?;
        let dir = self.work.join(case.name);
        let runner = Runner::new(1, self.runs, Vec::new());
        let runs_dir = dir.join("outputs");
        let (reference, _) = runner.measure(&case.model, &data.eval_dir, &runs_dir)?;
        let fp32_bytes = bench::weight_bytes(&case.model)?;
        let measure = |label: &str, path: &Path| -> Result<Row> {
            let (outs, _) = runner.measure(path, &data.eval_dir, &runs_dir)?;
            Ok(Row {
                label: label.to_string(),
                path: path.to_path_buf(),
                bytes: bench::weight_bytes(path)?,
                fidelity: bench::fidelity(case.metric, &reference, &outs)?,
                latency_ms: f64::NAN,
                solver: String::new(),
                failed: None,
            })
        };
        let fp32 = measure("fp32", &case.model)?;
        let ort_out = dir.join("ort_quantize_static.onnx");
        bench::ort_quantize(&case.model, &data.calib_dir, &ort_out)?;
        let ort = measure("onnxruntime quantize_static", &ort_out)?;
        let calib = data.calib_dir.display().to_string();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let size_out = dir.join("ours_size_030.onnx");
        let size_row = optimize(
            self.bin,
            &case.model,
            &size_out,
            &s(&["--calib", &calib, "--size-budget", "0.30"]),
        )
        .and_then(|_| measure("ours --size-budget 0.30", &size_out))
        .unwrap_or_else(|e| failed("ours --size-budget 0.30", &e));
        // The quantizer's fidelity, as a target our fidelity search can state (4 decimals,
        // rounded down so that "equal" stays reachable).
        let target = (ort.fidelity * 1e4).floor() / 1e4;
        for &threads in threads_list {
            let label = format!("ours speed @ ort fidelity, {threads} thr");
            let out = dir.join(format!("ours_speed_t{threads}.onnx"));
            let args = s(&[
                "--calib",
                &calib,
                "--objective",
                "speed",
                "--threads",
                &threads.to_string(),
                "--metric",
                cli_metric(case.metric),
                "--min-fidelity",
                &format!("{target}"),
            ]);
            let (speed_row, predicted) = match optimize(self.bin, &case.model, &out, &args) {
                Ok(p) => match measure(&label, &out) {
                    Ok(r) => (r, p),
                    Err(e) => (failed(&label, &e), None),
                },
                Err(e) => (failed(&label, &e), None),
            };
            let mut rows = vec![fp32.clone(), ort.clone(), speed_row, size_row.clone()];
            let timed = Runner::new(threads, self.runs, Vec::new());
            let ran: Vec<usize> = (0..rows.len())
                .filter(|&i| rows[i].failed.is_none())
                .collect();
            let paths: Vec<PathBuf> = ran.iter().map(|&i| rows[i].path.clone()).collect();
            let first = first_crop(&data.eval_dir)?;
            let ms =
                timed.latencies(&paths, &first, &dir.join(format!("latency_t{threads}.txt")))?;
            for (&i, v) in ran.iter().zip(ms) {
                rows[i].latency_ms = v;
            }
            let table = bench::Table {
                case: case.clone(),
                fp32_bytes,
                rows,
            };
            println!(
                "\n[{} thread(s), median of {} interleaved runs]",
                threads, self.runs
            );
            table.print();
            verdicts(&table, threads, target, predicted.as_ref());
        }
        Ok(())
    }
}

fn failed(label: &str, e: &Error) -> Row {
    Row::failed(label, e)
}

fn first_crop(dir: &Path) -> Result<PathBuf> {
    bench::sorted_npy(dir)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::input(dir, "no evaluation crops"))
}

/// The must-hold comparisons, printed: speed and fidelity against the quantizer, speed-up
/// over fp32, and the latency model's prediction against the time measured here.
fn verdicts(t: &bench::Table, threads: usize, target: f64, predicted: Option<&Predicted>) {
    let name = t.case.name;
    let (Some(fp32), Some(ort), Some(speed)) = (t.rows.first(), t.rows.get(1), t.rows.get(2))
    else {
        return;
    };
    if speed.failed.is_some() {
        println!("{name} @ {threads} thr: ours --objective speed FAILED (see the row)");
        return;
    }
    let faster = speed.latency_ms <= ort.latency_ms;
    let fid_ok = speed.fidelity >= ort.fidelity;
    println!(
        "{name} @ {threads} thr: ours speed {:.2} ms vs quantize_static {:.2} ms ({}), fidelity {:.4} vs {:.4} ({}; target stated {target}), {:.2}x fp32",
        speed.latency_ms,
        ort.latency_ms,
        if faster { "at least as fast" } else { "SLOWER" },
        speed.fidelity,
        ort.fidelity,
        if fid_ok { "equal or better" } else { "LOWER" },
        fp32.latency_ms / speed.latency_ms,
    );
    if let Some(p) = predicted {
        let err = (p.predicted_ms - speed.latency_ms) / speed.latency_ms;
        println!(
            "{name} @ {threads} thr: latency model predicted {:.2} ms, measured here {:.2} ms ({:+.1}%, {}); the optimizer's own timing {}; its fp32 (after lossless simplification) {:.2} ms",
            p.predicted_ms,
            speed.latency_ms,
            100.0 * err,
            if err.abs() <= 0.15 { "within 15%" } else { "OFF BY MORE THAN 15%" },
            p.measured_by_optimizer_ms
                .map_or("-".to_string(), |m| format!("{m:.2} ms")),
            p.fp32_model_ms,
        );
    }
}

fn main() {
    if bench::ran_as_worker() {
        return;
    }
    if let Err(e) = real_main() {
        eprintln!("bench_speed: {e}");
        std::process::exit(e.exit_code());
    }
}

fn real_main() -> Result<()> {
    let mut models = Vec::new();
    let (mut calib, mut eval, mut det_side, mut runs) = (32usize, 32usize, 320usize, 15usize);
    let mut threads_list = vec![1usize, 2];
    let mut work = bench::root().join("target/bench_speed");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |what: &str| -> Result<String> {
            args.next()
                .ok_or_else(|| Error::Usage(format!("{what} needs a value")))
        };
        let num = |what: &str, v: String| -> Result<usize> {
            v.parse()
                .map_err(|_| Error::Usage(format!("{what} needs a number")))
        };
        match a.as_str() {
            "--calib" => calib = num("--calib", value("--calib")?)?,
            "--eval" => eval = num("--eval", value("--eval")?)?,
            "--det-side" => det_side = num("--det-side", value("--det-side")?)?,
            "--runs" => runs = num("--runs", value("--runs")?)?,
            "--threads-list" => {
                threads_list = value("--threads-list")?
                    .split(',')
                    .map(|t| num("--threads-list", t.to_string()))
                    .collect::<Result<_>>()?
            }
            "--work" => work = PathBuf::from(value("--work")?),
            m => models.push(m.to_string()),
        }
    }
    if models.is_empty() {
        models = vec!["cls".into(), "rec".into(), "det".into()];
    }
    let bin = std::env::var_os("OPTIMIZE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| bench::root().join("target/release/optimize"));
    let cpu = CpuInfo::host();
    println!(
        "cpu: {} ({} cores), flags that matter: {}; int8 dot-product instructions: {}",
        cpu.model,
        cpu.cores,
        cpu.flags_line(),
        if cpu.has_int8_dot() {
            "yes (VNNI/AMX)"
        } else {
            "no"
        }
    );
    println!(
        "onnxruntime {} on CPU, graph optimizations all, no spin-waiting; every latency the median of {runs} interleaved runs on the first eval crop; optimizer {}",
        optimize::runtime::locate_onnxruntime()?.display(),
        bin.display()
    );
    let b = Bench {
        bin: &bin,
        work: &work,
        runs,
    };
    for m in &models {
        let (c, e) = if m == "det" {
            (calib.min(16), eval.min(16))
        } else {
            (calib, eval)
        };
        let case = Case::ppocr(m, c, e, det_side)?;
        if let Err(e) = b.model(&case, &threads_list) {
            println!("{m}: FAILED: {e}");
        }
    }
    Ok(())
}
