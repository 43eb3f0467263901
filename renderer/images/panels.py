"""Figures made of captioned image panels (the bake report's flat patches, `neumat compare`'s
side-by-side with its zoomed crops): a title, then rows of equally tall panels on a dark ground."""


import numpy as np


BACKGROUND = (24, 24, 24)
GAP, MARGIN, CAPTION = 8, 10, 24


def font(size: int):
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def enlarge(panel: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement, so pixels stay visible as pixels."""
    return np.repeat(np.repeat(panel, factor, axis=0), factor, axis=1) if factor > 1 else panel


def figure(rows: list[list[tuple[np.ndarray, str]]], title: str, subtitle: str = ""):
    """A PIL image: title and subtitle, then each row's (uint8 HxWx3 panel, caption) pairs left to
    right, each caption above its panel."""
    from PIL import Image, ImageDraw

    header = 52 if subtitle else 32
    widths = [sum(p.shape[1] for p, _ in row) + GAP * (len(row) - 1) for row in rows]
    heights = [max(p.shape[0] for p, _ in row) + CAPTION for row in rows]
    width = max(widths) + 2 * MARGIN
    height = header + sum(heights) + GAP * (len(rows) - 1) + MARGIN
    img = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(img)
    draw.text((MARGIN, 6), title, fill=(255, 255, 255), font=font(18))
    if subtitle:
        draw.text((MARGIN, 30), subtitle, fill=(200, 200, 200), font=font(14))
    y = header
    for row, row_height in zip(rows, heights):
        x = MARGIN
        for panel, caption in row:
            draw.text((x, y + 3), caption, fill=(230, 230, 230), font=font(14))
            img.paste(Image.fromarray(np.ascontiguousarray(panel), "RGB"), (x, y + CAPTION))
            x += panel.shape[1] + GAP
        y += row_height + GAP
    return img


