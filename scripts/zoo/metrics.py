"""Task metrics: a candidate model against the fp32 model on the evaluation set (and against
ground truth where the set has labels). Each metric returns a dict with `primary` (the name of
its headline figure) and the figures; see docs/zoo.md for the definitions."""
import json
import os

import numpy as np

from . import common, inputs_audio, seq2seq


def _labels(entry, part="eval"):
    p = os.path.join(common.path(entry.inputs), "labels.json")
    if not os.path.isfile(p):
        return None
    with open(p, encoding="utf-8") as f:
        return json.load(f).get(part)


def outputs(sess, samples):
    return [common.run(sess, feed) for _, feed in samples]


# ---- embeddings ---------------------------------------------------------------------------

def _sentence_embedding(hidden, mask):
    m = mask[..., None].astype(np.float32)
    e = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1.0)
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def _nn(e):
    s = e @ e.T
    np.fill_diagonal(s, -np.inf)
    return s.argmax(axis=1)


def embedding(ctx):
    a = np.concatenate([_sentence_embedding(o[0], f["attention_mask"]) for o, (_, f) in zip(ctx.ref, ctx.samples)])
    b = np.concatenate([_sentence_embedding(o[0], f["attention_mask"]) for o, (_, f) in zip(ctx.cand, ctx.samples)])
    cos = (a * b).sum(axis=1)
    return {"primary": "nn_agreement", "nn_agreement": float((_nn(a) == _nn(b)).mean()),
            "cosine_mean": float(cos.mean()), "cosine_min": float(cos.min())}


# ---- detection ----------------------------------------------------------------------------

def _iou(a, b):
    """IoU of boxes [N,4] and [M,4] (x1,y1,x2,y2)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def _nms(boxes, scores, iou):
    order, keep = np.argsort(-scores, kind="stable"), []
    while len(order):
        i = order[0]
        keep.append(i)
        order = order[1:][_iou(boxes[i:i + 1], boxes[order[1:]])[0] <= iou]
    return np.array(keep, dtype=int)


def yolo_boxes(out, conf=0.25, iou=0.45):
    """nudenet's post-processing: rows with best class score >= conf, class-agnostic NMS."""
    rows = out[0][0].T
    scores = rows[:, 4:].max(axis=1)
    keep = scores >= conf
    rows, scores = rows[keep], scores[keep]
    cls = rows[:, 4:].argmax(axis=1)
    xy, wh = rows[:, :2], rows[:, 2:4]
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1)
    k = _nms(boxes, scores, iou)
    return boxes[k], cls[k]


def picodet_boxes(out, conf=0.5, iou=0.5, size=(800, 608)):
    """rapid_layout's PicoDet post-processing: distribution-to-distance decoding over strides
    8/16/32/64, top 1000 per level, score > conf, per-class hard NMS."""
    boxes, scores = [], []
    for level, stride in enumerate((8, 16, 32, 64)):
        score, dist = out[level][0], out[level + 4][0]
        fh, fw = int(np.ceil(size[0] / stride)), int(np.ceil(size[1] / stride))
        ww, hh = np.meshgrid(np.arange(fw), np.arange(fh))
        cx, cy = (ww.flatten() + 0.5) * stride, (hh.flatten() + 0.5) * stride
        centers = np.stack([cx, cy, cx, cy], axis=1)[: len(score)]
        d = dist.reshape(-1, 8)
        d = np.exp(d - d.max(axis=1, keepdims=True))
        d = (d / d.sum(axis=1, keepdims=True) * np.arange(8)).sum(axis=1).reshape(-1, 4) * stride
        top = np.argsort(-score.max(axis=1), kind="stable")[:1000]
        boxes.append(centers[top] + np.array([-1, -1, 1, 1]) * d[top])
        scores.append(score[top])
    boxes, scores = np.concatenate(boxes), np.concatenate(scores)
    out_b, out_c = [], []
    for c in range(scores.shape[1]):
        m = scores[:, c] > conf
        if m.any():
            k = _nms(boxes[m], scores[m, c], iou)[:100]
            out_b.append(boxes[m][k])
            out_c += [c] * len(k)
    if not out_b:
        return np.zeros((0, 4)), np.zeros(0, dtype=int)
    return np.concatenate(out_b), np.array(out_c)


