#!/usr/bin/env python3
"""The zoo benchmark (issue 15): one table over every zoo model, in one run.

usage: PYTHONPATH=.deps/py-zoo:.deps/py python3 scripts/zoo_bench.py --bin OPTIMIZE
           [--keys k1,k2] [--out DIR] [--no-gate-off]

Per zoo key (scripts/zoo/registry.py):
  - fp32: the task metric against ground truth where the evaluation set has labels;
  - onnxruntime: its documented one-call advice (quantize_static QDQ U8S8 per-channel for
    CNN/detection, quantize_dynamic for transformers and recurrent models): size and metric;
  - ours at onnxruntime's size, at 0.30, and at the smallest feasible budget (which the
    optimizer names when probed with a budget far too small), each as a user runs it;
  - seconds of our run at 0.30, and how long the optimizer took to report the infeasible
    probe budget.
Every "ours" cell is whatever the optimizer did: the size and task metric of the model it wrote,
or its exit code. An exit 3 (fidelity gate) cell also shows, marked †, the metric of the same
run with the gate off (--min-fidelity=-1; --no-gate-off skips these reruns). Sizes are weight bytes (initializers and Constant
tensors, subgraphs included) over fp32's; metrics are defined in docs/zoo.md. Everything is
also written to OUT/results.json.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from zoo import baselines, common, ours  # noqa: E402
from zoo.evaluate import evaluate  # noqa: E402
from zoo.registry import BY_KEY, ENTRIES  # noqa: E402


def short(task):
    """The headline figures of a task result, compact."""
    if not task:
        return "-"
    p = task["primary"]
    if p == "nn_agreement":
        return f"nn {task['nn_agreement']:.3f} cos {task['cosine_mean']:.3f}"
    if p == "f1":
        return f"F1 {task['f1']:.3f}"
    if p == "string_agreement":
        return f"str {task['string_agreement']:.3f}"
    if p == "top1_agreement":
        return f"top1 {task['top1_agreement']:.3f}"
    if p == "token_agreement":
        return f"tok {task['token_agreement']:.3f}"
    return f"dec {task['decision_agreement']:.3f} Δ {task['score_abs_diff_mean']:.3f}"


def scored(entry, res):
    """Adds the task metric and real size of a written model to a run result."""
    if res.get("model"):
        ev = evaluate(entry, entry.model, res["model"])
        if "error" in ev:
            res["eval_error"] = ev["error"]
        else:
            res["fraction"] = ev["weight_bytes"]["fraction"]
            res["task"] = ev["task"]
    return res


def ours_run(binary, entry, out, tag, budget, gate_off=True):
    res = scored(entry, ours.run(binary, entry, out, tag, budget))
    if res["rc"] == 3 and gate_off:
        res["gate_off"] = scored(entry, ours.run(binary, entry, out, tag + "_nogate", budget, gate=False))
    return res


def bench_one(binary, entry, out, gate_off=True):
    t = time.time()
    row = {"key": entry.key, "model": entry.model, "family": entry.family, "baseline_kind": entry.baseline}
    fp32 = evaluate(entry, entry.model, entry.model)
    row["fp32"] = {k: v for k, v in fp32["task"].items() if k == "fp32_accuracy"}
    row["fp32_weight_bytes"] = fp32["weight_bytes"]["fp32"]
    row["onnxruntime"] = scored(entry, baselines.run(entry, entry.baseline, out))
    probe, smallest = ours.smallest_feasible(binary, entry, out)
    row["ours"] = {"probe": probe, "smallest_feasible": smallest}
    row["ours"]["0.30"] = ours_run(binary, entry, out, "030", 0.30, gate_off)
    f = row["onnxruntime"].get("fraction")
    if f and f < 1.0:
        row["ours"]["ort_size"] = ours_run(binary, entry, out, "ortsize", f, gate_off)
    if smallest is not None and smallest < 1.0:
        row["ours"]["smallest"] = ours_run(binary, entry, out, "smallest", smallest, gate_off)
    row["seconds"] = round(time.time() - t, 1)
    return row


def cell(res):
    if not res:
        return "-"
    if res.get("rc", 0) == 0 and res.get("task"):
        return f"{res['fraction']:.3f}: {short(res['task'])}"
    if "rc" not in res:
        return "error"
    text = f"exit {res.get('rc')}"
    g = res.get("gate_off")
    if g and g.get("task"):
        text += f" ({g['fraction']:.3f}: {short(g['task'])}†)"
    return text


def table(rows):
    head = ["model", "fp32", "onnxruntime one call", "ours @ ort size", "ours @ 0.30",
            "ours @ smallest", "s @0.30 / probe"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        o = r["ours"]
        fp32 = " ".join(f"acc {v:.3f}" for v in r["fp32"].values()) or "ref"
        ort = r["onnxruntime"]
        ort_cell = f"{r['baseline_kind']} {cell(ort)}"
        sm = o.get("smallest_feasible")
        small = f"[{sm:.4f}] {cell(o.get('smallest'))}" if sm is not None else f"? ({cell(o['probe'])})"
        secs = f"{o['0.30']['seconds']:.1f} / {o['probe']['seconds']:.1f}"
        lines.append("| " + " | ".join([r["key"], fp32, ort_cell, cell(o.get("ort_size")),
                                         cell(o["0.30"]), small, secs]) + " |")
    return "\n".join(lines)


def failures(rows):
    out = []
    for r in rows:
        if "error" in r["onnxruntime"]:
            out.append(f"{r['key']} onnxruntime {r['baseline_kind']}: {r['onnxruntime']['error']}")
        for tag in ("probe", "ort_size", "0.30", "smallest"):
            res = r["ours"].get(tag)
            if res and res.get("rc") not in (0, None) and not (tag == "probe" and res.get("rc") == 2):
                out.append(f"{r['key']} ours {tag} (budget {res['budget']}): exit {res['rc']}: {res.get('error', '')}")
            if res and res.get("eval_error"):
                out.append(f"{r['key']} ours {tag}: the written model: {res['eval_error']}")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--keys", default=",".join(e.key for e in ENTRIES))
    ap.add_argument("--out", default="/tmp/zoo_bench")
    ap.add_argument("--no-gate-off", action="store_true", help="skip the reruns of exit-3 cells")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rows = []
    for key in a.keys.split(","):
        if key not in BY_KEY:
            common.fail(f"unknown key '{key}'")
        print(f"zoo_bench: {key} ...", file=sys.stderr, flush=True)
        rows.append(bench_one(os.path.abspath(a.bin), BY_KEY[key], a.out, not a.no_gate_off))
        with open(os.path.join(a.out, "results.json"), "w") as f:
            json.dump(rows, f, indent=1)
    print(table(rows))
    print("\n† the gate refused the output (exit 3); the figure is the same run with --min-fidelity=-1.")
    print("[x] = the smallest feasible size budget the optimizer named when probed with "
          f"--size-budget {ours.PROBE_BUDGET}.")
    fails = failures(rows)
    if fails:
        print("\nfailures (first line of each error):")
        print("\n".join(f"- {f}" for f in fails))
    print(f"\nall figures: {os.path.join(a.out, 'results.json')}")


if __name__ == "__main__":
    main()
