#!/usr/bin/env bash
# Checks the workspace's layering (issue 18): every crate depends only on crates of lower
# layers, so dependencies point down and a lower crate never names a higher one.
#
#   optimize-ir (0)  <-  optimize-runtimes (1)  <-  optimize-passes (2)  <-  optimize (3)
#
# Reads `cargo metadata` (the manifests as cargo resolves them, dev-dependencies included)
# and, to catch a module pulled in around the manifests, every `#[path = ...]` attribute and
# every `optimize*::` path in the lower crates' sources. Prints the edges it found; exits 1
# naming each upward or sideways edge. `--self-test` first checks that a made-up upward
# edge is refused, so a check that never fails cannot pass unnoticed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo metadata --format-version 1 --no-deps --offline >/tmp/optimize-layers.$$.json
trap 'rm -f /tmp/optimize-layers.$$.json' EXIT
python3 - /tmp/optimize-layers.$$.json "$@" <<'PY'
import json, os, re, sys

LAYERS = {"optimize-ir": 0, "optimize-runtimes": 1, "optimize-passes": 2, "optimize": 3}
CRATE_NAME = {k: k.replace("-", "_") for k in LAYERS}


def violations(edges):
    """Edges (from, to) among workspace crates that do not point to a lower layer."""
    bad = []
    for a, b in edges:
        if a not in LAYERS or b not in LAYERS:
            bad.append(f"{a} -> {b}: a crate outside the layer table (add it to check_layers.sh)")
        elif LAYERS[b] >= LAYERS[a]:
            bad.append(f"{a} (layer {LAYERS[a]}) -> {b} (layer {LAYERS[b]}): not a lower layer")
    return bad


def source_violations(pkg_dir, name):
    """`#[path]` attributes and names of same-or-higher crates in a crate's sources."""
    bad = []
    higher = [CRATE_NAME[k] for k, l in LAYERS.items() if l >= LAYERS[name] and k != name]
    pat = re.compile(r"\b(" + "|".join(map(re.escape, higher)) + r")::") if higher else None
    for d, _, files in os.walk(pkg_dir):
        if "/target" in d or "/.deps" in d or "/tests" in d[len(pkg_dir):] or "/examples" in d:
            continue
        for f in files:
            if not f.endswith(".rs"):
                continue
            p = os.path.join(d, f)
            for i, line in enumerate(open(p, encoding="utf-8"), 1):
                code = line.split("//")[0]
                if "#[path" in code:
                    bad.append(f"{p}:{i}: #[path] includes a module from elsewhere")
                if pat and pat.search(code):
                    bad.append(f"{p}:{i}: names a crate of a layer at or above {name}")
    return bad


if "--self-test" in sys.argv[2:]:
    assert violations([("optimize-passes", "optimize-ir")]) == []
    assert violations([("optimize-ir", "optimize-passes")]), "an upward edge was accepted"
    assert violations([("optimize-runtimes", "optimize-runtimes-2")]), "an unknown crate was accepted"
    print("self-test: an upward edge and an unknown crate are refused")

meta = json.load(open(sys.argv[1]))
members = {p["name"]: p for p in meta["packages"]}
missing = sorted(set(LAYERS) - set(members))
edges, bad = [], []
for name, pkg in sorted(members.items()):
    for dep in pkg["dependencies"]:
        if dep["name"] in members:
            edges.append((name, dep["name"]))
    if name != "optimize":
        bad += source_violations(os.path.dirname(pkg["manifest_path"]), name)
    else:
        # The top crate's own sources may name any crate; still no #[path] includes.
        for d in ("src",):
            for dd, _, files in os.walk(d):
                for f in files:
                    p = os.path.join(dd, f)
                    if f.endswith(".rs") and "#[path" in open(p, encoding="utf-8").read():
                        bad.append(f"{p}: #[path] includes a module from elsewhere")
bad += violations(edges)
bad += [f"{m}: missing from the workspace" for m in missing]
for a, b in sorted(set(edges), key=lambda e: (LAYERS.get(e[0], 9), e[1])):
    print(f"  {a} -> {b}")
if bad:
    print("layering violated:", *bad, sep="\n  ")
    sys.exit(1)
print(f"ok: {len(members)} crates, {len(set(edges))} edges, all pointing down")
PY
