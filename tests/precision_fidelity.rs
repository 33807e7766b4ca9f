//! Must-hold checks of the mixed-precision pass on real inputs (crops of the scikit-image
//! photographs; calibration and evaluation crops from disjoint photographs), sized for a
//! debug-profile test on 2 cores:
//! * our output at a size ≤ onnxruntime `quantize_static`'s has fidelity ≥ the quantizer's;
//! * relevance-guided ILP above uniform int8 and above a random allocation at the same
//!   budget by a stated margin per model, uniform int8 above random, and the measured-only
//!   ILP near the relevance-guided one;
//! * every output (ours and the quantizer's) loads and runs on onnxruntime.
//!
//! The measuring code is the benchmark's (examples/bench_precision.rs), included as a module.
//! Needs `scripts/setup.sh` (models, photographs, Python onnxruntime); fails saying so otherwise.

#[path = "../examples/bench_precision.rs"]
mod bench;

use bench::{Case, Plan, Runner, Table, ABL_MEASURED, ABL_RANDOM, MIXED_EQ, ORT, UNIFORM8};

fn check_setup() {
    let root = bench::root();
    for (what, path) in [
        ("PP-OCR models", root.join(".deps/models/.complete")),
        ("photographs", root.join(".deps/images/.complete")),
        (
            "Python onnxruntime",
            root.join(".deps/py/onnxruntime/__init__.py"),
        ),
    ] {
        assert!(
            path.exists(),
            "{what} missing ({}): run scripts/setup.sh",
            path.display()
        );
    }
}

/// How far the relevance-guided ILP must be above uniform int8 and above a random allocation
/// at the same size, per model. The margins sit above the resolution of each metric on the
/// test's small sets, so a borderline crop flipping does not decide them, and below what
/// was measured (cls 48 crops, 0.021 each: ILP 0.979, uniform 0.625, random 0.583; rec
/// 12 crops × 40 positions: 0.975, 0.915, 0.792; det 4 crops pooled IoU: 0.946, 0.928,
/// 0.477).
struct Margins {
    vs_uniform: f64,
    vs_random: f64,
}

fn margins(model: &str) -> Margins {
    match model {
        // Five crops of 48: the ILP keeps the int8-sensitive layers wider, uniform int8
        // does not; this is where relevance guidance pays most.
        "cls" => Margins {
            vs_uniform: 0.10,
            vs_random: 0.10,
        },
        // Ten positions of 480.
        "rec" => Margins {
            vs_uniform: 0.02,
            vs_random: 0.10,
        },
        // Four crops only: strictly above uniform, far above random (random int4 on det's
        // early layers erases text regions).
        _ => Margins {
            vs_uniform: 0.0,
            vs_random: 0.2,
        },
    }
}

/// How close the measured-only ILP must stay to the relevance-guided one (see `check`).
const MEASURED_ONLY_NEAR: f64 = 0.05;

