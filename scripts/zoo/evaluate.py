"""One evaluation: a candidate model against its fp32 model, on onnxruntime, with the task
metric of the zoo key, plus weight bytes of both."""
import os
import time
from dataclasses import dataclass

from . import common, metrics
from .registry import ZOO


@dataclass
class Ctx:
    entry: object
    zoo: str
    samples: list
    ref: list
    cand: list
    cand_sess: object


def evaluate(entry, fp32, candidate, eval_dir=None, threads=1):
    """Returns the JSON-able result. onnxruntime runs both with its default (all) graph
    optimizations, as a user deploys them, on `threads` threads."""
    eval_dir = eval_dir or os.path.join(common.path(entry.inputs), "eval")
    t = time.time()
    ref_sess = common.session(fp32, threads)
    try:
        cand_sess = common.session(candidate, threads)
    except Exception as e:  # onnxruntime refuses the model: that is the result
        return {"key": entry.key, "candidate": candidate, "error": f"onnxruntime: {str(e).splitlines()[0]}"}
    samples = common.read_samples(eval_dir, common.input_names(ref_sess))
    ctx = Ctx(entry, ZOO, samples, metrics.outputs(ref_sess, samples), metrics.outputs(cand_sess, samples), cand_sess)
    task = metrics.METRICS[entry.metric](ctx)
    wa, wa_main = common.weight_bytes(fp32)
    wb, wb_main = common.weight_bytes(candidate)
    return {
        "key": entry.key,
        "metric": entry.metric,
        "fp32": fp32,
        "candidate": candidate,
        "eval": eval_dir,
        "samples": len(samples),
        "weight_bytes": {"fp32": wa, "candidate": wb, "fraction": wb / max(wa, 1),
                         "fp32_main_graph": wa_main, "candidate_main_graph": wb_main},
        "task": task,
        "seconds": round(time.time() - t, 2),
    }
