#!/usr/bin/env python3
"""onnxruntime's one-call baselines on every zoo model: quantize_static (QDQ U8S8 per-channel,
MinMax, on the key's calibration set; scripts/ort_quantize.py) and quantize_dynamic (its
defaults), each scored on the key's evaluation set with the task metric (docs/zoo.md).

usage: PYTHONPATH=.deps/py-zoo:.deps/py python3 scripts/zoo_baselines.py [--keys k1,k2] [--out DIR]

Prints a table (the documented advice, static for CNN/detection and dynamic for
transformers/RNNs, is marked *) and writes OUT/baselines.json.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from zoo import baselines  # noqa: E402
from zoo.evaluate import evaluate  # noqa: E402
from zoo.registry import ENTRIES, entry  # noqa: E402
from zoo_bench import short  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", default=",".join(e.key for e in ENTRIES))
    ap.add_argument("--out", default="/tmp/zoo_baselines")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rows = []
    print("| model | fp32 | quantize_static | quantize_dynamic |\n|---|---|---|---|")
    for key in a.keys.split(","):
        e = entry(key)
        fp32 = evaluate(e, e.model, e.model)["task"]
        row = {"key": key, "advice": e.baseline,
               "fp32_accuracy": fp32.get("fp32_accuracy")}
        cells = []
        for kind in ("static", "dynamic"):
            res = baselines.run(e, kind, a.out)
            if "model" in res:
                ev = evaluate(e, e.model, res["model"])
                if "error" in ev:
                    res["error"] = ev["error"]
                else:
                    res.update(fraction=ev["weight_bytes"]["fraction"], task=ev["task"])
            row[kind] = res
            mark = "*" if kind == e.baseline else ""
            cells.append(f"{mark}{res['fraction']:.3f}: {short(res['task'])}" if "task" in res
                         else f"{mark}error: {res['error'][:70]}")
        rows.append(row)
        acc = row["fp32_accuracy"]
        print(f"| {key} | {'acc %.3f' % acc if acc is not None else 'ref'} | {cells[0]} | {cells[1]} |", flush=True)
        with open(os.path.join(a.out, "baselines.json"), "w") as f:
            json.dump(rows, f, indent=1)
    print(f"\n* onnxruntime's documented advice for the family. All figures: {a.out}/baselines.json")


if __name__ == "__main__":
    main()