/// Runs the benchmark on one model and checks the must-hold properties; returns failures.
fn check(case: Case, runner: &Runner) -> Vec<String> {
    let work = tempfile::tempdir().unwrap();
    let plan = Plan {
        fractions: vec![],
        ours: true,
        ablation: true,
        seed: 0,
    };
    let table: Table = bench::bench(&case, runner, &plan, work.path())
        .unwrap_or_else(|e| panic!("{}: benchmark failed: {e}", case.name));
    table.print();
    let mut failures = Vec::new();
    let name = case.name;
    // Every variant ran on onnxruntime (bench() opened a session and ran all crops for each row);
    // an output must also not be degenerate.
    for r in &table.rows {
        if let Some(e) = &r.failed {
            failures.push(format!("{name}: {} failed: {e}", r.label));
        } else if !(r.fidelity.is_finite() && r.latency_ms > 0.0) {
            failures.push(format!("{name}: {} did not run properly", r.label));
        }
    }
    let ort = table.row(ORT).expect("quantize_static row");
    match bench::versus_ort(&table) {
        Some((label, ours, theirs, ok)) => {
            println!("{name}: ours ({label}) {ours:.4} vs quantize_static {theirs:.4}");
            if !ok {
                failures.push(format!(
                    "{name}: best of ours at ≤ quantize_static's size ({label}) has fidelity {ours:.4} < quantize_static's {theirs:.4}"
                ));
            }
        }
        None => failures.push(format!(
            "{name}: no output of ours is at or below quantize_static's size ({:.3} of fp32)",
            table.fraction(ort)
        )),
    }
    let ilp = table.row(MIXED_EQ).expect("mixed row");
    let uniform = table.row(UNIFORM8).expect("uniform row");
    let random = table.row(ABL_RANDOM).expect("random row");
    let measured = table.row(ABL_MEASURED).expect("measured-only row");
    if [ilp, uniform, random, measured]
        .iter()
        .any(|r| r.failed.is_some())
    {
        return failures; // already reported
    }
    // Same budget: the uniform-int8 size (the random allocation may use less of it).
    for other in [random, measured] {
        if other.bytes > uniform.bytes + 1 || ilp.bytes > uniform.bytes + 1 {
            failures.push(format!(
                "{name}: {} ({} bytes) or the ILP ({} bytes) exceeds the budget of {} bytes",
                other.label, other.bytes, ilp.bytes, uniform.bytes
            ));
        }
    }
    let m = margins(name);
    let mut strictly = |what: &str, hi: &bench::Row, lo: &bench::Row, margin: f64| {
        let gap = hi.fidelity - lo.fidelity;
        println!(
            "{name}: {} {:.4} − {} {:.4} = {gap:+.4} (required > {margin})",
            hi.label, hi.fidelity, lo.label, lo.fidelity
        );
        if gap <= margin {
            failures.push(format!(
                "{name}: {what}: {} {:.4} is not above {} {:.4} by more than {margin}",
                hi.label, hi.fidelity, lo.label, lo.fidelity
            ));
        }
    };
    strictly("relevance-guided vs uniform", ilp, uniform, m.vs_uniform);
    strictly("relevance-guided vs random", ilp, random, m.vs_random);
    strictly("uniform vs random", uniform, random, 0.0);
    // The measured-only objective (error measured per operator, without relevance weights)
    // ranks near the relevance-guided one: measured on this test's sets, it is 0.002–0.022
    // above it (cls one crop of 48). Relevance weighting is not a measurable gain here.
    let d = measured.fidelity - ilp.fidelity;
    println!(
        "{name}: measured-only {:.4} − relevance-guided {:.4} = {d:+.4} (required within ±{MEASURED_ONLY_NEAR})",
        measured.fidelity, ilp.fidelity
    );
    if d.abs() > MEASURED_ONLY_NEAR {
        failures.push(format!(
            "{name}: measured-only ILP {:.4} is not within {MEASURED_ONLY_NEAR} of the relevance-guided ILP {:.4}",
            measured.fidelity, ilp.fidelity
        ));
    }
    failures
}

#[test]
fn ppocr_fidelity_vs_onnxruntime_quantizer_and_ablation() {
    // This test binary is also the benchmark's onnxruntime worker (see bench::Runner).
    if let Some(r) = bench::worker_main() {
        if let Err(e) = r {
            panic!("bench_precision worker: {e}");
        }
        return;
    }
    check_setup();
    let worker_args = [
        "ppocr_fidelity_vs_onnxruntime_quantizer_and_ablation",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ];
    let runner = Runner::new(2, 5, worker_args.iter().map(|s| s.to_string()).collect());
    let mut failures = Vec::new();
    failures.extend(check(Case::ppocr("cls", 16, 48, 256).unwrap(), &runner));
    failures.extend(check(Case::ppocr("rec", 8, 12, 256).unwrap(), &runner));
    failures.extend(check(Case::ppocr("det", 4, 4, 256).unwrap(), &runner));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
