//! Tiling benchmark (issue 21): for each case, the off-chip traffic of layer-by-layer
//! execution, the greedy (Vela-style) cascades and ours, with solve seconds.
//! Run by scripts/bench_tiling.sh (release build).

use optimize::pass_manager::Pass;
use optimize::passes::cleanup::Cleanup;
use optimize::passes::tiling::graph::extract;
use optimize::passes::tiling::run::{solve, TilingOptions};
use optimize::passes::tiling::submodel::cut;
use optimize::pipeline::load_and_infer;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

struct Case {
    name: &'static str,
    path: PathBuf,
    input: Option<(&'static str, Vec<i64>)>,
    cut: Option<&'static str>,
    budget: u64,
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let light = root.join(".deps/onnx-data/light");
    let det = root.join(".deps/models/ch_PP-OCRv4_det_infer.onnx");
    let only: Option<String> = std::env::args().nth(1);
    let cases = [
        Case {
            name: "vgg19 conv1-5",
            path: light.join("light_vgg19.onnx"),
            input: None,
            cut: Some("r11"),
            budget: 362_000,
        },
        Case {
            name: "ppocr det 320",
            path: det.clone(),
            input: Some(("x", vec![1, 3, 320, 320])),
            cut: None,
            budget: 512 * 1024,
        },
        Case {
            name: "ppocr det 320",
            path: det,
            input: Some(("x", vec![1, 3, 320, 320])),
            cut: None,
            budget: 2 << 20,
        },
        Case {
            name: "resnet50",
            path: light.join("light_resnet50.onnx"),
            input: None,
            cut: None,
            budget: 1 << 20,
        },
        Case {
            name: "densenet121",
            path: light.join("light_densenet121.onnx"),
            input: None,
            cut: None,
            budget: 1 << 20,
        },
    ];
    for c in cases
        .iter()
        .filter(|c| only.as_deref().is_none_or(|o| c.name.contains(o)))
    {
        let bindings: HashMap<String, Vec<i64>> = c
            .input
            .iter()
            .map(|(n, d)| (n.to_string(), d.clone()))
            .collect();
        let mut model = load_and_infer(&c.path, &bindings).expect("model loads");
        Cleanup.run(&mut model).expect("cleanup");
        model.graph.relink().expect("relink");
        if let Some(o) = c.cut {
            cut(&mut model, &[o]).expect("cut");
        }
        if std::env::var("TILING_INT8").is_ok() {
            use optimize::passes::precision::pass::{
                run_precision, Budget, Objective, PrecisionConfig, Strategy,
            };
            let cfg = PrecisionConfig {
                budget: Budget::SizeFraction(1.0),
                strategy: Strategy::Uniform(optimize::passes::precision::Precision::Int8),
                objective: Objective::Proxy,
                measure: false,
                calib_random: true,
                ..PrecisionConfig::default()
            };
            optimize::passes::tiling::submodel::materialize_filled_constants(&mut model)
                .expect("weights");
            optimize::shape::infer(&mut model, &bindings).expect("shapes");
            run_precision(&mut model, &cfg).expect("int8");
            optimize::shape::infer(&mut model, &bindings).expect("shapes");
            model.graph.relink().expect("relink");
        }
        let g = extract(&model, 64, false).expect("tiling view");
        let t = Instant::now();
        let mut opts = TilingOptions::default();
        if let Ok(f) = std::env::var("TILING_FRACTIONS") {
            opts.fractions = f.split(',').filter_map(|x| x.parse().ok()).collect();
        }
        let out = solve(&g, c.budget, &opts).expect("tiles");
        let secs = t.elapsed().as_secs_f64();
        let mib = |m: &optimize::passes::tiling::run::Method| {
            m.traffic()
                .map(|t| format!("{:.2}", t as f64 / 1048576.0))
                .unwrap_or_else(|| "-".into())
        };
        println!(
            "{:<16} {:>8} ops {:>4}  lbl {:>8} MiB  greedy {:>8} MiB  ours {:>8} MiB  ({})  {:.1} s",
            c.name, c.budget / 1024, g.ops.len(), mib(&out.layer_by_layer), mib(&out.greedy), mib(&out.ours), out.ours.name, secs
        );
        for m in &out.candidates {
            println!(
                "   {:<32} {:>8} MiB  res {:<12} {:.1} s {}",
                m.name,
                mib(m),
                m.residency,
                m.seconds,
                m.plan
                    .as_ref()
                    .map(|p| format!(
                        "segs {} runs {} cascades {}",
                        p.segments.len(),
                        p.runs(),
                        p.cascades()
                    ))
                    .unwrap_or_default()
            );
        }
        if let Some(p) = &out.ours.plan {
            for s in &p.segments {
                if s.runs > s.ops.len() {
                    println!(
                        "   cascade {} ops {}..{} bands {} t {} stripes {:?} runs {}",
                        s.ops.len(),
                        g.ops[s.ops[0]].name,
                        g.ops[*s.ops.last().unwrap()].name,
                        s.cfg.bands,
                        s.cfg.t,
                        s.stripes,
                        s.runs
                    );
                }
            }
        }
        if let Some(p) = &out.ours.plan {
            let mut tiled = model.clone();
            let t = Instant::now();
            let rw =
                optimize::passes::tiling::rewrite::rewrite(&mut tiled, &g, p).expect("rewrite");
            let rs = t.elapsed().as_secs_f64();
            if let Ok(dir) = std::env::var("TILING_SAVE") {
                let f = format!(
                    "{dir}/{}_{}.onnx",
                    c.name.replace(' ', "_"),
                    c.budget / 1024
                );
                optimize::onnx_io::save_model(
                    &tiled,
                    std::path::Path::new(&f),
                    &Default::default(),
                )
                .expect("save");
                optimize::onnx_io::save_model(
                    &model,
                    std::path::Path::new(&format!("{f}.orig.onnx")),
                    &Default::default(),
                )
                .expect("save");
            }
            if std::env::var("TILING_NO_ORT").is_ok() {
                continue;
            }
            let t = Instant::now();
            let v = optimize::passes::tiling::verify::compare_on_ort(
                &model,
                &tiled,
                &bindings,
                1,
                std::env::var("TILING_INT8").is_ok(),
            )
            .expect("ort");
            println!("   rewrite {} -> {} nodes in {rs:.1} s; ort: max rel err {:.2e}, bit-identical {} ({:.1} s)",
                rw.nodes_before, rw.nodes_after, v.tolerance_err, v.metrics.bit_identical, t.elapsed().as_secs_f64());
        }
        for r in &out.rejected {
            println!("   rejected: {r}");
        }
    }
}
