"""Inputs made from English text: MiniLM sentences, ddddocr strips, PP-OCR text lines, pages
for the orientation classifier."""
import ast
import json
import math
import os

import numpy as np
from PIL import Image

from . import common, render, text


def _split(items, r, calib_fraction=0.25):
    """A seeded split of `items` into two disjoint lists (calibration, evaluation)."""
    idx = r.permutation(len(items))
    k = int(len(items) * calib_fraction)
    return [items[i] for i in idx[:k]], [items[i] for i in idx[k:]]


def minilm(out, n_calib=16, n_eval=64):
    """Sentences of 10-128 tokens (uniformly spread), tokenized with the model's own
    tokenizer.json (no padding: each sample has its own length), as the three int64 inputs."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
    tok.no_padding()
    r = common.rng("minilm")
    calib_pool, eval_pool = _split(text.sentences(), r)

    def make(pool, n, r):
        samples, texts = [], []
        for length in np.linspace(10, 128, n).round().astype(int)[r.permutation(n)]:
            tok.enable_truncation(max_length=int(length))
            s = pool[r.integers(len(pool))]
            enc = tok.encode(s)
            while len(enc.ids) < length:
                s = s + " " + pool[r.integers(len(pool))]
                enc = tok.encode(s)
            ids = np.array([enc.ids], dtype=np.int64)
            samples.append({"input_ids": ids,
                            "attention_mask": np.array([enc.attention_mask], dtype=np.int64),
                            "token_type_ids": np.array([enc.type_ids], dtype=np.int64)})
            texts.append(s)
        return samples, texts

    cal, cal_text = make(calib_pool, n_calib, r)
    ev, ev_text = make(eval_pool, n_eval, r)
    common.write_samples(os.path.join(out, "calib"), cal)
    common.write_samples(os.path.join(out, "eval"), ev)
    _write_labels(out, {"calib": cal_text, "eval": ev_text})


def _write_labels(out, labels):
    """labels.json: {"calib": {sample: label}, "eval": {...}}, sample names as written."""
    named = {part: {f"s{i:03d}": v for i, v in enumerate(vals)} for part, vals in labels.items()}
    with open(os.path.join(out, "labels.json"), "w", encoding="utf-8") as f:
        json.dump(named, f, indent=1, ensure_ascii=False)


def _snippets(r, n, max_words=3):
    ws = text.words()
    out = []
    for _ in range(n):
        k = int(r.integers(1, max_words + 1))
        start = int(r.integers(len(ws) - k))
        out.append(" ".join(ws[start:start + k]))
    return out


def dddd_charset(out):
    """The beta charset of ddddocr 1.6.1 (the one common.onnx goes with), read from the
    package's charset_manager.py without importing it; written once to charset.json."""
    dst = os.path.join(out, "charset.json")
    if not os.path.isfile(dst):
        with open(os.path.join(out, "charset_manager.py"), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "_get_beta_charset")
        lst = next(n for n in ast.walk(fn) if isinstance(n, ast.List))
        with open(dst, "w", encoding="utf-8") as f:
            json.dump([ast.literal_eval(e) for e in lst.elts], f, ensure_ascii=False)
    with open(dst, encoding="utf-8") as f:
        return json.load(f)


def ddddocr(out, n_calib=16, n_eval=32):
    """Captcha-like strips: 1-2 words (letters, sometimes digits) rendered dark on light, then
    the package's own preprocessing: resize to height 64 keeping the aspect (LANCZOS), grayscale,
    /255, [1,1,64,W]. Widths differ per sample, as in the package."""
    dddd_charset(out)
    r = common.rng("ddddocr")

    def make(n):
        samples, texts = [], []
        for s in _snippets(r, n, max_words=2):
            if r.random() < 0.3:
                s = s + str(int(r.integers(10, 9999)))
            img = render.text_line(s, r, size_range=(30, 44))
            w = int(img.size[0] * (64 / img.size[1]))
            img = img.resize((w, 64), Image.LANCZOS).convert("L")
            samples.append((np.asarray(img).astype(np.float32) / 255.0)[None, None])
            texts.append(s)
        return samples, texts

    cal, cal_t = make(n_calib)
    ev, ev_t = make(n_eval)
    common.write_samples(os.path.join(out, "calib"), cal)
    common.write_samples(os.path.join(out, "eval"), ev)
    _write_labels(out, {"calib": cal_t, "eval": ev_t})


def _ppocr_tensor(img, width):
    """rapidocr's preprocessing: height 48, aspect kept, width capped, (x/255-0.5)/0.5,
    right-padded with 0; BGR like cv2."""
    w = min(width, int(math.ceil(48 * img.size[0] / img.size[1])))
    a = np.asarray(img.resize((w, 48), Image.BILINEAR)).astype(np.float32)[:, :, ::-1]
    a = (a / 255.0 - 0.5) / 0.5
    t = np.zeros((1, 3, 48, width), dtype=np.float32)
    t[0, :, :, :w] = a.transpose(2, 0, 1)
    return t


def ppocr_text(out, n_calib=64, n_eval=96):
    """Text lines with ground truth for PP-OCR cls and rec (testdata.md): 1-3 words from the
    licenses, 26-36 px. rec: [1,3,48,320], label = the string; cls: [1,3,48,192], half of the
    lines rotated by 180 degrees, label 0 ('0') or 1 ('180')."""
    r = common.rng("ppocr_text")
    for part, n in (("calib", n_calib), ("eval", n_eval)):
        rec, cls, texts, angles = [], [], [], []
        for s in _snippets(r, n):
            img = render.text_line(s, r)
            rec.append(_ppocr_tensor(img, 320))
            flip = int(r.random() < 0.5)
            cls.append(_ppocr_tensor(img.rotate(180) if flip else img, 192))
            texts.append(s)
            angles.append(flip)
        common.write_samples(os.path.join(out, "rec", part), rec)
        common.write_samples(os.path.join(out, "cls", part), cls)
        _labels_part(os.path.join(out, "rec"), part, texts)
        _labels_part(os.path.join(out, "cls"), part, angles)


def _labels_part(folder, part, vals):
    p = os.path.join(folder, "labels.json")
    labels = {}
    if os.path.isfile(p):
        with open(p, encoding="utf-8") as f:
            labels = json.load(f)
    labels[part] = {f"s{i:03d}": v for i, v in enumerate(vals)}
    with open(p, "w", encoding="utf-8") as f:
        json.dump(labels, f, indent=1, ensure_ascii=False)
