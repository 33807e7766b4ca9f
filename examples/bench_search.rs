//! The fidelity-driven search's cost against one fixed-budget run (issue 16: at most 4× on
//! det). Both runs are the CLI's pipeline on the same model, calibration folder, metric and
//! target; the fixed run uses `--size-budget 0.3` (the search's first probe). Prints both
//! wall times, the ratio, the probes and the sizes.
//!
//!   cargo run --example ppocr_calib -- det:320 /tmp/det_cal 8 calib
//!   cargo run --example bench_search -- .deps/models/ch_PP-OCRv4_det_infer.onnx /tmp/det_cal \
//!       x=1x3x320x320 iou:0.3 0.8

use optimize::fidelity::FidelitySpec;
use optimize::passes::precision::pass::{Budget, PrecisionConfig};
use optimize::{run_pipeline, PipelineOptions};
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, calib, shape, metric, target] = args.as_slice() else {
        return Err("usage: bench_search MODEL CALIB_DIR NAME=DIMS METRIC TARGET".into());
    };
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let spec = FidelitySpec::parse(std::slice::from_ref(metric), std::slice::from_ref(target))
        .map_err(|e| format!("--{} {}: {}", e.key, e.value, e.why))?;
    let bindings = optimize::data::parse_input_shapes(std::slice::from_ref(shape))
        .map_err(|e| e.to_string())?;
    let options = |budget: Option<f64>, out: &str| {
        let mut o = PipelineOptions::new(model, dir.path().join(out));
        o.bindings = bindings.clone();
        o.fidelity = spec.clone();
        let mut p = PrecisionConfig {
            calib_dir: Some(PathBuf::from(calib)),
            explicit: true,
            ..PrecisionConfig::default()
        };
        if let Some(b) = budget {
            p.budget = Budget::SizeFraction(b);
            p.budget_explicit = true;
        }
        o.precision = Some(p);
        o
    };
    let t = Instant::now();
    let fixed = run_pipeline(&options(Some(0.3), "fixed.onnx")).map_err(|e| e.to_string())?;
    let fixed_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let search = run_pipeline(&options(None, "search.onnx"));
    let search_s = t.elapsed().as_secs_f64();
    let size = |r: &optimize::report::Report| {
        r.sections
            .get("precision")
            .and_then(|p| p["size_fraction"].as_f64())
            .unwrap_or(f64::NAN)
    };
    println!(
        "fixed budget 0.3: {fixed_s:.1} s, size {:.3}, validation passed: {}",
        size(&fixed.report),
        fixed.report.validation.as_ref().is_some_and(|v| v.passed)
    );
    match search {
        Ok(s) => {
            let probes = s
                .report
                .sections
                .get("precision")
                .and_then(|p| p["search"]["probes"].as_array().cloned())
                .unwrap_or_default();
            for p in &probes {
                println!(
                    "  probe budget {:.4}: passed {}, fidelity {}, {:.1} s",
                    p["budget"].as_f64().unwrap_or(f64::NAN),
                    p["passed"],
                    p["fidelity"],
                    p["seconds"].as_f64().unwrap_or(f64::NAN)
                );
            }
            println!(
                "search: {search_s:.1} s, {} probes, size {:.3}",
                probes.len(),
                size(&s.report)
            );
        }
        Err(e) => println!("search: {search_s:.1} s, failed: {e}"),
    }
    println!("ratio search / fixed: {:.2}", search_s / fixed_s);
    Ok(())
}
