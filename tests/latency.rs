//! Speed in the allocation: the latency budget in the ILP and its checker, `--objective
//! speed`, the latency table's cache (hits, misses, the key holding the CPU flags), and the
//! whole flow on PP-OCR cls with the table measured on this machine.

mod common;

use optimize::passes::precision::check::check_assignment;
use optimize::passes::precision::ilp::{solve, AllocItem, AllocOption, AllocProblem, LatencyTerms};
use optimize::passes::precision::latency::{LatencySettings, LatencyTable, VariantTiming};
use optimize::passes::precision::latency_cache::{self, CacheKey, CacheStatus};
use optimize::passes::precision::pass::{run_precision, Budget, PrecisionConfig};
use optimize::passes::precision::section::PrecisionSection;
use optimize::passes::precision::speed::LatencyGoal;
use optimize::passes::precision::{Assignment, Precision};
use optimize::pipeline::load_and_infer;
use optimize::runtime::host::CpuInfo;
use std::collections::BTreeMap;

/// Two operators, each fp32 (no error, 0 ms saved) or int8 (error 1 or 2, 3 ms faster);
/// fp32 runs in 10 ms. Size is not the constraint here (budget 1.0).
fn timed_problem(limit_fraction: Option<f64>, minimize: bool) -> AllocProblem {
    use Precision::*;
    let opt = |precision, bytes, cost| AllocOption {
        precision,
        bytes,
        cost,
    };
    let item = |key: &str, cost| AllocItem {
        key: key.into(),
        elements: 100,
        options: vec![opt(Fp32, 400, 0.0), opt(Int8, 140, cost)],
    };
    AllocProblem {
        items: vec![item("a", 1.0), item("b", 2.0)],
        fixed_bytes: 0,
        total_weight_bytes: 800,
        budget: Budget::SizeFraction(1.0),
        same_precision: Vec::new(),
        int8_ties: Vec::new(),
        edges: vec![(0, 1)],
        lambda: 0.01,
        latency: Some(LatencyTerms {
            base_ms: 10.0,
            option_ms: vec![vec![0.0, -3.0], vec![0.0, -3.0]],
            // One int8/fp32 boundary between them costs 0.5 ms.
            edge_ms: vec![0.5],
            limit_ms: limit_fraction.map(|f| f * 10.0),
            minimize,
            error_weight: 0.001,
        }),
    }
}

fn chosen(p: &AllocProblem, choice: &[usize]) -> Vec<Precision> {
    p.items
        .iter()
        .zip(choice)
        .map(|(it, &o)| it.options[o].precision)
        .collect()
}

#[test]
fn a_tight_latency_budget_picks_the_faster_options() {
    use Precision::*;
    // No limit: least error is fp32 everywhere (10 ms).
    let free = timed_problem(None, false);
    let s = solve(&free, 10.0).expect("solve");
    assert_eq!(chosen(&free, &s.choice), [Fp32, Fp32]);
    assert_eq!(free.predicted_ms(&s.choice), Some(10.0));
    // ≤ 7.5 ms: one int8 operator (7.5 ms with its boundary), the one with less error.
    let one = timed_problem(Some(0.75), false);
    let s = solve(&one, 10.0).expect("solve");
    assert_eq!(chosen(&one, &s.choice), [Int8, Fp32]);
    assert_eq!(one.predicted_ms(&s.choice), Some(7.5));
    // ≤ 7 ms: the boundary makes one int8 operator too slow, so both go int8 (4 ms).
    let both = timed_problem(Some(0.7), false);
    let s = solve(&both, 10.0).expect("solve");
    assert_eq!(chosen(&both, &s.choice), [Int8, Int8]);
    assert_eq!(both.predicted_ms(&s.choice), Some(4.0));
    // Below the fastest assignment: refused, naming the smallest feasible budget.
    let e = solve(&timed_problem(Some(0.3), false), 10.0).expect_err("infeasible");
    let msg = e.to_string();
    assert!(
        msg.contains("latency budget") && msg.contains("--latency-budget 0.400"),
        "{msg}"
    );
}

