"""The image evaluation report: report.json, report.md and a self-contained report.html with
the metric table, the privacy ledger and image grids (PNG, base64-embedded)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from dpsynth.metrics.base import _plain


def _rows(results: dict) -> list[tuple[str, str, str]]:
    rows = []
    for name, m in results["metrics"].items():
        value = m["value"]
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        rows.append((name, text, m["goal"] + (f" {m['target']}" if m.get("target") is not None else "")))
    return rows


def _subgroup_rows(results: dict) -> list[tuple[str, ...]]:
    """(group, n test, real acc, synthetic acc, gap) per subgroup of the real test images."""
    util = results["metrics"].get("image_downstream_accuracy", {}).get("breakdown", {})
    rows = []
    for g in util.get("subgroups") or []:
        if g["status"] != "ok":
            rows.append((g["group"], str(g["n_test"]), "-", "-", g["status"]))
            continue
        rows.append((g["group"], str(g["n_test"]), f"{g['real_accuracy']:.3f}", f"{g['synthetic_accuracy']:.3f}",
                     f"{g['accuracy_gap']:.3f}"))
    return rows


def _downstream_line(results: dict) -> str:
    """One sentence: synthetic- vs real-trained CNN accuracy and AUROC (mean +/- std over repeats)."""
    util = results["metrics"].get("image_downstream_accuracy", {}).get("breakdown", {})
    if not util:
        return ""

    def score(side: str, key: str) -> str:
        std = util.get(f"{side}_{key}_std")
        return f"{util[f'{side}_{key}']:.3f}" + (f" +/- {std:.3f}" if std is not None else "")

    return (f"Downstream CNN on the real test split (mean of {util.get('repeats', 1)} CNN(s) per side):"
            f" trained on synthetic images accuracy {score('synthetic', 'accuracy')}, AUROC {score('synthetic', 'auroc')};"
            f" trained on real images accuracy {score('real', 'accuracy')}, AUROC {score('real', 'auroc')};"
            f" accuracy ratio {util['accuracy_ratio']:.3f}.")


_SUBGROUP_HEAD = ("subgroup (real test images)", "n", "accuracy, real-trained CNN", "accuracy, synthetic-trained CNN",
                  "gap")


def write_image_report(out_dir: str | Path, results: dict, *, grids: dict[str, Path], title: str) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(_plain(results), indent=2))
    ledger = results.get("ledger", {})
    eps = ledger.get("epsilon")
    md = [f"# {title}", "", f"epsilon {eps} (delta {ledger.get('delta')}, accountant {ledger.get('accountant')})", "",
          _downstream_line(results), "", "| metric | value | goal |", "|---|---|---|"]
    md += [f"| {a} | {b} | {c} |" for a, b, c in _rows(results)]
    subgroups = _subgroup_rows(results)
    if subgroups:
        md += ["", "## Subgroups", "", "| " + " | ".join(_SUBGROUP_HEAD) + " |", "|---" * len(_SUBGROUP_HEAD) + "|"]
        md += ["| " + " | ".join(r) + " |" for r in subgroups]
    md += ["", *[f"![{k}]({Path(v).name})" for k, v in grids.items()], ""]
    (out / "report.md").write_text("\n".join(md))
    imgs = "".join(
        f"<figure><img alt='{html.escape(k)}' src='data:image/png;base64,{base64.b64encode(Path(v).read_bytes()).decode()}'"
        f" style='image-rendering:pixelated;width:420px'><figcaption>{html.escape(k)}</figcaption></figure>"
        for k, v in grids.items())
    table = "".join(f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td><td>{html.escape(c)}</td></tr>"
                    for a, b, c in _rows(results))
    sub_html = ""
    if subgroups:
        cells = lambda row, tag: "".join(f"<{tag}>{html.escape(x)}</{tag}>" for x in row)  # noqa: E731
        sub_html = ("<h2>Subgroups</h2><table><tr>" + cells(_SUBGROUP_HEAD, "th") + "</tr>"
                    + "".join(f"<tr>{cells(r, 'td')}</tr>" for r in subgroups) + "</table>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;border-bottom:1px solid #ddd}"
            "figure{display:inline-block;margin:1em}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p>epsilon {html.escape(str(eps))}, delta {html.escape(str(ledger.get('delta')))},"
            f" accountant {html.escape(str(ledger.get('accountant')))}</p><p>{html.escape(_downstream_line(results))}</p>"
            f"<table><tr><th>metric</th><th>value</th><th>goal</th></tr>{table}</table>{sub_html}{imgs}"
            f"<h2>Privacy ledger</h2><pre>{html.escape(json.dumps(ledger, indent=2))}</pre></body></html>")
    (out / "report.html").write_text(page)
    return {"json": out / "report.json", "md": out / "report.md", "html": out / "report.html"}
