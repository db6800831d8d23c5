"""A class-labelled image grid: one row per class, the class name written left of its row, tiles
enlarged (nearest neighbour) so that 8x8 and 28x28 images can be looked at."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def save_labelled_grid(images: np.ndarray, labels: np.ndarray, classes, path: str | Path, *, per_class: int = 10,
                       tile: int = 56, title: str = "") -> Path:
    """Images in [-1, 1] (N, C, H, W); up to ``per_class`` images of every class, in class order."""
    from PIL import Image, ImageDraw

    images, labels = np.asarray(images), np.asarray(labels)
    _, c, h, w = images.shape
    scale = max(1, tile // max(h, w))
    th, tw, pad, left, top = h * scale, w * scale, 2, 160, 18 if title else 2
    grid = Image.new("RGB", (left + per_class * (tw + pad) + pad, top + len(classes) * (th + pad) + pad), "white")
    draw = ImageDraw.Draw(grid)
    if title:
        draw.text((4, 3), title, fill="black")
    for row, name in enumerate(classes):
        y = top + row * (th + pad)
        picked = images[labels == row][:per_class]
        draw.text((4, y + th // 2 - 5), f"{name} ({int((labels == row).sum())})"[:26], fill="black")
        for j, img in enumerate(picked):
            tile_px = np.rint((np.clip(img, -1, 1) + 1) * 127.5).astype(np.uint8).transpose(1, 2, 0)
            pil = Image.fromarray(tile_px[:, :, 0] if c == 1 else tile_px).convert("RGB")
            grid.paste(pil.resize((tw, th), Image.NEAREST), (left + pad + j * (tw + pad), y))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
    return path
