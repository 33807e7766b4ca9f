#!/usr/bin/env python3
"""Where a model's weight bytes sit: constant tensors (initializers and Constant nodes,
subgraphs included) grouped by the op types that read them, and by graph (main or a branch).
Shows at a glance which bytes a precision pass can reach (docs/zoo.md uses it).

usage: PYTHONPATH=.deps/py python3 scripts/zoo_weights.py KEY|MODEL.onnx...
"""
import collections
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from zoo import common  # noqa: E402
from zoo.registry import BY_KEY  # noqa: E402


def constants(g, where):
    """(name, bytes, where) of every constant tensor of `g` and its subgraphs."""
    from onnx import AttributeProto

    for t in g.initializer:
        yield t.name, common._tensor_bytes(t), where
    for n in g.node:
        for a in n.attribute:
            if n.op_type == "Constant" and a.name == "value":
                yield n.output[0], common._tensor_bytes(a.t), where
            if a.type == AttributeProto.GRAPH:
                yield from constants(a.g, f"{where}/{n.op_type}.{a.name}")


def readers(g, where, out):
    """Op types (with the input slot) reading each name, subgraphs included."""
    from onnx import AttributeProto

    for n in g.node:
        for slot, i in enumerate(n.input):
            if i:
                out[i].add(f"{n.op_type}[{slot}]" + ("" if where == "main" else f" in {where}"))
        for a in n.attribute:
            if a.type == AttributeProto.GRAPH:
                readers(a.g, f"{where}/{n.op_type}.{a.name}", out)
    return out


def report(path):
    import onnx

    m = onnx.load(common.path(path), load_external_data=False)
    users = readers(m.graph, "main", collections.defaultdict(set))
    by = collections.Counter()
    total = 0
    for name, b, where in constants(m.graph, "main"):
        total += b
        key = ", ".join(sorted(users.get(name, {"(nothing)"})))
        by[(key, where)] += b
    print(f"{path}: {total} weight bytes")
    for (key, where), b in by.most_common():
        if b * 1000 < total:
            continue
        print(f"  {b / total:6.1%} {b:>10}  {where:<22} read by {key}")


def main():
    if len(sys.argv) < 2:
        common.fail("usage: zoo_weights.py KEY|MODEL.onnx...")
    for a in sys.argv[1:]:
        report(BY_KEY[a].model if a in BY_KEY else a)


if __name__ == "__main__":
    main()
