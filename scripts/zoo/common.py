"""Paths, sample folders in the optimizer's input format, onnxruntime sessions, weight bytes."""
import os
import shutil
import sys

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def path(rel):
    """A repository-relative path made absolute."""
    return rel if os.path.isabs(rel) else os.path.join(ROOT, rel)


def fail(msg, code=2):
    print(f"zoo: {msg}", file=sys.stderr)
    sys.exit(code)


def rng(name, seed=0):
    """A generator seeded by a name, so every generator's stream is independent and stable."""
    h = 0
    for ch in f"{name}:{seed}":
        h = (h * 131 + ord(ch)) % (2**32)
    return np.random.default_rng(h)


def fresh_dir(d):
    """Empties (or creates) `d` through a sibling temporary folder renamed into place."""
    tmp = d + ".part"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    return tmp


def commit_dir(tmp):
    final = tmp[: -len(".part")]
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)


def file_name(input_name):
    """The file name the optimizer expects for an input (`/` and `:` become `_`)."""
    return input_name.replace("/", "_").replace(":", "_") + ".npy"


def write_samples(folder, samples):
    """Writes samples in the optimizer's input-folder format: a sample that is one array
    becomes `NNN.npy`; a dict {input: array} becomes a subfolder `NNN/` with one file per input."""
    tmp = fresh_dir(folder)
    for i, s in enumerate(samples):
        if isinstance(s, dict):
            sub = os.path.join(tmp, f"s{i:03d}")
            os.makedirs(sub)
            for name, arr in s.items():
                np.save(os.path.join(sub, file_name(name)), arr)
        else:
            np.save(os.path.join(tmp, f"s{i:03d}.npy"), s)
    commit_dir(tmp)


def read_samples(folder, input_names):
    """Reads a folder written by `write_samples` (or any folder in that format) as a list of
    (sample name, {input: array}), in name order."""
    if not os.path.isdir(folder):
        fail(f"{folder}: no such input folder (run scripts/zoo.sh)")
    out = []
    for name in sorted(os.listdir(folder)):
        p = os.path.join(folder, name)
        if os.path.isdir(p):
            out.append((name, {i: np.load(os.path.join(p, file_name(i))) for i in input_names}))
        elif name.endswith(".npy"):
            if len(input_names) != 1:
                fail(f"{p}: a single .npy file for a model with {len(input_names)} inputs")
            out.append((name[:-4], {input_names[0]: np.load(p)}))
    if not out:
        fail(f"{folder}: no samples")
    return out


def session(model_path, threads=1, optimize=True):
    """An onnxruntime CPU session (one thread, so runs are reproducible)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path(model_path), so, providers=["CPUExecutionProvider"])


def input_names(sess):
    return [i.name for i in sess.get_inputs()]


def run(sess, feed):
    return sess.run(None, feed)


def _tensor_bytes(t):
    """The bytes a tensor stores, as the optimizer counts them (element count × element
    size; 4-bit types count half a byte per element; strings their lengths)."""
    from onnx import TensorProto, helper

    n = 1
    for d in t.dims:
        n *= d
    if t.data_type in (TensorProto.INT4, TensorProto.UINT4):
        return (n + 1) // 2
    if t.data_type == TensorProto.STRING:
        return sum(len(s) for s in t.string_data)
    return n * np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize


def _graph_tensors(g):
    from onnx import AttributeProto

    for t in g.initializer:
        yield t
    for n in g.node:
        for a in n.attribute:
            if n.op_type == "Constant" and a.name == "value" and a.type == AttributeProto.TENSOR:
                yield a.t
            if a.type == AttributeProto.GRAPH:
                yield from _graph_tensors(a.g)
            elif a.type == AttributeProto.GRAPHS:
                for sg in a.graphs:
                    yield from _graph_tensors(sg)


def weight_bytes(model_path):
    """Bytes of every initializer and Constant-node tensor, subgraphs included (the way the
    issue asks weight bytes to be counted; `optimize inspect` today counts the main graph only,
    see docs/zoo.md). Returns (bytes, bytes of the main graph only)."""
    import onnx

    m = onnx.load(path(model_path), load_external_data=False)
    total = sum(_tensor_bytes(t) for t in _graph_tensors(m.graph))
    main = sum(_tensor_bytes(t) for t in m.graph.initializer)
    main += sum(
        _tensor_bytes(a.t)
        for n in m.graph.node
        if n.op_type == "Constant"
        for a in n.attribute
        if a.name == "value"
    )
    return total, main
