"""onnxruntime's own one-call quantizers, the baselines of the zoo benchmark:
`quantize_static` QDQ U8S8 per-channel MinMax (scripts/ort_quantize.py: Constant tensors to
initializers, opset-13 upgrade) and `quantize_dynamic` with its defaults (int8 weights,
uint8 activations quantized at run time)."""
import contextlib
import io
import os
import sys
import time

from . import common

sys.path.insert(0, os.path.join(common.ROOT, "scripts"))


def static(entry, out):
    import ort_quantize

    ort_quantize.quantize(common.path(entry.model), os.path.join(common.path(entry.inputs), "calib"), out)


def dynamic(entry, out):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(common.path(entry.model), out, weight_type=QuantType.QInt8)


KINDS = {"static": static, "dynamic": dynamic}


def run(entry, kind, out_dir):
    """Quantizes with `kind`; returns {"model", "seconds"} or {"error"} (first line)."""
    out = os.path.join(out_dir, f"{entry.key}.ort_{kind}.onnx")
    t = time.time()
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            KINDS[kind](entry, out)
    except SystemExit as e:
        return {"error": f"exit {e.code}: {log.getvalue().strip().splitlines()[-1:]}"}
    except Exception as e:  # the quantizer's own failure is the result
        return {"error": f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:300]}
    return {"model": out, "seconds": round(time.time() - t, 2)}
