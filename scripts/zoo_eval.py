#!/usr/bin/env python3
"""Task metric of a candidate model against the fp32 model, on onnxruntime (docs/zoo.md).

usage: PYTHONPATH=.deps/py-zoo:.deps/py python3 scripts/zoo_eval.py KEY FP32 CANDIDATE [EVAL_DIR]

KEY is a zoo key (scripts/zoo/registry.py; `-` for FP32 takes the key's model, EVAL_DIR
defaults to the key's eval folder). Prints one JSON object: weight bytes of both (initializers
and Constant tensors, subgraphs included), and the task metric (`task.primary` names the
headline figure). Exit codes: 0 ok, 2 bad input, 4 onnxruntime refused the candidate.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from zoo import common  # noqa: E402
from zoo.evaluate import evaluate  # noqa: E402
from zoo.registry import entry  # noqa: E402


def main():
    if len(sys.argv) not in (4, 5):
        common.fail("usage: zoo_eval.py KEY FP32 CANDIDATE [EVAL_DIR]")
    e = entry(sys.argv[1])
    fp32 = e.model if sys.argv[2] == "-" else sys.argv[2]
    for p in (fp32, sys.argv[3]):
        if not os.path.isfile(common.path(p)):
            common.fail(f"{p}: no such model (run scripts/zoo.sh)")
    res = evaluate(e, fp32, sys.argv[3], sys.argv[4] if len(sys.argv) == 5 else None)
    print(json.dumps(res, indent=1))
    if "error" in res:
        sys.exit(4)


if __name__ == "__main__":
    main()
