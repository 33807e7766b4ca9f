"""Runs our optimizer on a zoo model the way a user would: `optimize MODEL -o OUT --calib
CALIB --inputs EVAL --size-budget B --report R [--input-shape ...]`, and reads what happened."""
import json
import os
import re
import subprocess
import time

from . import common

SMALLEST = re.compile(r"smallest feasible size budget is ([0-9.]+)")
# A budget below anything reachable but not below 0.125 (int4's bytes per fp32 byte, which the
# command line refuses before reading the model): the optimizer answers with the smallest
# feasible one.
PROBE_BUDGET = 0.126


def command(binary, entry, out, budget, report, gate=True, flags=None):
    """The run; `flags` (e.g. `--objective speed`) replace `--size-budget B` when given."""
    inputs = common.path(entry.inputs)
    cmd = [binary, common.path(entry.model), "-o", out, "--calib", os.path.join(inputs, "calib"),
           "--inputs", os.path.join(inputs, "eval")]
    cmd += flags if flags is not None else ["--size-budget", f"{budget:.4f}"]
    cmd += ["--report", report]
    for s in entry.shapes:
        cmd += ["--input-shape", s]
    if not gate:
        cmd.append("--min-fidelity=-1")
    return cmd


def first_error(text):
    for line in text.splitlines():
        if line.startswith("error:"):
            return line[len("error:"):].strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


def run(binary, entry, out_dir, tag, budget, gate=True, flags=None):
    """One run; returns {budget, rc, seconds, error, model (when written), report figures}."""
    out = os.path.join(out_dir, f"{entry.key}.ours_{tag}.onnx")
    report = os.path.join(out_dir, f"{entry.key}.ours_{tag}.json")
    for p in (out, report):
        if os.path.exists(p):
            os.remove(p)
    cmd = command(binary, entry, out, budget, report, gate, flags)
    t = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=common.ROOT)
    res = {"budget": None if budget is None else round(budget, 4), "rc": p.returncode, "seconds": round(time.time() - t, 2),
           "command": " ".join(os.path.relpath(c, common.ROOT) if c.startswith(common.ROOT) else c for c in cmd)}
    if p.returncode != 0:
        res["error"] = first_error(p.stderr)
    if os.path.isfile(out):
        res["model"] = out
    if os.path.isfile(report):
        res.update(report_figures(report))
    return res


def report_figures(path):
    """Per-pass seconds, error-measurement and solver seconds, validation cosine, size."""
    with open(path) as f:
        r = json.load(f)
    out = {"passes": {p["name"]: round(p["seconds"], 2) for p in r.get("passes", [])}}
    prec = r.get("precision") or {}
    if prec.get("skipped"):
        out["precision_skipped"] = prec["skipped"]
    if "errors" in prec:
        out["measure_seconds"] = round(prec["errors"].get("seconds", 0.0), 2)
        out["measured_ops"] = prec["errors"].get("measured")
    if "solver" in prec:
        out["solver_seconds"] = round(prec["solver"].get("seconds", 0.0), 3)
    if "size_fraction" in prec:
        out["tool_size_fraction"] = prec["size_fraction"]
    if "latency" in prec:
        out["predicted_ms"] = prec["latency"].get("predicted_ms")
    v = r.get("validation") or {}
    if "cosine" in v:
        out["validation_cosine"] = v["cosine"]
    return out


def smallest_feasible(binary, entry, out_dir):
    """Probes a tiny budget; the optimizer's infeasibility message names the smallest one.
    Returns (probe result, smallest budget or None)."""
    res = run(binary, entry, out_dir, "probe", PROBE_BUDGET)
    m = SMALLEST.search(res.get("error", ""))
    if m:
        return res, float(m.group(1))
    if res["rc"] == 0:
        return res, PROBE_BUDGET
    return res, None
