//! Tensor sizes in the memory plan follow the precision the mixed-precision pass chose: the
//! CLI's default pipeline runs precision before schedule, so the int8 tensors it leaves are
//! planned at one byte per element and float32 ones at four.

mod common;

use optimize::ir::{DataType, ValueType};
use optimize::pipeline::load_and_infer;
use std::collections::HashMap;

#[test]
fn plan_sizes_follow_the_precision_pass() {
    let model = common::root().join(".deps/models/ch_ppocr_mobile_v2.0_cls_infer.onnx");
    assert!(
        model.is_file(),
        "{} is missing: run scripts/setup.sh first",
        model.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("cls.onnx");
    let plan = dir.path().join("plan.json");
    let report = dir.path().join("report.json");
    let run = std::process::Command::new(common::optimize_bin())
        .arg(&model)
        .arg("-o")
        .arg(&out)
        .args(["--input-shape", "x=1x3x48x192", "--scratchpad", "8MiB"])
        .args(["--weights-in-scratchpad", "--no-validate", "--calib-random"])
        .args(["--precision-time-limit", "5", "--schedule-time-limit", "5"])
        .arg("--plan")
        .arg(&plan)
        .arg("--report")
        .arg(&report)
        .output()
        .expect("optimize runs");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    assert_eq!(
        r["schedule"]["checker"]["passed"], true,
        "{}",
        r["schedule"]
    );
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan).expect("plan")).expect("json");
    let align = plan["alignment"].as_u64().expect("alignment");
    let bindings = HashMap::from([("x".to_string(), vec![1, 3, 48, 192])]);
    let m = load_and_infer(&out, &bindings).expect("the output model loads");
    let (mut int8, mut float) = (0, 0);
    for t in plan["tensors"].as_array().expect("tensors") {
        let name = t["name"].as_str().expect("name");
        let size = t["size"].as_u64().expect("size");
        let Some(ty) = m.graph.value_type(name) else {
            continue;
        };
        let Some(elems) = ty
            .static_dims()
            .map(|d| d.iter().map(|&x| x.max(0) as u64).product::<u64>())
        else {
            continue;
        };
        let bytes_per = match ty {
            ValueType::Tensor {
                elem: DataType::Int8 | DataType::Uint8,
                ..
            } => 1,
            ValueType::Tensor {
                elem: DataType::Float,
                ..
            } => 4,
            _ => continue,
        };
        assert_eq!(
            size,
            (elems * bytes_per).div_ceil(align) * align,
            "'{name}' ({ty}) is planned at {size} bytes"
        );
        if bytes_per == 1 {
            int8 += 1;
        } else {
            float += 1;
        }
    }
    eprintln!("plan: {int8} int8/uint8 tensors at 1 byte per element, {float} float32 at 4");
    // docs/schedule.md's figures. They follow from the precision pass's assignment, which is
    // deterministic when its ILP is solved to optimality (a solve cut short could differ).
    assert_eq!(
        r["precision"]["solver"]["status"], "optimal",
        "{}",
        r["precision"]["solver"]
    );
    assert_eq!(
        (int8, float),
        (167, 483),
        "(int8/uint8, float32) tensors in the plan differ from docs/schedule.md's (167, 483) (report: {})",
        r["precision"]
    );
}