#[test]
fn objective_speed_takes_the_fastest_assignment() {
    use Precision::*;
    let p = timed_problem(None, true);
    let s = solve(&p, 10.0).expect("solve");
    assert_eq!(chosen(&p, &s.choice), [Int8, Int8]);
    // The objective is the time saved plus the error's small tie-breaking weight.
    assert!(
        (s.objective - (-6.0 + 0.001 * 3.0)).abs() < 1e-9,
        "{}",
        s.objective
    );
    let report = check_assignment(&p, &p.assignment(&s.choice), s.objective);
    assert!(report.passed, "{:?}", report.problems);
}

#[test]
fn the_checker_recomputes_the_latency_and_rejects_a_corrupted_assignment() {
    use Precision::*;
    let p = timed_problem(Some(0.7), false);
    let s = solve(&p, 10.0).expect("solve");
    let good = p.assignment(&s.choice);
    let ok = check_assignment(&p, &good, s.objective);
    assert!(ok.passed, "{:?}", ok.problems);
    // One operator moved back to fp32: 7.5 ms > 7 ms (and a different objective).
    let mut bad: Assignment = good.clone();
    bad.insert("b".into(), Fp32);
    let r = check_assignment(&p, &bad, s.objective);
    assert!(!r.passed);
    assert!(
        r.problems
            .iter()
            .any(|m| m.contains("latency budget broken") && m.contains("7.5000 ms > 7.0000 ms")),
        "{:?}",
        r.problems
    );
    // The claimed objective is checked in speed mode too.
    let fast = timed_problem(None, true);
    let s = solve(&fast, 10.0).expect("solve");
    let r = check_assignment(&fast, &fast.assignment(&s.choice), s.objective + 1.0);
    assert!(!r.passed && r.problems.iter().any(|m| m.contains("claimed objective")));
}

fn table(key: CacheKey) -> LatencyTable {
    let mut ops = BTreeMap::new();
    ops.insert(
        "conv".to_string(),
        BTreeMap::from([(Precision::Fp32, 2.0), (Precision::Int8, 1.0)]),
    );
    LatencyTable {
        key,
        runs: 9,
        variants: vec![VariantTiming {
            precision: Precision::Fp32,
            operators: 0,
            wall_ms: 3.0,
            kernel_ms: 3.2,
            attributed_ms: 2.0,
        }],
        ops,
        qdq_ms_per_melem: 0.4,
        boundary_ms_per_melem: 0.4,
        boundary_fit: None,
    }
}

#[test]
fn the_cache_hits_only_on_the_same_cpu_flags_runtime_threads_and_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vnni = CpuInfo::parse("model name : Xeon\nflags : avx2 fma avx512f avx512_vnni\n");
    let key = CacheKey::new(&vnni, "1.31.1", 1, "abc".into());
    assert!(
        latency_cache::load(dir.path(), &key, |t: &LatencyTable| &t.key).is_none(),
        "empty cache"
    );
    let path = latency_cache::store(dir.path(), &key, &table(key.clone())).expect("store");
    assert!(path.starts_with(dir.path().join("latency")));
    assert_eq!(
        latency_cache::load(dir.path(), &key, |t: &LatencyTable| &t.key),
        Some(table(key.clone()))
    );
    // The same machine without VNNI, another thread count, runtime or model: misses.
    let plain = CpuInfo::parse("model name : Xeon\nflags : avx2 fma avx512f\n");
    let others = [
        CacheKey::new(&plain, "1.31.1", 1, "abc".into()),
        CacheKey::new(&vnni, "1.31.1", 2, "abc".into()),
        CacheKey::new(&vnni, "1.30.0", 1, "abc".into()),
        CacheKey::new(&vnni, "1.31.1", 1, "abd".into()),
    ];
    for other in others {
        assert_ne!(other.file_name(), key.file_name());
        assert!(
            latency_cache::load(dir.path(), &other, |t: &LatencyTable| &t.key).is_none(),
            "{other:?}"
        );
    }
    // A file whose stored key differs from its name's is not trusted.
    let wrong = CacheKey::new(&plain, "1.31.1", 1, "abc".into());
    std::fs::write(
        dir.path().join("latency").join(wrong.file_name()),
        serde_json::to_string(&table(key.clone())).expect("json"),
    )
    .expect("write");
    assert!(latency_cache::load(dir.path(), &wrong, |t: &LatencyTable| &t.key).is_none());
}

