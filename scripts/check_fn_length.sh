#!/usr/bin/env bash
# Checks that no function in non-test Rust code (src/, crates/, passes/) is longer than LIMIT lines
# (issue 18). Prints the five longest functions with file:line and length; exits 1 when one
# is over the limit, listing every such function.
#
# A function's length runs from the line of its `fn` keyword to the line of its closing brace.
# Test code is skipped: files named tests.rs and any item under `#[cfg(test)]` (a `mod tests
# { ... }`, a test-only fn). Braces inside comments, string/raw-string/byte-string literals and
# char literals are ignored; lifetimes are told apart from char literals.
set -euo pipefail
LIMIT=150
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
python3 - "$LIMIT" src crates passes <<'PY'
import os
import re
import sys

limit = int(sys.argv[1])
dirs = sys.argv[2:]


def blank(src):
    """Returns src with comments and literals replaced by spaces (newlines kept), so braces
    and keywords left in the text are code."""
    out = list(src)
    n = len(src)
    i = 0

    def wipe(a, b):
        for k in range(a, min(b, n)):
            if out[k] != "\n":
                out[k] = " "

    def ident(c):
        return c.isalnum() or c == "_"

    while i < n:
        c = src[i]
        nxt = src[i + 1] if i + 1 < n else ""
        if c == "/" and nxt == "/":
            j = src.find("\n", i)
            j = n if j < 0 else j
            wipe(i, j)
            i = j
        elif c == "/" and nxt == "*":
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            wipe(i, j)
            i = j
        elif c in "rb" and (i == 0 or not ident(src[i - 1])) and re.match(r"(?:br|r)#*\"", src[i:i + 300]):
            m = re.match(r"(?:br|r)(#*)\"", src[i:])
            close = '"' + m.group(1)
            j = src.find(close, i + m.end())
            j = n if j < 0 else j + len(close)
            wipe(i, j)
            i = j
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            wipe(i, j + 1)
            i = j + 1
        elif c == "'":
            if nxt == "\\":
                j = src.find("'", i + 2)
                if src.startswith("\\'", i + 1):
                    j = src.find("'", i + 3)
                wipe(i, j + 1)
                i = j + 1
            elif i + 2 < n and src[i + 2] == "'":
                wipe(i, i + 3)
                i += 3
            else:
                i += 1  # a lifetime or a loop label
        else:
            i += 1
    return "".join(out)


def match_brace(code, open_at):
    """Index of the brace closing the one at open_at."""
    depth = 0
    for k in range(open_at, len(code)):
        if code[k] == "{":
            depth += 1
        elif code[k] == "}":
            depth -= 1
            if depth == 0:
                return k
    raise ValueError("unbalanced braces")


def body_start(code, at):
    """Index of the `{` opening the item whose header starts at `at`, or None when the item
    ends with `;` first (a declaration without a body)."""
    paren = 0
    for k in range(at, len(code)):
        ch = code[k]
        if ch in "([":
            paren += 1
        elif ch in ")]":
            paren -= 1
        elif paren == 0 and ch == "{":
            return k
        elif paren == 0 and ch == ";":
            return None
    return None


CFG_TEST = re.compile(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]")
FN = re.compile(r"\bfn\s+([A-Za-z_][A-Za-z0-9_]*)")

found = []
for d in dirs:
    for dirpath, _, files in os.walk(d):
        for name in sorted(files):
            if not name.endswith(".rs") or name == "tests.rs":
                continue
            path = os.path.join(dirpath, name)
            with open(path, encoding="utf-8") as f:
                code = blank(f.read())
            line_at = lambda k: code.count("\n", 0, k) + 1
            skipped = []  # [start, end] character ranges of test-only items
            for m in CFG_TEST.finditer(code):
                open_at = body_start(code, m.end())
                if open_at is not None:
                    skipped.append((m.start(), match_brace(code, open_at)))
            for m in FN.finditer(code):
                if any(a <= m.start() <= b for a, b in skipped):
                    continue
                open_at = body_start(code, m.end())
                if open_at is None:
                    continue
                first = line_at(m.start())
                last = line_at(match_brace(code, open_at))
                found.append((last - first + 1, path, first, m.group(1)))

found.sort(key=lambda t: (-t[0], t[1], t[2]))
print(f"five longest functions (limit {limit} lines):")
for length, path, line, fn in found[:5]:
    print(f"  {length:5d}  {path}:{line}  {fn}")
over = [t for t in found if t[0] > limit]
if over:
    print(f"{len(over)} function(s) over {limit} lines:")
    for length, path, line, fn in over:
        print(f"  {length:5d}  {path}:{line}  {fn}")
    sys.exit(1)
print(f"ok: {len(found)} functions, none over {limit} lines")
PY
