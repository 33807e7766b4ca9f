#!/usr/bin/env python3
"""The speed benchmark's zoo part (issue 17; docs/speed.md): zoo models at 1 and 2 threads.

usage: PYTHONPATH=.deps/py-zoo:.deps/py python3 scripts/zoo_speed.py --bin OPTIMIZE
           [--keys yolov8n,minilm] [--threads 1,2] [--runs 15] [--out DIR]

Per zoo key and thread count, in one table: fp32; onnxruntime's documented one-call quantizer
(the zoo's baseline); ours `--objective speed --threads T` at the optimizer's default fidelity
targets (the task metrics of the zoo are computed here, not by the optimizer, so "at
onnxruntime's fidelity" cannot be stated as a target; the row shows both metrics); ours
`--size-budget 0.30`. Latency is onnxruntime's CPU provider (all graph optimizations, T
intra-op threads, no spin-waiting), the median of --runs interleaved rounds on the first
calibration sample (the one the optimizer's latency model times); the speed row also prints the latency model's prediction against it.
"""
import argparse
import math
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from zoo import baselines, common, ours  # noqa: E402
from zoo.registry import BY_KEY  # noqa: E402
from zoo_bench import scored, short  # noqa: E402


def timing_session(model, threads):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(common.path(model), so, providers=["CPUExecutionProvider"])


def latencies(models, feed_of, threads, runs):
    """Median ms of each model: two warm-up rounds, then `runs` rounds running each in turn."""
    sessions = [timing_session(m, threads) for m in models]
    feeds = [feed_of(s) for s in sessions]
    for _ in range(2):
        for s, f in zip(sessions, feeds):
            s.run(None, f)
    times = [[] for _ in models]
    for _ in range(runs):
        for i, (s, f) in enumerate(zip(sessions, feeds)):
            t = time.perf_counter()
            s.run(None, f)
            times[i].append((time.perf_counter() - t) * 1e3)
    return [statistics.median(t) for t in times]


def bench(binary, key, threads_list, runs, out):
    entry = BY_KEY[key]
    rows = [("fp32", {"model": common.path(entry.model), "fraction": 1.0})]
    base = scored(entry, baselines.run(entry, entry.baseline, out))
    rows.append((f"onnxruntime {entry.baseline}", base))
    rows.append(("ours --size-budget 0.30", scored(entry, ours.run(binary, entry, out, "030", 0.30))))
    # Timed on the first calibration sample: the one the optimizer's latency model timed
    # (a transformer's sequence length differs between samples).
    calib_dir = os.path.join(common.path(entry.inputs), "calib")

    def feed_of(sess):
        names = common.input_names(sess)
        return common.read_samples(calib_dir, names)[0][1]

    # Where the task metric includes the embeddings' mean cosine (the optimizer's `cosine`
    # metric), ours also runs at onnxruntime's cosine: the speed comparison at equal fidelity.
    ort_cos = (base.get("task") or {}).get("cosine_mean")
    for threads in threads_list:
        speed_flags = ["--objective", "speed", "--threads", str(threads)]
        speed = scored(entry, ours.run(binary, entry, out, f"speed_t{threads}", None, flags=speed_flags))
        speeds = [(f"ours --objective speed, {threads} thr", speed)]
        if ort_cos:
            target = f"{math.floor(ort_cos * 1000) / 1000:.3f}"
            at_ort = scored(entry, ours.run(binary, entry, out, f"speed_at_ort_t{threads}", None,
                                            flags=speed_flags + ["--metric", "cosine", "--min-fidelity", target]))
            speeds.append((f"ours speed @ ort cosine {target}, {threads} thr", at_ort))
        table = rows[:2] + speeds + rows[2:]
        ran = [(label, r) for label, r in table if r.get("model")]
        ms = latencies([r["model"] for _, r in ran], feed_of, threads, runs)
        by_label = {label: m for (label, _), m in zip(ran, ms)}
        fp32_ms = by_label.get("fp32")
        print(f"\n== {key} ({entry.family}), {threads} thread(s), median of {runs} interleaved runs ==")
        print(f"{'variant':<36} {'size':>6} {'ms':>9} {'speedup':>8}  task metric")
        for label, r in table:
            if label not in by_label:
                print(f"{label:<36} FAILED: exit {r.get('rc')}: {r.get('error', r.get('eval_error', ''))}")
                continue
            m = by_label[label]
            print(f"{label:<36} {r.get('fraction', float('nan')):>6.3f} {m:>9.2f} {fp32_ms / m:>7.2f}x  "
                  f"{short(r.get('task')) if r.get('task') else '(reference)'}")
        ob = by_label.get(f"onnxruntime {entry.baseline}")
        for label, r in speeds:
            sp = by_label.get(label)
            if sp and ob:
                print(f"{key} @ {threads} thr: {label.rsplit(',', 1)[0]} {sp:.2f} ms vs onnxruntime {ob:.2f} ms "
                      f"({'at least as fast' if sp <= ob else 'SLOWER'})")
            pred = r.get("predicted_ms")
            if sp and pred:
                err = (pred - sp) / sp
                print(f"{key} @ {threads} thr: latency model predicted {pred:.2f} ms, measured here {sp:.2f} ms "
                      f"({100 * err:+.1f}%, {'within 15%' if abs(err) <= 0.15 else 'OFF BY MORE THAN 15%'})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--keys", default="yolov8n,minilm")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--out", default="/tmp/zoo_speed")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    threads = [int(t) for t in a.threads.split(",")]
    for key in a.keys.split(","):
        if key not in BY_KEY:
            common.fail(f"unknown zoo key {key!r} (known: {', '.join(sorted(BY_KEY))})")
        bench(a.bin, key, threads, a.runs, a.out)


if __name__ == "__main__":
    main()