/// The cache keeps the newest tables only: `prune` drops the oldest by modification time and
/// leaves other files alone.
#[test]
fn the_cache_drops_its_oldest_tables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cpu = CpuInfo::parse("model name : Xeon\nflags : avx2\n");
    let t0 = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    let mut paths = Vec::new();
    for (i, model) in ["m1", "m2", "m3"].into_iter().enumerate() {
        let key = CacheKey::new(&cpu, "1.31.1", 1, model.into());
        let path = latency_cache::store(dir.path(), &key, &table(key.clone())).expect("store");
        // m1 the newest, m3 the oldest, whatever order they were written in.
        let when = t0 + std::time::Duration::from_secs(100 - 10 * i as u64);
        let f = std::fs::File::options()
            .append(true)
            .open(&path)
            .expect("open");
        f.set_modified(when).expect("set mtime");
        paths.push(path);
    }
    let notes = dir.path().join("latency").join("README.txt");
    std::fs::write(&notes, "not a table").expect("write");
    let folder = dir.path().join("latency");
    assert_eq!(latency_cache::prune(&folder, 2).expect("prune"), 1);
    assert!(
        paths[0].exists() && paths[1].exists(),
        "the two newest stay"
    );
    assert!(!paths[2].exists(), "the oldest table is dropped");
    assert!(notes.exists(), "other files are left alone");
    assert_eq!(latency_cache::prune(&folder, 2).expect("prune"), 0);
}

/// The whole flow on cls, on this machine: the table is measured (a miss, stored), the
/// second run reads it (a hit) and writes the same output, another thread count misses.
#[test]
fn cls_objective_speed_measures_then_reads_the_cache() {
    let cls = common::ppocr_models()
        .into_iter()
        .find(|m| m.name == "ppocr/cls")
        .expect("cls in the corpus");
    let original = load_and_infer(&cls.path, &cls.bindings).expect("load cls");
    let cache = tempfile::tempdir().expect("tempdir");
    let run = |threads: usize| {
        let cfg = PrecisionConfig {
            calib_samples: 4,
            calib_random: true,
            measure_time_limit_s: 120.0,
            budget: Budget::SizeFraction(0.5),
            latency: Some(LatencyGoal {
                settings: LatencySettings {
                    threads,
                    runs: 9,
                    cache_dir: Some(cache.path().to_path_buf()),
                },
                budget: None,
                speed: true,
            }),
            ..PrecisionConfig::default()
        };
        let mut m = original.clone();
        let out = run_precision(&mut m, &cfg).expect("run_precision with the latency model");
        let PrecisionSection::Allocated(a) = out.section else {
            panic!("not allocated: {:?}", out.section)
        };
        let l = a.latency.expect("a latency section");
        let bytes = optimize::onnx_io::export::to_bytes(&m, &Default::default()).expect("bytes");
        (l, bytes)
    };
    let (first, out1) = run(1);
    assert_eq!(first.cache, CacheStatus::Miss);
    assert_eq!(first.threads, 1);
    assert_eq!(first.cpu_flags, CpuInfo::host().flags);
    assert!(first.fp32_ms > 0.0 && first.predicted_ms > 0.0);
    assert!(first.measured_ms.is_some_and(|m| m > 0.0));
    assert!(first
        .variants
        .iter()
        .any(|v| v.precision == Precision::Int8));
    println!(
        "cls, 1 thread: fp32 {:.3} ms, predicted {:.3} ms, measured {:.3} ms ({:+.1}%), flags {}",
        first.fp32_ms,
        first.predicted_ms,
        first.measured_ms.unwrap_or(0.0),
        100.0 * first.prediction_error.unwrap_or(0.0),
        first.cpu_flags.join(" ")
    );
    let (second, out2) = run(1);
    assert_eq!(second.cache, CacheStatus::Hit);
    assert_eq!(second.operators, first.operators);
    assert!(out1 == out2, "the same table gives the same output");
    let (two, _) = run(2);
    assert_eq!(two.cache, CacheStatus::Miss);
    assert_eq!(two.threads, 2);
}

