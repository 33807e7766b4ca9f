//! Must-hold checks of the mixed-precision pass on real inputs (crops of the scikit-image
//! photographs; calibration and evaluation crops from disjoint photographs), sized for a
//! debug-profile test on 2 cores:
//! * our output at a size ≤ onnxruntime `quantize_static`'s has fidelity ≥ the quantizer's;
//! * relevance-guided ILP ≥ uniform int8 and ≥ random allocation at the same budget;
//! * every output (ours and the quantizer's) loads and runs on onnxruntime.
//!
//! The measuring code is the benchmark's (examples/bench_precision.rs), included as a module.
//! Needs `scripts/setup.sh` (models, photographs, Python onnxruntime); fails saying so otherwise.

#[path = "../examples/bench_precision.rs"]
mod bench;

use bench::{Case, Plan, Runner, Table, ABL_RANDOM, MIXED_EQ, ORT, UNIFORM8};

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
    for other in [uniform, random] {
        if ilp.failed.is_some() || other.failed.is_some() {
            continue; // already reported
        }
        // Same budget: the uniform-int8 size (the random allocation may use less of it).
        if other.bytes > uniform.bytes + 1 || ilp.bytes > uniform.bytes + 1 {
            failures.push(format!(
                "{name}: {} ({} bytes) or the ILP ({} bytes) exceeds the budget of {} bytes",
                other.label, other.bytes, ilp.bytes, uniform.bytes
            ));
        }
        if ilp.fidelity < other.fidelity {
            failures.push(format!(
                "{name}: relevance-guided ILP fidelity {:.4} < {} {:.4}",
                ilp.fidelity, other.label, other.fidelity
            ));
        }
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