def _match(a, ca, b, cb, thr=0.5):
    """Greedy one-to-one matching by IoU >= thr: (matches, same-class matches)."""
    if len(a) == 0 or len(b) == 0:
        return 0, 0
    iou = _iou(a, b)
    matched = same = 0
    while True:
        i, j = np.unravel_index(iou.argmax(), iou.shape)
        if iou[i, j] < thr:
            return matched, same
        matched += 1
        same += int(ca[i] == cb[j])
        iou[i, :] = -1
        iou[:, j] = -1


def detection(ctx):
    decode = yolo_boxes if ctx.entry.metric == "yolo" else picodet_boxes
    n_ref = n_cand = matched = same = 0
    for r, c in zip(ctx.ref, ctx.cand):
        (ba, ca), (bb, cb) = decode(r), decode(c)
        m, s = _match(ba, ca, bb, cb)
        n_ref, n_cand, matched, same = n_ref + len(ba), n_cand + len(bb), matched + m, same + s
    rec = matched / n_ref if n_ref else 1.0
    prec = matched / n_cand if n_cand else 1.0
    return {"primary": "f1", "f1": 2 * rec * prec / max(rec + prec, 1e-12), "recall": rec,
            "precision": prec, "class_agreement": same / matched if matched else 1.0,
            "fp32_boxes": n_ref, "candidate_boxes": n_cand}


# ---- OCR, classification ------------------------------------------------------------------

def _ctc(indices, charset):
    out, prev = [], None
    for i in indices:
        i = int(i)
        if i != prev and i != 0 and i < len(charset):
            out.append(charset[i])
        prev = i
    return "".join(out)


def _charset(ctx):
    if ctx.entry.metric == "ctc_dddd":
        with open(os.path.join(common.path(ctx.zoo), "ddddocr", "charset.json"), encoding="utf-8") as f:
            return json.load(f)
    import onnx

    meta = {p.key: p.value for p in onnx.load(common.path(ctx.entry.model), load_external_data=False).metadata_props}
    return [""] + meta["character"].splitlines() + [" "]


def _strings(outs, charset, dddd):
    """Greedy CTC strings; ddddocr's output is [T,1,C] whatever its declaration says."""
    res = []
    for o in outs:
        logits = o[0][:, 0, :] if dddd else o[0][0]
        res.append(_ctc(logits.argmax(axis=-1), charset).strip())
    return res


def ocr(ctx):
    charset = _charset(ctx)
    dddd = ctx.entry.metric == "ctc_dddd"
    a, b = _strings(ctx.ref, charset, dddd), _strings(ctx.cand, charset, dddd)
    res = {"primary": "string_agreement", "string_agreement": float(np.mean([x == y for x, y in zip(a, b)]))}
    labels = _labels(ctx.entry)
    if labels:
        truth = [labels[name].strip() for name, _ in ctx.samples]
        norm = (lambda s: s.lower().replace(" ", "")) if dddd else (lambda s: s)  # noqa: E731
        res["fp32_accuracy"] = float(np.mean([norm(x) == norm(t) for x, t in zip(a, truth)]))
        res["accuracy"] = float(np.mean([norm(y) == norm(t) for y, t in zip(b, truth)]))
    return res


def classification(ctx):
    a = np.array([int(o[0].reshape(-1).argmax()) for o in ctx.ref])
    b = np.array([int(o[0].reshape(-1).argmax()) for o in ctx.cand])
    res = {"primary": "top1_agreement", "top1_agreement": float((a == b).mean())}
    labels = _labels(ctx.entry)
    if labels:
        truth = np.array([int(labels[name]) for name, _ in ctx.samples])
        res["fp32_accuracy"] = float((a == truth).mean())
        res["accuracy"] = float((b == truth).mean())
    return res


# ---- seq2seq ------------------------------------------------------------------------------

