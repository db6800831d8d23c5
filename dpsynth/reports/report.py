"""Write an evaluation report: report.json, report.md and a self-contained report.html.

The HTML embeds its figures as base64 PNGs and its style inline, so one file travels alone.
Everything is drawn from the results dict of :func:`dpsynth.metrics.suite.evaluate_table`,
plus the run's ledger and privacy card when given.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from dpsynth.errors import DataError
from dpsynth.metrics.base import _plain
from dpsynth.reports.plots import all_plots
from dpsynth.reports.readable import (CSS, LEDGER_HEADERS, html_table, ledger_appendix_html, ledger_summary_rows,
                                     md_table, privacy_claim_rows, verdict_html)
from dpsynth.reports.tables import LIGHTS, Table, all_tables, fmt
from dpsynth.reports.terminal import format_terminal_summary
from dpsynth.reports.verdict import release_verdict

__all__ = ["write_report", "format_terminal_summary", "render_markdown", "render_html"]

_COLORS = {"GREEN": "#1a7f37", "AMBER": "#b7791f", "RED": "#c53030", "FLAG": "#c53030"}


def write_report(out_dir: str | Path, results: dict, *, ledger_dict: dict | None = None,
                 privacy_card: dict | str | None = None, title: str | None = None,
                 plots: bool = True) -> dict[str, Path]:
    """Write the three files into ``out_dir`` (created if needed); return their paths.

    This is an internal evaluation: each file says so on its first line (report.json: its first
    key, ``notice``), and the reader meets the release verdict, then the privacy claim, then
    the ledger per mechanism; raw ledger entries and the privacy card sit in a collapsed appendix."""
    from dpsynth.reports.internal import INTERNAL_NOTICE

    if not isinstance(results, dict) or "verdicts" not in results:
        raise DataError("write_report needs the dict returned by evaluate_table (no 'verdicts' key found)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    title = title or f"dpsynth evaluation: {results.get('meta', {}).get('schema', 'table')}"
    payload = {"notice": INTERNAL_NOTICE, **results, "ledger": ledger_dict, "privacy_card": privacy_card}
    paths = {"json": out / "report.json", "md": out / "report.md", "html": out / "report.html"}
    paths["json"].write_text(json.dumps(_plain(payload), indent=2, default=str))
    tables = all_tables(results, ledger=None, card=None)
    support = support_table(results)
    if support is not None:
        tables.insert(1, support)
    summary = format_terminal_summary(results)
    fit, sentence = release_verdict(results, ledger_dict)
    claim = claim_rows(results, ledger_dict, privacy_card)
    paths["md"].write_text(render_internal_markdown(title, tables, summary, sentence=sentence, claim=claim,
                                                    ledger=ledger_dict, card=privacy_card))
    figures = all_plots(results) if plots else {}
    paths["html"].write_text(render_internal_html(title, tables, figures, fit=fit, sentence=sentence, claim=claim,
                                                  cards=area_cards(results), ledger=ledger_dict, card=privacy_card))
    return paths


def claim_rows(results: dict, ledger: dict | None, card) -> list[list[str]]:
    meta = results.get("meta", {})
    card = card if isinstance(card, dict) else {}
    return privacy_claim_rows(ledger, privacy_unit=meta.get("privacy_unit") or card.get("privacy_unit"),
                              public=card.get("public_inputs"), n_train=meta.get("n_train"),
                              generator=card.get("generator"))


def area_cards(results: dict) -> list[tuple[str, str, str]]:
    """(area, light, the one number behind it) per area, worst check first."""
    rank = {"green": 0, "amber": 1, "red": 2, "n/a": -1}
    cards = []
    for area, block in results.get("verdicts", {}).items():
        checks = [c for c in block["checks"] if c.get("value") is not None]
        worst = max(checks, key=lambda c: rank.get(c["verdict"], -1)) if checks else None
        detail = f"{worst['label']}: {fmt(worst['value'])}" if worst else "not measured"
        cards.append((area, LIGHTS.get(block["verdict"], block["verdict"]), detail))
    return cards


def support_table(results: dict) -> Table | None:
    sup = results.get("support")
    if not sup:
        return None
    rows = [[g["column"], g["region"], str(g["n_synthetic"]), f"{100 * g['share_synthetic']:.1f}%", "0", "FLAG"]
            for g in sup["regions"][:15]]
    if not rows:
        rows = [["every column", "-", "0", "0.0%", "-", "ok"]]
    name = (f"Synthetic rows where the real training split has no rows: {sup['rows_in_unsupported_regions']} "
            f"({100 * sup['share_in_unsupported_regions']:.1f}% of the synthetic rows)")
    return (name, ["column", "region (public bins)", "synthetic rows", "share of synthetic", "real rows", "flag"], rows)


def render_internal_markdown(title: str, tables: list[Table], summary: str, *, sentence: str, claim, ledger, card) -> str:
    from dpsynth.reports.internal import INTERNAL_NOTICE

    lines = [f"**{INTERNAL_NOTICE}.**", "", f"# {title}", "", f"**{sentence}**", "", "## Privacy claim", "",
             *md_table(["item", "value"], claim), ""]
    summary_rows = ledger_summary_rows(ledger)
    if summary_rows:
        lines += ["## Privacy ledger (per mechanism)", "", *md_table(LEDGER_HEADERS, summary_rows), ""]
    lines += ["## Summary", "", "```", summary, "```", ""]
    for name, headers, rows in tables:
        lines += [f"## {name}", "", *md_table(headers, rows), ""]
    if ledger or card:
        lines += ["## Appendix: raw ledger entries and privacy card", "", "<details><summary>show</summary>", "",
                  "```json", json.dumps({"ledger": ledger, "privacy_card": card}, indent=2, default=str), "```", "",
                  "</details>", ""]
    return "\n".join(lines)


def render_internal_html(title: str, tables: list[Table], figures: dict[str, bytes], *, fit: bool, sentence: str,
                         claim, cards, ledger, card) -> str:
    from dpsynth.reports.internal import INTERNAL_NOTICE

    card_html = "".join(f"<div class='card'><b>{html.escape(a.capitalize())}</b>{_cell(light)}"
                        f"<div class='sub'>{html.escape(detail)}</div></div>" for a, light, detail in cards)
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{CSS}</style></head><body>",
             f"<div class='banner internal'>{html.escape(INTERNAL_NOTICE)}.</div>",
             f"<h1>{html.escape(title)}</h1>", verdict_html(sentence, fit), f"<div class='cards'>{card_html}</div>",
             "<div class='cols'><div><h2>Privacy claim</h2>", html_table(["item", "value"], claim, cls="claim"), "</div>"]
    summary_rows = ledger_summary_rows(ledger)
    if summary_rows:
        parts.append("<div><h2>Privacy ledger, per mechanism</h2>" + html_table(LEDGER_HEADERS, summary_rows) + "</div>")
    parts.append("</div>")
    parts.extend(_tables_and_figures_html(tables, figures))
    extra = {"Privacy card": card} if isinstance(card, dict) else None
    parts.append("<h2>Appendix</h2>" + (ledger_appendix_html(ledger, extra=extra) if ledger else
                                        "<p class='note'>No ledger was given.</p>"))
    parts.append("</body></html>")
    return "\n".join(parts)


# ---- Markdown -----------------------------------------------------------------------------------
def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(title: str, tables: list[Table], summary: str) -> str:
    lines = [f"# {title}", "", "```", summary, "```", ""]
    for name, headers, rows in tables:
        lines += [f"## {name}", "", "| " + " | ".join(_md_cell(h) for h in headers) + " |",
                  "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)


# ---- HTML ---------------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1200px;
color:#1a202c;padding:0 16px}
h1{font-size:1.6em;border-bottom:2px solid #2d3748;padding-bottom:6px}
h2{font-size:1.15em;margin-top:28px;color:#2d3748}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}
th,td{border:1px solid #cbd5e0;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#edf2f7}
tr:nth-child(even) td{background:#f7fafc}
.light{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-weight:600;font-size:12px}
pre{background:#f7fafc;border:1px solid #e2e8f0;padding:10px;font-size:12px;overflow-x:auto}
figure{margin:12px 0 24px}figcaption{font-size:13px;color:#4a5568;margin-bottom:4px}
img{max-width:100%;border:1px solid #e2e8f0}
.areas{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}
.area{border:1px solid #cbd5e0;border-radius:8px;padding:10px 16px;min-width:150px}
.area b{display:block;margin-bottom:6px;text-transform:capitalize}
"""


