"""The `If` model with its branch weights moved into the branch's own initializers, as
scripted exports (torch.jit.script, tf2onnx) write them: every main-graph initializer that
only a branch reads moves into that branch. Checked on onnxruntime against the original."""
import os

import numpy as np

from . import common


def _reads(graph):
    """Names a graph's nodes read, subgraphs included."""
    from onnx import AttributeProto

    out = set()
    for n in graph.node:
        out.update(n.input)
        for a in n.attribute:
            if a.type == AttributeProto.GRAPH:
                out |= _reads(a.g)
    return out


def move_into_branches(model):
    """Moves initializers read only inside exactly one subgraph into it; returns how many."""
    from onnx import AttributeProto

    g = model.graph
    main_reads = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    branches = [(n, a) for n in g.node for a in n.attribute if a.type == AttributeProto.GRAPH]
    moved = 0
    keep = []
    for t in g.initializer:
        users = [a.g for _, a in branches if t.name in _reads(a.g)]
        if t.name not in main_reads and len(users) == 1:
            users[0].initializer.append(t)
            moved += 1
        else:
            keep.append(t)
    del g.initializer[:]
    g.initializer.extend(keep)
    return moved


def make(zoo):
    """Writes jarvis/hey_jarvis_branch_init.onnx and checks it on the evaluation inputs:
    onnxruntime must load it and give bit-identical outputs."""
    import onnx

    src = os.path.join(zoo, "jarvis", "hey_jarvis_v0.1.onnx")
    dst = os.path.join(zoo, "jarvis", "hey_jarvis_branch_init.onnx")
    m = onnx.load(src)
    moved = move_into_branches(m)
    if moved == 0:
        common.fail(f"{src}: no initializer is read only inside a branch")
    onnx.checker.check_model(m)
    onnx.save(m, dst + ".part")
    os.replace(dst + ".part", dst)
    a, b = common.session(src), common.session(dst)
    samples = common.read_samples(os.path.join(zoo, "jarvis", "eval"), common.input_names(a))
    for name, feed in samples:
        x, y = common.run(a, feed), common.run(b, feed)
        if not all(np.array_equal(p, q) for p, q in zip(x, y)):
            common.fail(f"{dst}: outputs differ from the original on sample {name}", 1)
    print(f"zoo: {dst}: {moved} initializers moved into the then-branch; "
          f"outputs identical on {len(samples)} samples")