def seq2seq_tokens(ctx):
    """Full greedy decoding with encoder + decoder on the encoder's evaluation names: the
    candidate replaces the encoder or the decoder, the other stays fp32."""
    zoo = common.path(ctx.zoo)
    enc_ref = common.session(os.path.join(zoo, "gru_encoder", "encoder.onnx"))
    dec_ref = common.session(os.path.join(zoo, "gru_decoder", "decoder.onnx"))
    enc, dec = (ctx.cand_sess, dec_ref) if ctx.entry.metric == "seq2seq_enc" else (enc_ref, ctx.cand_sess)
    names = common.read_samples(os.path.join(zoo, "gru_encoder", "eval"), ["src", "src_mask"])
    same = total = exact = n = 0
    for _, src in names:
        a, b = seq2seq.greedy(enc_ref, dec_ref, src), seq2seq.greedy(enc, dec, src)
        for x, y in zip(a, b):
            x, y = _until_eos(x), _until_eos(y)
            L = max(len(x), len(y))
            same += sum(1 for i in range(min(len(x), len(y))) if x[i] == y[i])
            total += L
            exact += int(x == y)
            n += 1
    return {"primary": "token_agreement", "token_agreement": same / max(total, 1),
            "sequence_agreement": exact / max(n, 1), "names": n}


def _until_eos(row):
    out = []
    for t in row.tolist():
        out.append(t)
        if t == seq2seq.EOS:
            break
    return out


# ---- audio --------------------------------------------------------------------------------

def _cos(a, b):
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def _scores_agreement(sa, sb, threshold=0.5):
    sa, sb = np.array(sa), np.array(sb)
    d = np.abs(sa - sb)
    return {"decision_agreement": float(((sa >= threshold) == (sb >= threshold)).mean()),
            "score_abs_diff_mean": float(d.mean()), "score_abs_diff_max": float(d.max()),
            "fp32_positives": int((sa >= threshold).sum())}


def _head_scores(ctx, embs):
    head = common.session(os.path.join(common.path(ctx.zoo), "jarvis", "hey_jarvis_v0.1.onnx"))
    return [float(common.run(head, {"x.1": e})[0].reshape(-1)[0]) for e in embs]


def audio(ctx):
    """mel and audio_embedding: cosine of the model's outputs, and the wake-word score the
    downstream fp32 models give on them (decision at 0.5). wakeword: the scores themselves."""
    m = ctx.entry.metric
    if m == "wakeword":
        sa = [float(o[0].reshape(-1)[0]) for o in ctx.ref]
        sb = [float(o[0].reshape(-1)[0]) for o in ctx.cand]
        res = {"primary": "decision_agreement"}
        res.update(_scores_agreement(sa, sb))
        return res
    cos = np.concatenate([_cos(r[0], c[0]) for r, c in zip(ctx.ref, ctx.cand)])
    if m == "mel":
        emb = common.session(os.path.join(common.path(ctx.zoo), "oww_embedding", "embedding_model.onnx"))
        to_emb = lambda o: inputs_audio.embeddings(emb, inputs_audio.windows(o[0][0, 0] / 10.0 + 2.0))  # noqa: E731
    else:
        to_emb = lambda o: o[0].reshape(1, inputs_audio.EMBEDDINGS, 96)  # noqa: E731
    res = {"primary": "decision_agreement", "cosine_mean": float(cos.mean()), "cosine_min": float(cos.min())}
    res.update(_scores_agreement(_head_scores(ctx, [to_emb(o) for o in ctx.ref]),
                                 _head_scores(ctx, [to_emb(o) for o in ctx.cand])))
    return res


METRICS = {
    "embedding": embedding, "yolo": detection, "picodet": detection, "ctc_dddd": ocr,
    "ctc_ppocr": ocr, "cls_ppocr": classification, "cls_orientation": classification,
    "seq2seq_enc": seq2seq_tokens, "seq2seq_dec": seq2seq_tokens, "mel": audio,
    "audio_embedding": audio, "wakeword": audio,
}