def _cell(text: str) -> str:
    if text in _COLORS:
        return f'<span class="light" style="background:{_COLORS[text]}">{text}</span>'
    return html.escape(text)


def _html_table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _area_cards(tables: list[Table]) -> str:
    verdict_rows = next((rows for name, _, rows in tables if name == "Verdicts"), [])
    worst: dict[str, str] = {}
    rank = {"GREEN": 0, "AMBER": 1, "RED": 2}
    for area, light, *_ in verdict_rows:
        if light in rank and rank[light] >= rank.get(worst.get(area, "GREEN"), 0):
            worst[area] = light
    cards = "".join(f'<div class="area"><b>{html.escape(a)}</b>{_cell(v)}</div>' for a, v in worst.items())
    return f'<div class="areas">{cards}</div>'


def _tables_and_figures_html(tables: list[Table], figures: dict[str, bytes]) -> list[str]:
    """The report's tables, then its figures embedded as base64 PNGs."""
    parts = [f"<h2>{html.escape(name)}</h2>{_html_table(headers, rows)}" for name, headers, rows in tables]
    if figures:
        parts.append("<h2>Figures</h2>")
    for caption, png in figures.items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(f"<figure><figcaption>{html.escape(caption)}</figcaption>"
                     f"<img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'></figure>")
    return parts


def render_html(title: str, tables: list[Table], summary: str, figures: dict[str, bytes]) -> str:
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>", _area_cards(tables),
             f"<pre>{html.escape(summary)}</pre>"]
    parts.extend(_tables_and_figures_html(tables, figures))
    parts.append("</body></html>")
    return "\n".join(parts)
