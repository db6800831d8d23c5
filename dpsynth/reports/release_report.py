"""The release report: what may travel with a release bundle.

Computed only from DP outputs (the ledger, the model's synthetic samples) and public facts
(the schema, the privacy card, the bundle's file list); it reads no real row. It answers
"may this leave, and what does it claim?" first; how useful the data is compared with the real
data needs the real data and lives in the internal evaluation.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dpsynth.reports.readable import (CSS, LEDGER_HEADERS, axis_label, class_grid_html, class_strips, eps_text,
                                      html_table, ledger_appendix_html, ledger_summary_rows, md_table,
                                      privacy_claim_rows, verdict_html, verdict_sentence)

RELEASE_NOTICE = ("RELEASE REPORT: computed only from DP outputs (the model, its synthetic samples, the ledger) and "
                  "public facts (the schema); it holds no statistic of the real data")


def _verdict(loaded, epsilon: float) -> tuple[bool, str]:
    ledger = loaded.ledger
    target = ledger.target_epsilon
    entries = f"{len(ledger.entries)} ledger entr{'y' if len(ledger.entries) == 1 else 'ies'}"
    reasons = [f"the epsilon recomputed from its {entries} ({eps_text(epsilon)}) is within "
               f"the target {eps_text(target)}" if target is not None else
               f"the epsilon recomputed from its {entries} is {eps_text(epsilon)}",
               "weights, config and ledger match the manifest and each other",
               "every file is a DP output or a public fact (how useful the data are is judged by the internal "
               "evaluation, which stays inside: its verdict is itself a statistic of the real data)"]
    return True, verdict_sentence(fit=True, epsilon=epsilon, reasons=reasons)


def _png(fig) -> bytes:
    from dpsynth.reports.plots import _pyplot

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def table_summary(frame, schema) -> list[list[str]]:
    rows = []
    for col in schema.columns:
        series = frame[col.name]
        missing = f"{100 * series.isna().mean():.1f}%"
        if col.is_numeric:
            v = series.dropna().astype(float)
            stats = (f"median {v.median():.1f}, 10-90%: {v.quantile(0.1):.1f} to {v.quantile(0.9):.1f}"
                     if len(v) else "all missing")
            domain = f"{col.low:g} to {col.high:g}"
        else:
            shares = series.astype(str).value_counts(normalize=True)
            stats = ", ".join(f"{k}: {100 * v:.0f}%" for k, v in shares.head(4).items())
            domain = ", ".join(str(c) for c in col.categories[:6]) + (" ..." if len(col.categories) > 6 else "")
        rows.append([col.name, col.description or "-", col.kind, domain, stats, missing])
    return rows


def table_figure(frame, schema, *, per_row: int = 4) -> bytes:
    from dpsynth.reports.plots import SYNTH, _pyplot

    plt = _pyplot()
    cols = list(schema.columns)
    n_rows = math.ceil(len(cols) / per_row)
    fig, axes = plt.subplots(n_rows, per_row, figsize=(4.0 * per_row, 2.9 * n_rows), squeeze=False)
    descriptions = {c.name: c.description for c in cols}
    for ax, col in zip(axes.ravel(), cols):
        series = frame[col.name]
        if col.is_numeric:
            ax.hist(series.dropna().astype(float), bins=20, range=(float(col.low), float(col.high)), color=SYNTH,
                    weights=np.full(series.notna().sum(), 1 / max(1, len(series))))
        else:
            cats = [str(c) for c in col.categories]
            shares = series.astype(str).value_counts(normalize=True).reindex(cats, fill_value=0.0)
            ax.bar(range(len(cats)), shares.to_numpy(), color=SYNTH)
            ax.set_xticks(range(len(cats)), [c[:8] for c in cats], fontsize=7, rotation=45 if len(cats) > 4 else 0)
        label = axis_label(col.name, descriptions)
        ax.set_xlabel(label if len(label) <= 48 else label[:45] + "...", fontsize=8)
        ax.set_ylabel("share of synthetic rows", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(cols):]:
        ax.axis("off")
    fig.tight_layout()
    return _png(fig)


def image_rows(sample, schema, *, per_class: int = 10) -> list[tuple[str, int, bytes]]:
    """(class name, synthetic count, PNG of up to ``per_class`` synthetic images) per class."""
    return class_strips(sample.to_image_data().images, sample.labels, schema.classes, per_class=per_class)


def _files_rows(bundle: Path) -> list[list[str]]:
    from dpsynth.artifacts_manifest import MANIFEST
    from dpsynth.release_contents import DP_ARTIFACTS

    reports = {f"release_report.{ext}" for ext in ("json", "md", "html")}
    rows = []
    for path in sorted(p for p in bundle.rglob("*") if p.is_file()):
        rel = path.relative_to(bundle).as_posix()
        if rel in reports:
            continue
        what = DP_ARTIFACTS.get(rel) or ("synthetic data sampled from the model" if rel.startswith("synthetic/")
                                         else "-")
        rows.append([rel, f"{path.stat().st_size:,}", what])
    rows += [[name, "-", "this release report"] for name in sorted(reports)]
    rows.append([MANIFEST, "-", DP_ARTIFACTS[MANIFEST]])
    return rows


@dataclass
class SampleSummary:
    """The synthetic-data section of a release report, from the DP sample and the public schema."""

    unit: str  # "rows" | "images"
    privacy_unit: str  # the unit of the claim when the schema names none
    public: str | None  # what the release treats as public (None: the privacy card's list)
    headers: list[str]
    rows: list
    figure_html: str


def table_sample_summary(sample, schema) -> SampleSummary:
    png = table_figure(sample.frame, schema)
    figure = (f"<figure><figcaption>Every column of the synthetic sample (x: the schema's description and unit; "
              f"y: share of synthetic rows)</figcaption><img alt='synthetic marginals' "
              f"src='data:image/png;base64,{base64.b64encode(png).decode()}'></figure>")
    return SampleSummary(unit="rows", privacy_unit="row", public=None,
                         headers=["column", "description (unit)", "kind", "public domain", "synthetic distribution",
                                  "missing"],
                         rows=table_summary(sample.frame, schema), figure_html=figure)


def image_sample_summary(sample, schema) -> SampleSummary:
    strips = image_rows(sample, schema)
    return SampleSummary(unit="images", privacy_unit="image",
                         public=("the image schema (size, channels, intensity range, class list) and the number "
                                 "of training images"),
                         headers=["class", "synthetic images", "share"],
                         rows=[[name, str(n), f"{100 * n / max(1, len(sample)):.1f}%"] for name, n, _ in strips],
                         figure_html=("<h3>Synthetic images, one row per class</h3>"
                                      + class_grid_html(strips, what="synthetic")))


def write_release_report(bundle: str | Path, *, loaded, sample, summary: SampleSummary, epsilon: float, seed: int,
                         synthetic_rows: int) -> dict[str, Path]:
    bundle = Path(bundle)
    schema = loaded.schema
    fit, sentence = _verdict(loaded, epsilon)
    ledger = loaded.ledger.to_dict()
    card = json.loads((bundle / "privacy_card.json").read_text()) if (bundle / "privacy_card.json").is_file() else {}
    claim = privacy_claim_rows(ledger, privacy_unit=getattr(schema, "privacy_unit", None) or summary.privacy_unit,
                               public=summary.public if summary.public is not None else card.get("public_inputs"),
                               n_train=loaded.run.get("n_train"),
                               generator=loaded.generator.name)
    data_name = loaded.run.get("data") or "?"
    title = f"Release: {loaded.generator.name} trained on {Path(str(data_name)).name} at epsilon={eps_text(epsilon)}"
    ledger_rows = ledger_summary_rows(ledger)
    unit = summary.unit
    sample_note = (f"Summary of {len(sample)} synthetic {unit} sampled from the released model (seed {seed}); "
                   + (f"the first {synthetic_rows} {unit} are shipped in synthetic/" if synthetic_rows else
                      "none are shipped (sample them with `dpsynth generate --model BUNDLE`)"))
    summary_rows, summary_headers = summary.rows, summary.headers
    not_here = ("How close the synthetic data is to the real data (utility, fidelity, attacks, subgroups) is "
                "measured against real rows and is therefore only in the internal evaluation, which stays inside.")
    # ---- JSON ----
    payload = {"notice": RELEASE_NOTICE, "verdict": sentence, "fit_for_release": fit,
               "privacy_claim": dict((r[0], r[1]) for r in claim), "ledger": ledger,
               "synthetic_summary": {"note": sample_note, "headers": summary_headers, "rows": summary_rows}}
    paths = {"json": bundle / "release_report.json", "md": bundle / "release_report.md",
             "html": bundle / "release_report.html"}
    paths["json"].write_text(json.dumps(payload, indent=2, default=str))
    # ---- Markdown ----
    md = [f"**{RELEASE_NOTICE}.**", "", f"# {title}", "", f"**{sentence}**", "", "## Privacy claim", "",
          *md_table(["item", "value"], claim), "", "## Privacy ledger (per mechanism)", "",
          *md_table(LEDGER_HEADERS, ledger_rows), "", "## Synthetic data", "", sample_note + ".", "",
          *md_table(summary_headers, summary_rows), "", not_here, "", "## Files in this bundle", "",
          *md_table(["file", "bytes", "what it is"], _files_rows(bundle)), "",
          "## Appendix: raw ledger entries", "", "<details><summary>show</summary>", "", "```json",
          json.dumps(ledger, indent=2), "```", "", "</details>", ""]
    paths["md"].write_text("\n".join(md))
    # ---- HTML ----
    figure = summary.figure_html
    page = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
            f"<style>{CSS}</style></head><body>", f"<div class='banner release'>{html.escape(RELEASE_NOTICE)}.</div>",
            f"<h1>{html.escape(title)}</h1>", verdict_html(sentence, fit),
            "<div class='cols'><div><h2>Privacy claim</h2>", html_table(["item", "value"], claim, cls="claim"),
            "</div><div><h2>Privacy ledger, per mechanism</h2>", html_table(LEDGER_HEADERS, ledger_rows),
            "</div></div>", f"<h2>Synthetic data</h2><p class='note'>{html.escape(sample_note)}.</p>",
            html_table(summary_headers, summary_rows), figure, f"<p class='note'>{html.escape(not_here)}</p>",
            "<h2>Files in this bundle</h2>", html_table(["file", "bytes", "what it is"], _files_rows(bundle)),
            "<h2>Appendix</h2>", ledger_appendix_html(ledger, extra={"Privacy card": card}), "</body></html>"]
    paths["html"].write_text("\n".join(page))
    return paths
