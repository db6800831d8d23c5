"""Screenshot HTML reports at 1400 px with headless Chromium, to look at them as a reader would.

    python evaluation/screenshot_reports.py NAME=REPORT.html [NAME=REPORT.html ...] [--out DIR]

For each report it writes DIR/NAME_first_screen.png (1400 x 900: what a reader sees before
scrolling) and DIR/NAME_full.png (the whole page, blank space below the content trimmed).
Needs Debian's `chromium` (apt-get install -y chromium) and Pillow.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.render_report_html import find_chromium, screenshot  # noqa: E402

WIDTH = 1400


def trim_bottom(png: Path, *, background: int = 250, margin: int = 24) -> None:
    """Cut the blank rows below the page's last content."""
    import numpy as np
    from PIL import Image

    image = Image.open(png).convert("RGB")
    rows = np.asarray(image).min(axis=(1, 2)) < background
    last = int(np.flatnonzero(rows)[-1]) if rows.any() else image.height - 1
    image.crop((0, 0, image.width, min(image.height, last + margin))).save(png, optimize=True)


def shoot(name: str, html: Path, out: Path, *, full_height: int = 12000) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    first = screenshot(html, out / f"{name}_first_screen.png", width=WIDTH, height=900)
    full = screenshot(html, out / f"{name}_full.png", width=WIDTH, height=full_height)
    trim_bottom(full)
    return [first, full]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reports", nargs="+", help="NAME=path/to/report.html")
    ap.add_argument("--out", type=Path, default=Path("evaluation/results/screenshots"))
    ap.add_argument("--full-height", type=int, default=12000, help="window height for the full-page shot")
    args = ap.parse_args(argv)
    if find_chromium() is None:
        print("chromium not installed (apt-get install -y chromium)")
        return 1
    for item in args.reports:
        name, _, path = item.partition("=")
        if not path:
            ap.error(f"give NAME=REPORT.html, got {item}")
        for png in shoot(name, Path(path), args.out, full_height=args.full_height):
            print(f"{png} ({png.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
