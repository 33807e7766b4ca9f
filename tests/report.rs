//! What users see: the terminal summary and the JSON report (snapshots with volatile fields
//! redacted, and the JSON schema), the HTML report in a real headless browser, `optimize.toml`
//! and `--check`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(common::optimize_bin())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run optimize")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A copy of the small PyTorch Conv2d model and its test data set in a fresh folder.
fn workspace() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let m = common::onnx_backend_models()
        .into_iter()
        .find(|m| m.name == "pytorch-converted/test_Conv2d")
        .expect("test_Conv2d in the corpus");
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("conv.onnx");
    std::fs::copy(&m.path, &model).expect("copy model");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::copy(m.test_sets[0].join("input_0.pb"), data.join("input_0.pb")).expect("copy input");
    (dir, model, data)
}

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(common::root().join("schema/report.schema.json"))
        .expect("schema file");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::validator_for(&schema).expect("schema compiles")
}

fn assert_valid(report: &serde_json::Value) {
    let v = schema();
    let errors: Vec<String> = v
        .iter_errors(report)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "report does not match schema/report.schema.json: {errors:#?}"
    );
}

#[test]
fn summary_and_report_snapshots_and_schema() {
    let (dir, _model, _data) = workspace();
    let o = run_in(
        dir.path(),
        &[
            "conv.onnx",
            "-o",
            "conv.opt.onnx",
            "--report",
            "report.json",
            "--inputs",
            "data",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let summary = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\d+\.\d{3}s", "[secs]");
    settings.bind(|| insta::assert_snapshot!("summary_conv2d", summary));

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).expect("report"))
            .expect("json");
    assert_valid(&report);
    insta::assert_json_snapshot!("report_conv2d", report, { ".passes[].seconds" => "[secs]" });
}

