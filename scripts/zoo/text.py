"""English text from files every Debian machine has: the licenses in /usr/share/common-licenses
and the docstrings of a fixed list of Python standard-library modules."""
import ast
import os
import re
import sysconfig

LICENSES = "/usr/share/common-licenses"
# Fixed, sorted: the text a seed selects from must not depend on what else is installed.
LICENSE_FILES = ["Apache-2.0", "Artistic", "BSD", "GFDL-1.3", "GPL-2", "GPL-3", "LGPL-2.1",
                 "LGPL-3", "MPL-1.1", "MPL-2.0"]
STDLIB_MODULES = ["argparse.py", "collections/__init__.py", "csv.py", "difflib.py", "functools.py",
                  "heapq.py", "json/__init__.py", "logging/__init__.py", "pathlib.py", "random.py",
                  "shutil.py", "statistics.py", "subprocess.py", "tarfile.py", "textwrap.py",
                  "threading.py", "zipfile.py"]


def _clean(s):
    return re.sub(r"\s+", " ", s).strip()


def _sentences(text):
    text = _clean(text)
    parts = re.split(r"(?<=[.!?;])\s+(?=[A-Z\"(])", text)
    return [p for p in parts if 20 <= len(p) <= 900 and sum(c.isalpha() for c in p) > 0.6 * len(p)]


def license_texts():
    out = []
    for name in LICENSE_FILES:
        p = os.path.join(LICENSES, name)
        if not os.path.isfile(p):
            raise SystemExit(f"zoo: {p}: missing (Debian base-files provides it)")
        with open(p, encoding="utf-8", errors="replace") as f:
            out.append((name, f.read()))
    return out


def docstring_texts():
    lib = sysconfig.get_paths()["stdlib"]
    out = []
    for rel in STDLIB_MODULES:
        p = os.path.join(lib, rel)
        if not os.path.isfile(p):
            continue
        with open(p, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        docs = [ast.get_docstring(n) for n in ast.walk(tree)
                if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef))]
        out.append((rel, "\n".join(d for d in docs if d)))
    return out


def sentences():
    """Unique English sentences in a stable order: licenses first, then docstrings."""
    seen, out = set(), []
    for _, text in license_texts() + docstring_texts():
        for s in _sentences(text):
            if s not in seen:
                seen.add(s)
                out.append(s)
    return out


def words():
    """Words (letters only, 2-12 long) from the licenses, in a stable order, with repeats."""
    out = []
    for _, text in license_texts():
        out += [w for w in re.findall(r"[A-Za-z]+", text) if 2 <= len(w) <= 12]
    return out
