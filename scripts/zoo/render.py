"""Text rendered with PIL (Debian fonts-dejavu-core and fonts-liberation): text lines and pages."""
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIRS = ["/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/liberation"]
# Only files of the two core packages, so every fresh machine renders the same pixels.
FONT_FILES = ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf",
              "LiberationSans-Regular.ttf", "LiberationSans-Bold.ttf", "LiberationSerif-Regular.ttf",
              "LiberationSerif-Italic.ttf", "LiberationMono-Regular.ttf"]


def fonts():
    out = []
    for f in FONT_FILES:
        for d in FONT_DIRS:
            p = os.path.join(d, f)
            if os.path.isfile(p):
                out.append(p)
    if not out:
        raise SystemExit("zoo: no DejaVu/Liberation fonts (apt-get install fonts-dejavu-core fonts-liberation)")
    return out


def text_line(text, r, size_range=(26, 36), margin=(3, 8)):
    """An RGB image of one line of dark text on a light background, with varied contrast, a
    little Gaussian noise and a few pixels of margin (seeded by the generator `r`)."""
    font = ImageFont.truetype(fonts()[r.integers(len(fonts()))], int(r.integers(*size_range, endpoint=True)))
    x0, y0, x1, y1 = font.getbbox(text)
    mx, my = (int(r.integers(margin[0], margin[1] + 1)) for _ in range(2))
    w, h = x1 - x0 + 2 * mx, y1 - y0 + 2 * my
    bg = int(r.integers(170, 256))
    fg = int(r.integers(0, max(1, bg - 110)))
    tint = r.integers(-12, 13, size=3)
    img = Image.new("RGB", (w, h), tuple(int(np.clip(bg + t, 0, 255)) for t in tint))
    ImageDraw.Draw(img).text((mx - x0, my - y0), text, font=font, fill=(fg, fg, fg))
    a = np.asarray(img).astype(np.float32) + r.normal(0, r.uniform(2, 8), size=(h, w, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def page(paragraph, r, size=(600, 800)):
    """An RGB 'document page': a paragraph wrapped onto a white page in one font."""
    font = ImageFont.truetype(fonts()[r.integers(len(fonts()))], int(r.integers(14, 22)))
    img = Image.new("RGB", size, (255, 255, 255))
    d = ImageDraw.Draw(img)
    margin, y = int(r.integers(30, 60)), int(r.integers(30, 80))
    line = ""
    for word in paragraph.split():
        trial = (line + " " + word).strip()
        if d.textlength(trial, font=font) > size[0] - 2 * margin:
            d.text((margin, y), line, font=font, fill=(20, 20, 20))
            y += int(font.size * 1.5)
            line = word
            if y > size[1] - margin - font.size:
                return img
        else:
            line = trial
    d.text((margin, y), line, font=font, fill=(20, 20, 20))
    return img
