"""Pieces every report shares, so a reader finds the same things in the same place: the verdict
line first, the privacy claim in the first screen, the ledger summarised per mechanism (raw
entries in a collapsed appendix), epsilon to 3 significant digits, axis labels with units from
the schema's column descriptions."""

from __future__ import annotations

import html
import json
import math
import re
from collections import OrderedDict

_MECHANISM_NAMES = {"gaussian": "Gaussian", "dp-sgd": "DP-SGD (Poisson-subsampled Gaussian)",
                    "zcdp": "zCDP (exponential mechanism)", "non-private": "NON-PRIVATE (no noise)"}

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:16px auto;max-width:1240px;
color:#1a202c;padding:0 16px;line-height:1.4}
h1{font-size:1.5em;margin:8px 0 6px}
h2{font-size:1.15em;margin-top:26px;color:#2d3748;border-bottom:1px solid #cbd5e0;padding-bottom:3px}
table{border-collapse:collapse;margin:6px 0 14px;font-size:13px}
th,td{border:1px solid #cbd5e0;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#edf2f7}
tr:nth-child(even) td{background:#f7fafc}
.light{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-weight:600;font-size:12px}
.banner{padding:8px 12px;border-radius:6px;font-weight:600;margin:6px 0}
.internal{background:#fff5f5;border:2px solid #c53030;color:#822727}
.release{background:#f0fff4;border:2px solid #2f855a;color:#22543d}
.verdict{font-size:1.15em;padding:10px 14px;border-radius:6px;margin:10px 0;border-left:8px solid}
.verdict.yes{background:#f0fff4;border-color:#2f855a}.verdict.no{background:#fff5f5;border-color:#c53030}
.claim td:first-child{font-weight:600;white-space:nowrap}
.cols{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start}
.cols>div{flex:1 1 460px;min-width:0}.cols table{width:100%}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:10px 0}
.card{border:1px solid #cbd5e0;border-radius:8px;padding:8px 14px;min-width:170px;max-width:290px}
.card b{display:block;margin-bottom:4px}
.card .big{font-size:1.5em;font-weight:700}
.card .sub{font-size:12px;color:#4a5568}
figure{margin:10px 0 22px}figcaption{font-size:13px;color:#4a5568;margin-bottom:4px}
img{max-width:100%;border:1px solid #e2e8f0}
details{margin:8px 0;border:1px solid #cbd5e0;border-radius:6px;padding:6px 10px}
summary{cursor:pointer;font-weight:600}
pre{background:#f7fafc;border:1px solid #e2e8f0;padding:10px;font-size:12px;overflow-x:auto}
.note{color:#4a5568;font-size:13px}
.flag{color:#c53030;font-weight:700}
"""

LIGHT_COLORS = {"GREEN": "#1a7f37", "AMBER": "#b7791f", "RED": "#c53030", "YES": "#1a7f37", "NO": "#c53030"}


def eps_text(value) -> str:
    """Epsilon (or any privacy number) to 3 significant digits; 'inf' stays 'inf'."""
    if value is None:
        return "-"
    if value == "inf" or (isinstance(value, float) and math.isinf(value)):
        return "inf"
    value = float(value)
    if value == 0:
        return "0"
    text = f"{value:#.3g}"
    return text[:-1] if text.endswith(".") else text


def light(text: str) -> str:
    color = LIGHT_COLORS.get(text.upper())
    if color is None:
        return html.escape(text)
    return f'<span class="light" style="background:{color}">{html.escape(text)}</span>'


def html_table(headers, rows, *, cls: str = "", raw_cells: bool = False) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers) if headers else ""
    cell = (lambda c: str(c)) if raw_cells else (lambda c: light(str(c)) if str(c).upper() in LIGHT_COLORS
                                                   else html.escape(str(c)))
    body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    klass = f" class='{cls}'" if cls else ""
    return f"<table{klass}>" + (f"<thead><tr>{head}</tr></thead>" if head else "") + f"<tbody>{body}</tbody></table>"


def md_table(headers, rows) -> list[str]:
    esc = lambda c: str(c).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    return ["| " + " | ".join(esc(h) for h in headers) + " |", "|" + "---|" * len(headers),
            *["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]]


# ---- verdict ------------------------------------------------------------------------------------
def verdict_sentence(*, fit: bool, epsilon, reasons: list[str]) -> str:
    because = "; ".join(reasons) if reasons else "no check failed"
    return f"Fit for release at epsilon={eps_text(epsilon)}: {'yes' if fit else 'no'}, because {because}."


def verdict_html(sentence: str, fit: bool) -> str:
    return f"<div class='verdict {'yes' if fit else 'no'}'>{html.escape(sentence)}</div>"


# ---- privacy claim ------------------------------------------------------------------------------
def privacy_claim_rows(ledger: dict | None, *, privacy_unit: str | None, public: str | None,
                       n_train=None, generator: str | None = None) -> list[list[str]]:
    ledger = ledger or {}
    rows = []
    if generator:
        rows.append(["generator", generator])
    eps = ledger.get("epsilon")
    target = ledger.get("target_epsilon")
    rows.append(["epsilon (composed over every ledger entry)",
                 eps_text(eps) + (f" (target {eps_text(target)})" if target is not None else "")])
    delta = ledger.get("delta")
    rows.append(["delta", "-" if delta is None else f"{float(delta):.3g}"])
    rows.append(["accountant", {"rdp": "RDP (Renyi DP, opacus)", "prv": "PRV (privacy random variables, opacus)"}
                 .get(str(ledger.get("accountant")), str(ledger.get("accountant")))])
    unit = {None: "one row (one row per patient)", "row": "one row (one row per patient)",
            "image": "one image (each image counted as one patient)"}
    rows.append(["privacy unit", unit.get(privacy_unit, privacy_unit if " " in str(privacy_unit) else
                                          f"all rows of one '{privacy_unit}' (one patient)")])
    if n_train is not None:
        rows.append(["training rows / images (public count)", str(n_train)])
    rows.append(["treated as public", public or "the schema (column kinds, bounds, category lists) and the "
                                                "number of training rows"])
    return rows


# ---- ledger -------------------------------------------------------------------------------------
def _group_epsilon(ledger: dict, entries: list[dict]) -> float | None:
    from dpsynth.privacy.ledger import Ledger

    try:
        sub = Ledger.from_dict({**ledger, "entries": entries})
        return sub.epsilon()
    except Exception:  # a malformed entry: the summary shows '-' and the appendix the raw entry
        return None


def ledger_summary_rows(ledger: dict | None) -> list[list[str]]:
    """One row per mechanism: entries, what they paid for, steps, epsilon of that group alone."""
    if not ledger or not ledger.get("entries"):
        return []
    groups: OrderedDict[str, list[dict]] = OrderedDict()
    for e in ledger["entries"]:
        groups.setdefault(e.get("mechanism", "?"), []).append(e)
    rows = []
    for mech, entries in groups.items():
        purposes = OrderedDict()
        for e in entries:  # "aim round 3: select a marginal" x 13 -> one item "aim round #: select a marginal (x13)"
            key = re.sub(r"\b\d+\b", "#", str(e.get("purpose", "?")))
            purposes[key] = purposes.get(key, 0) + 1
        what = "; ".join(p if k == 1 else f"{p} (x{k})" for p, k in list(purposes.items())[:3])
        if len(purposes) > 3:
            what += f"; +{sum(list(purposes.values())[3:])} more (appendix)"
        steps = sum(int(e.get("steps", 1)) for e in entries if "noise_multiplier" in e)
        sigmas = sorted({float(e["noise_multiplier"]) for e in entries if e.get("noise_multiplier") is not None})
        detail = (f"noise multiplier {sigmas[0]:.3g}" + (f"-{sigmas[-1]:.3g}" if len(sigmas) > 1 else "")
                  + f", {steps} step(s)") if sigmas else ""
        if mech == "zcdp":
            detail = f"rho total {sum(float(e.get('rho', 0)) for e in entries):.3g}"
        rows.append([_MECHANISM_NAMES.get(mech, mech), str(len(entries)), what, detail,
                     eps_text(_group_epsilon(ledger, entries))])
    rows.append(["all, composed", str(len(ledger["entries"])), "", "", eps_text(ledger.get("epsilon"))])
    return rows


LEDGER_HEADERS = ["mechanism", "entries", "paid for", "noise", "epsilon alone"]


def ledger_appendix_html(ledger: dict | None, *, extra: dict | None = None) -> str:
    """The raw entries, collapsed: a table of every entry and the raw JSON."""
    if not ledger:
        return ""
    rows = []
    for i, e in enumerate(ledger.get("entries", []), 1):
        rest = {k: v for k, v in e.items() if k not in ("mechanism", "purpose")}
        rows.append([str(i), e.get("mechanism", "?"), e.get("purpose", "?"),
                     ", ".join(f"{k}={_short(v)}" for k, v in rest.items())])
    more = " and " + ", ".join(t.lower() for t in extra) if extra else ""
    parts = [f"<details><summary>Every ledger entry ({len(rows)}){html.escape(more)}: click to open</summary>",
             html_table(["#", "mechanism", "purpose", "parameters"], rows),
             f"<pre>{html.escape(json.dumps(ledger, indent=2, default=str))}</pre>"]
    for title, payload in (extra or {}).items():
        parts.append(f"<p><b>{html.escape(title)}</b></p><pre>{html.escape(json.dumps(payload, indent=2, default=str))}</pre>")
    parts.append("</details>")
    return "".join(parts)


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    return str(value)


# ---- axis labels ----------------------------------------------------------------------------------
def axis_label(column: str, descriptions: dict | None) -> str:
    """'age: age in years at baseline' (the schema's description carries the unit)."""
    desc = (descriptions or {}).get(column) or ""
    if not desc:
        return column
    desc = desc if len(desc) <= 60 else desc[:57] + "..."
    return f"{column}: {desc}"


# ---- image grids ------------------------------------------------------------------------------------
def class_strips(unit_images, labels, classes, *, per_class: int = 10) -> list[tuple[str, int, bytes]]:
    """(class name, image count, PNG strip of up to ``per_class`` images) per class; images in
    [-1, 1], (N, C, H, W)."""
    import io

    import numpy as np
    from PIL import Image

    labels = np.asarray(labels)
    out = []
    for k, name in enumerate(classes):
        idx = np.flatnonzero(labels == k)[:per_class]
        if len(idx) == 0:
            out.append((str(name), 0, b""))
            continue
        tiles = np.rint((np.clip(unit_images[idx], -1, 1) + 1) * 127.5).astype(np.uint8).transpose(0, 2, 3, 1)
        strip = np.concatenate([np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=255) for t in tiles], axis=1)
        buf = io.BytesIO()
        Image.fromarray(strip[:, :, 0] if strip.shape[2] == 1 else strip).save(buf, format="PNG")
        out.append((str(name), int((labels == k).sum()), buf.getvalue()))
    return out


def class_grid_html(strips: list[tuple[str, int, bytes]], *, what: str, height: int = 84) -> str:
    """One table row per class: the class name (and count) as the row label, then its images."""
    import base64

    rows = "".join(
        f"<tr><th>{html.escape(name)}<div class='note'>{n} {html.escape(what)}</div></th><td>"
        + (f"<img alt='{html.escape(what)}: {html.escape(name)}' style='image-rendering:pixelated;height:{height}px;"
           f"border:0' src='data:image/png;base64,{base64.b64encode(png).decode()}'>" if png else "none")
        + "</td></tr>" for name, n, png in strips)
    return f"<table>{rows}</table>"
