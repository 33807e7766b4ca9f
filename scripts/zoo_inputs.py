#!/usr/bin/env python3
"""Generates the zoo's calibration and evaluation inputs (docs/zoo.md), deterministically.

usage: PYTHONPATH=.deps/py-zoo:.deps/py python3 scripts/zoo_inputs.py [KEY_GROUP...]

Groups: minilm ddddocr ppocr_text orientation yolov8n picodet gru oww branch (default: all).
Every folder is written through a temporary sibling and renamed into place. scripts/zoo.sh
calls this after fetching the models.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from zoo import branch, common, inputs_audio, inputs_image, inputs_text, seq2seq  # noqa: E402
from zoo.registry import ZOO  # noqa: E402


def main():
    zoo = common.path(ZOO)
    groups = {
        "minilm": lambda: inputs_text.minilm(os.path.join(zoo, "minilm")),
        "ddddocr": lambda: inputs_text.ddddocr(os.path.join(zoo, "ddddocr")),
        "ppocr_text": lambda: inputs_text.ppocr_text(os.path.join(zoo, "ppocr_text")),
        "orientation": lambda: inputs_image.orientation(os.path.join(zoo, "orientation")),
        "yolov8n": lambda: inputs_image.yolov8n(os.path.join(zoo, "yolov8n")),
        "picodet": lambda: inputs_image.picodet(os.path.join(zoo, "picodet")),
        "gru": lambda: seq2seq.inputs(zoo),
        "oww": lambda: inputs_audio.oww(zoo),
        "branch": lambda: branch.make(zoo),
    }
    wanted = sys.argv[1:] or list(groups)
    for g in wanted:
        if g not in groups:
            common.fail(f"unknown group '{g}' (known: {', '.join(groups)})")
    for g in wanted:
        t = time.time()
        groups[g]()
        print(f"zoo: inputs {g}: {time.time() - t:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
