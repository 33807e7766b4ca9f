#!/usr/bin/env python3
"""onnxruntime's own static quantizer, the baseline of the precision benchmark.

usage: PYTHONPATH=.deps/py python3 scripts/ort_quantize.py MODEL.onnx CALIB_DIR OUT.onnx

Runs onnxruntime.quantization.quantize_static with QDQ format, per-channel int8 weights,
uint8 activations and MinMax calibration on the .npy files of CALIB_DIR (single-input models:
one file per sample, in name order). A model below opset 13 is first upgraded to opset 13 with
onnx.version_converter (per-channel QDQ needs opset 13, and quantize_static writes an invalid
graph on the opset-11 PP-OCR cls model otherwise); the script says so on stderr.
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


def main():
    if len(sys.argv) != 4:
        fail(2, "usage: ort_quantize.py MODEL.onnx CALIB_DIR OUT.onnx")
    model_path, calib_dir, out_path = sys.argv[1:4]
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
    files = sorted(f for f in os.listdir(calib_dir) if f.endswith(".npy"))
    if not files:
        fail(2, f"{calib_dir}: no .npy calibration files")

    model = onnx.load(model_path)
    inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if len(inputs) != 1:
        fail(2, f"{model_path}: expected one runtime input, found {len(inputs)}")
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(files)

        def get_next(self):
            name = next(self.it, None)
            if name is None:
                return None
            return {inputs[0]: np.load(os.path.join(calib_dir, name)).astype(np.float32)}

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
    print(f"ort_quantize: wrote {out_path} ({len(files)} calibration samples)", file=sys.stderr)


if __name__ == "__main__":
    main()
