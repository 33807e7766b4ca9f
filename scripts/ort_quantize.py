#!/usr/bin/env python3
"""onnxruntime's own static quantizer, the baseline of the precision benchmark.

usage: PYTHONPATH=.deps/py python3 scripts/ort_quantize.py MODEL.onnx CALIB_DIR OUT.onnx

Runs onnxruntime.quantization.quantize_static with QDQ format, per-channel int8 weights,
uint8 activations and MinMax calibration on the samples of CALIB_DIR, in the optimizer's
input-folder format (single-input models: one .npy file per sample; several inputs: one
subfolder per sample with one INPUT.npy per input), in name order. A model below opset 13
is first upgraded to opset 13 with onnx.version_converter (per-channel QDQ needs opset 13,
and quantize_static writes an invalid graph on the opset-11 PP-OCR cls model otherwise); the
script says so on stderr.
Constant nodes holding tensors are first turned into initializers (a lossless rewrite): the
PP-OCR models keep every weight in Constant nodes, and quantize_static only quantizes
initializers, so without this it would leave all weights in fp32.
Exit codes: 0 ok, 2 bad input, 1 anything else.
"""
import os
import sys
import tempfile


def fail(code, msg):
    print(f"ort_quantize: {msg}", file=sys.stderr)
    sys.exit(code)


def constants_to_initializers(model):
    """Turns main-graph Constant nodes with a `value` tensor into initializers; returns how many."""
    keep, moved = [], 0
    for node in model.graph.node:
        attrs = {a.name: a for a in node.attribute}
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and set(attrs) == {"value"}:
            t = type(attrs["value"].t)()
            t.CopyFrom(attrs["value"].t)
            t.name = node.output[0]
            model.graph.initializer.append(t)
            moved += 1
        else:
            keep.append(node)
    if moved:
        del model.graph.node[:]
        model.graph.node.extend(keep)
    return moved


def read_samples(calib_dir, inputs, np):
    """The samples of CALIB_DIR as feeds {input: array}, in name order."""
    feeds = []
    for name in sorted(os.listdir(calib_dir)):
        p = os.path.join(calib_dir, name)
        if os.path.isdir(p):
            feeds.append({i: np.load(os.path.join(p, i.replace("/", "_").replace(":", "_") + ".npy"))
                          for i in inputs})
        elif name.endswith(".npy"):
            if len(inputs) != 1:
                fail(2, f"{p}: one .npy file per sample, but the model has {len(inputs)} inputs")
            feeds.append({inputs[0]: np.load(p)})
    if not feeds:
        fail(2, f"{calib_dir}: no calibration samples")
    return feeds


def quantize(model_path, calib_dir, out_path):
    """quantize_static as the module doc says; returns the number of calibration samples."""
    try:
        import numpy as np
        import onnx
        from onnx import version_converter
        from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod,
                                              QuantFormat, QuantType, quantize_static)
    except ImportError as e:
        fail(2, f"{e}; run scripts/setup.sh and set PYTHONPATH=.deps/py")

    if not os.path.isfile(model_path):
        fail(2, f"{model_path}: no such model")
    if not os.path.isdir(calib_dir):
        fail(2, f"{calib_dir}: no such calibration folder")

    model = onnx.load(model_path)
    inits = {t.name for t in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in inits]
    feeds = read_samples(calib_dir, inputs, np)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)

    with tempfile.TemporaryDirectory() as tmp:
        moved = constants_to_initializers(model)
        if moved:
            print(f"ort_quantize: moved {moved} Constant-node tensors into initializers "
                  "(quantize_static only quantizes initializers)", file=sys.stderr)
        if opset < 13:
            print(f"ort_quantize: {model_path} is opset {opset}; upgrading to opset 13 first "
                  "(quantize_static needs it for per-channel QDQ)", file=sys.stderr)
            model = version_converter.convert_version(model, 13)
        src = os.path.join(tmp, "prepared.onnx")
        onnx.save(model, src)
        quantize_static(
            src,
            out_path,
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    return len(feeds)


def main():
    if len(sys.argv) != 4:
        fail(2, "usage: ort_quantize.py MODEL.onnx CALIB_DIR OUT.onnx")
    model_path, calib_dir, out_path = sys.argv[1:4]
    n = quantize(model_path, calib_dir, out_path)
    print(f"ort_quantize: wrote {out_path} ({n} calibration samples)", file=sys.stderr)


if __name__ == "__main__":
    main()