/// Run by [`a_cpuid_mask_hides_vnni_from_the_latency_key`] in a child process: the host flags
/// are always ones `/proc/cpuinfo` lists (printed for the parent to read).
#[test]
fn host_flags_are_ones_proc_cpuinfo_lists() {
    let listed = CpuInfo::parse(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default());
    let host = CpuInfo::host();
    assert!(
        host.flags.iter().all(|f| listed.flags.contains(f)),
        "{:?} not within {:?}",
        host.flags,
        listed.flags
    );
    println!("host flags: [{}]", host.flags.join(" "));
}

/// `scripts/emulate/cpuid_mask.c` (the speed benchmark's `EMULATE_CPU`) preloaded into a
/// process hides VNNI and AMX (and AVX-512 in `avx2` mode) from CPUID, and the latency
/// model's key follows: its flags are what onnxruntime's kernels were chosen from. Where the
/// CPU cannot make CPUID fault, the preload must stop the process and say why.
#[test]
fn a_cpuid_mask_hides_vnni_from_the_latency_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shim = dir.path().join("libcpuid_mask.so");
    let source =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/emulate/cpuid_mask.c");
    let cc = std::process::Command::new("cc")
        .args(["-O2", "-shared", "-fPIC", "-o"])
        .arg(&shim)
        .arg(&source)
        .output()
        .expect("cc (a C compiler) runs");
    assert!(
        cc.status.success(),
        "cc: {}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let real = CpuInfo::host().flags;
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let can_fault = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .is_some_and(|l| l.split_whitespace().any(|f| f == "cpuid_fault"));
    // What each mode leaves visible (of the flags that matter).
    let x86 = ["avx2", "fma", "f16c"];
    let avx512 = ["avx2", "fma", "f16c", "avx512f", "avx512bw"];
    for (mode, kept) in [("avx2", &x86[..]), ("avx512", &avx512[..])] {
        let child = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "host_flags_are_ones_proc_cpuinfo_lists",
                "--nocapture",
            ])
            .env("LD_PRELOAD", &shim)
            .env("CPUID_MASK", mode)
            .output()
            .expect("child test runs");
        let stdout = String::from_utf8_lossy(&child.stdout);
        let stderr = String::from_utf8_lossy(&child.stderr);
        if !can_fault {
            assert_eq!(child.status.code(), Some(70), "{mode}: {stderr}");
            assert!(
                stderr.contains("cannot make CPUID fault"),
                "{mode}: {stderr}"
            );
            continue;
        }
        assert!(child.status.success(), "{mode}: {stdout}{stderr}");
        let seen: Vec<String> = stdout
            .lines()
            .find_map(|l| l.strip_prefix("host flags: ["))
            .and_then(|l| l.strip_suffix(']'))
            .expect("the child printed its flags")
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let expected: Vec<String> = real
            .iter()
            .filter(|f| kept.contains(&f.as_str()))
            .cloned()
            .collect();
        assert_eq!(seen, expected, "{mode}: real flags {real:?}");
        let plain = CpuInfo {
            flags: seen,
            ..CpuInfo::host()
        };
        assert!(!plain.has_int8_dot(), "{mode}: {:?}", plain.flags);
    }
}
