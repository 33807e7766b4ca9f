"""The GRU seq2seq romanizer (arabic-name-romanizer 0.2.0): names from its own names.sqlite3,
encoded as the package does (country and role prefix tokens, characters, EOS; batches padded
with PAD, src_mask True at padding), and a greedy decoding loop over encoder + decoder."""
import json
import os
import sqlite3

import numpy as np

from . import common

PAD, BOS, EOS, UNK = 0, 1, 2, 3
MAX_LEN = 32  # meta.json max_tgt_len
BATCH = 4  # names per sample


def vocab(zoo):
    with open(os.path.join(zoo, "gru_encoder", "vocab.json"), encoding="utf-8") as f:
        tokens = json.load(f)["tokens"]
    return tokens, {t: i for i, t in enumerate(tokens)}


def names(zoo):
    """Distinct (arabic, country, role) name units of Arab countries (the Persian-script ones
    have their own model), in a stable order."""
    _, index = vocab(zoo)
    db = sqlite3.connect(os.path.join(zoo, "gru_encoder", "names.sqlite3"))
    rows = db.execute("SELECT DISTINCT arabic_key, country, role FROM units "
                      "ORDER BY arabic_key, country, role").fetchall()
    return [r for r in rows if f"<{r[1]}>" in index and r[0]]


def encode(index, arabic, country, role):
    role_tok = {"given": "<ROLE_GIVEN>", "surname": "<ROLE_SURNAME>"}.get(role, "<ROLE_UNKNOWN>")
    ids = [index.get(f"<{country}>", index["<UNK_COUNTRY>"]), index[role_tok]]
    return ids + [index.get(ch, UNK) for ch in arabic] + [EOS]


def batch(index, rows):
    """The package's pad_batch: int64 ids padded with PAD, mask True at padding."""
    seqs = [encode(index, *r) for r in rows]
    width = max(len(s) for s in seqs)
    ids = np.full((len(seqs), width), PAD, dtype=np.int64)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = s
    return {"src": ids, "src_mask": ids == PAD}


def greedy(enc, dec, src, capture=None):
    """Greedy decoding (the package's beam search with width 1): returns the token ids
    [batch, steps]. `capture(step, feed)` sees every decoder feed."""
    memory, mask, hidden = common.run(enc, src)
    n = src["src"].shape[0]
    prefix = np.full((n, 1), BOS, dtype=np.int64)
    done = np.zeros(n, dtype=bool)
    for t in range(MAX_LEN):
        feed = {"prefix": prefix, "memory": memory, "src_mask": mask, "hidden": hidden}
        if capture:
            capture(t, feed)
        logprobs, hidden = common.run(dec, feed)
        lp = logprobs.copy()
        if t == 0:
            lp[:, EOS] = -np.inf
        tok = np.where(done, PAD, lp.argmax(axis=1))
        prefix = np.concatenate([prefix, tok[:, None]], axis=1)
        done |= tok == EOS
        if done.all():
            break
    return prefix[:, 1:]


def inputs(zoo, n_calib=16, n_eval=32):
    """Encoder samples (batches of 4 names) and decoder samples (feeds captured at random
    steps of the fp32 greedy decoding of those batches). Calibration and evaluation names are
    disjoint."""
    _, index = vocab(zoo)
    rows = names(zoo)
    r = common.rng("gru")
    pick = r.choice(len(rows), (n_calib + n_eval) * BATCH, replace=False)
    enc = common.session(os.path.join(zoo, "gru_encoder", "encoder.onnx"))
    dec = common.session(os.path.join(zoo, "gru_decoder", "decoder.onnx"))
    labels = {}
    for part, lo, n in (("calib", 0, n_calib), ("eval", n_calib, n_eval)):
        enc_s, dec_s, lab = [], [], {}
        for i in range(n):
            chunk = [rows[k] for k in pick[(lo + i) * BATCH:(lo + i + 1) * BATCH]]
            src = batch(index, chunk)
            enc_s.append(src)
            feeds = []
            greedy(enc, dec, src, lambda t, f: feeds.append({k: v.copy() for k, v in f.items()}))
            dec_s.append(feeds[int(r.integers(len(feeds)))])
            lab[f"s{i:03d}"] = [list(c) for c in chunk]
        common.write_samples(os.path.join(zoo, "gru_encoder", part), enc_s)
        common.write_samples(os.path.join(zoo, "gru_decoder", part), dec_s)
        labels[part] = lab
    for key in ("gru_encoder", "gru_decoder"):
        with open(os.path.join(zoo, key, "labels.json"), "w", encoding="utf-8") as f:
            json.dump(labels, f, indent=1, ensure_ascii=False)