#[test]
fn schema_rejects_a_broken_report() {
    let (dir, _model, _data) = workspace();
    let o = run_in(
        dir.path(),
        &["conv.onnx", "-o", "out.onnx", "--report", "r.json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let mut report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("r.json")).expect("report"))
            .expect("json");
    assert_valid(&report);
    report["validation"]["passed"] = "yes".into();
    assert!(
        !schema().is_valid(&report),
        "a string where a boolean belongs must fail the schema"
    );
}

fn chromium() -> PathBuf {
    let p = PathBuf::from("/usr/bin/chromium");
    assert!(
        p.is_file(),
        "/usr/bin/chromium is missing: run scripts/setup.sh (it installs Debian's chromium)"
    );
    p
}

/// Opens the page in headless Chromium and checks: no console messages, the page's script
/// ran, and every picture was laid out with a non-empty box. Returns the figure ids.
fn assert_renders_in_chromium(html: &Path) -> Vec<String> {
    let page = std::fs::read_to_string(html).expect("html");
    assert!(
        !page.contains("<link") && !page.contains("src=\"http"),
        "the page must be self-contained"
    );
    let profile = tempfile::tempdir().expect("profile dir");
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            &format!("--user-data-dir={}", profile.path().display()),
            "--virtual-time-budget=2000",
            "--dump-dom",
        ])
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("run chromium");
    assert!(out.status.success(), "chromium failed: {}", stderr(&out));
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = stderr(&out);
    let console: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect();
    assert!(
        console.is_empty(),
        "console messages from the page: {console:#?}"
    );
    let figures = page.matches("class=\"picture\"").count();
    assert!(
        dom.contains(&format!("data-figures=\"{figures}\"")),
        "the page's script did not run: {dom}"
    );
    assert_eq!(
        dom.matches("data-rendered=\"yes\"").count(),
        figures,
        "some picture did not render: {dom}"
    );
    assert!(!dom.contains("data-rendered=\"no\""));
    page.split("<figure id=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn html_report_renders_in_headless_chromium() {
    let (dir, _model, _data) = workspace();
    let o = run_in(
        dir.path(),
        &[
            "conv.onnx",
            "-o",
            "out.onnx",
            "--html",
            "report.html",
            "--inputs",
            "data",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let ids = assert_renders_in_chromium(&dir.path().join("report.html"));
    assert_eq!(ids, ["fidelity", "pass-times"]);
}

#[test]
fn html_report_draws_the_memory_plan_and_traffic() {
    let m = common::onnx_backend_models()
        .into_iter()
        .find(|m| m.name == "light/light_shufflenet")
        .expect("light_shufflenet");
    let dir = tempfile::tempdir().expect("tempdir");
    let html = dir.path().join("report.html");
    let o = Command::new(common::optimize_bin())
        .arg(&m.path)
        .arg("-o")
        .arg(dir.path().join("s.onnx"))
        .args([
            "--scratchpad",
            "2746KiB",
            "--weights-in-scratchpad",
            "--schedule-time-limit",
            "5",
            "--samples",
            "1",
        ])
        .arg("--html")
        .arg(&html)
        .output()
        .expect("run optimize");
    assert!(o.status.success(), "{}", stderr(&o));
    let ids = assert_renders_in_chromium(&html);
    assert_eq!(ids, ["fidelity", "pass-times", "memory-plan", "traffic"]);
    let page = std::fs::read_to_string(&html).expect("html");
    assert!(
        page.matches("class=\"tensor\"").count() > 100,
        "the memory plan has too few rectangles"
    );
}

#[test]
fn html_report_draws_relevance_along_the_graph() {
    let cls = common::ppocr_models()
        .into_iter()
        .find(|m| m.name == "ppocr/cls")
        .expect("cls");
    let dir = tempfile::tempdir().expect("tempdir");
    let html = dir.path().join("explain.html");
    let o = Command::new(common::optimize_bin())
        .args(["explain"])
        .arg(&cls.path)
        .args(["--input-shape", "x=1x3x48x192", "--html"])
        .arg(&html)
        .output()
        .expect("run optimize explain");
    assert!(o.status.success(), "{}", stderr(&o));
    let ids = assert_renders_in_chromium(&html);
    assert_eq!(ids, ["relevance"]);
    let page = std::fs::read_to_string(&html).expect("html");
    assert!(
        page.matches("class=\"bar\"").count() > 100,
        "too few operators drawn"
    );
}

#[test]
fn config_file_beside_the_model_makes_a_one_word_step() {
    let (dir, _model, _data) = workspace();
    std::fs::write(
        dir.path().join("optimize.toml"),
        "output = \"out/conv.opt.onnx\"\nreport = \"out/report.json\"\ninputs = \"data\"\nmin-fidelity = 0.9999\n\n[[pass]]\nname = \"cleanup\"\n",
    )
    .expect("config");
    std::fs::create_dir(dir.path().join("out")).expect("mkdir");
    let o = run_in(dir.path(), &["conv.onnx"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        dir.path().join("out/conv.opt.onnx").is_file()
            && dir.path().join("out/report.json").is_file()
    );
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/report.json")).expect("report"))
            .expect("json");
    assert!(
        r["validation"]["inputs_used"]
            .as_str()
            .is_some_and(|s| s.ends_with("data")),
        "{r}"
    );

    // Flags win over the file.
    let o = run_in(dir.path(), &["conv.onnx", "-o", "flag.onnx"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(dir.path().join("flag.onnx").is_file());

    // A bad file is a bad input naming the file.
    std::fs::write(
        dir.path().join("optimize.toml"),
        "[[pass]]\nname = \"nonsense\"\n",
    )
    .expect("config");
    let o = run_in(dir.path(), &["conv.onnx", "-o", "x.onnx"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("optimize.toml") && stderr(&o).contains("unknown pass 'nonsense'"),
        "{}",
        stderr(&o)
    );
    std::fs::write(dir.path().join("optimize.toml"), "tolerance = \"loose\"\n").expect("config");
    let o = run_in(dir.path(), &["conv.onnx", "-o", "x.onnx"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(!dir.path().join("x.onnx").exists());
}

#[test]
fn check_mode_writes_nothing_and_fails_below_min_fidelity() {
    let (dir, _model, _data) = workspace();
    let before: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    let o = run_in(
        dir.path(),
        &[
            "conv.onnx",
            "--check",
            "--report",
            "r.json",
            "--html",
            "r.html",
            "--inputs",
            "data",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("passed"));
    let after: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(before, after, "--check wrote files");
    // A fidelity bar above 1 (cosine never exceeds 1) is refused before any work: one
    // line naming the flag, exit 2, nothing written. (--check failing a bar it can reach
    // exits 3: a row of tests/cli_contract.rs.)
    let o = run_in(
        dir.path(),
        &[
            "conv.onnx",
            "--check",
            "--min-fidelity",
            "1.5",
            "--inputs",
            "data",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--min-fidelity 1.5"), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    let again: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(before, again, "a refused run wrote files");
}

#[test]
fn config_file_can_list_the_schedule_pass() {
    let (dir, _model, _data) = workspace();
    let toml = "report = \"report.json\"\nplan = \"plan.json\"\n\n[[pass]]\nname = \"cleanup\"\n[[pass]]\nname = \"schedule\"\nscratchpad = \"4MiB\"\n";
    std::fs::write(dir.path().join("optimize.toml"), toml).expect("config");
    let o = run_in(dir.path(), &["conv.onnx", "-o", "out.onnx"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).expect("report"))
            .expect("json");
    assert_eq!(r["schedule"]["scratchpad_bytes"], 4 * 1024 * 1024, "{r}");
    assert_eq!(common::pass_names(&r), ["cleanup", "schedule"], "{r}");
    assert!(
        dir.path().join("plan.json").is_file(),
        "plan.json not written"
    );

    // The flag wins over the file's size.
    let o = run_in(
        dir.path(),
        &["conv.onnx", "-o", "out2.onnx", "--scratchpad", "5MiB"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).expect("report"))
            .expect("json");
    assert_eq!(r["schedule"]["scratchpad_bytes"], 5 * 1024 * 1024, "{r}");

    // Scheduling fixes the final order, so it must come last; an unknown option is named.
    for (toml, needle) in [
        (
            "[[pass]]\nname = \"schedule\"\nscratchpad = \"4MiB\"\n[[pass]]\nname = \"cleanup\"\n",
            "must be the last pass",
        ),
        (
            "[[pass]]\nname = \"schedule\"\nscratchpad = \"4MiB\"\nspeed = 3\n",
            "speed",
        ),
        (
            "[[pass]]\nname = \"schedule\"\n",
            "needs a scratchpad size or a target",
        ),
    ] {
        std::fs::write(dir.path().join("optimize.toml"), toml).expect("config");
        let o = run_in(dir.path(), &["conv.onnx", "-o", "x.onnx"]);
        assert_eq!(o.status.code(), Some(2), "{toml}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{toml}: {}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
        assert!(!dir.path().join("x.onnx").exists());
    }
}
