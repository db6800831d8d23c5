"""Metrics for related tables and longitudinal sequences, on DataFrames.

- ``referential_integrity``: share of child rows whose foreign key is a primary key of the
  parent table (goal 1), and share of unique primary keys (goal 1);
- ``children_per_parent``: the distribution of the number of children per parent row
  (0..k, parents without children included), real vs synthetic, total variation distance;
- ``sequence_metrics``: a sequence table's length distribution (TVD) and its first-order
  transition matrices P(value | previous value, with START for the first encounter): the
  distance is the real-frequency-weighted mean over previous values of the TVD between the
  real and synthetic rows of the matrix (a missing synthetic row counts 1); and the KS
  distance of the gaps between consecutive encounters;
- ``column_marginals``: per declared column, TVD (categorical, e.g. ICD-9 chapters, with the
  per-category shares) or KS (numeric);
- ``key_overlap``: synthetic keys that equal a real key (goal 0: keys are fresh).

All functions take the real tables (training patients, bounded to the public k, derived
columns computed) and the synthetic tables as ``{table name: DataFrame}``, and the relational
schema for the keys and column kinds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from dpsynth.data.relational import START, RelationalSchema

ORDER = "_order"


def tvd(p: pd.Series, q: pd.Series) -> float:
    """Total variation distance between two distributions given as shares over labels."""
    labels = p.index.union(q.index)
    return float(0.5 * np.abs(p.reindex(labels, fill_value=0.0) - q.reindex(labels, fill_value=0.0)).sum())


def shares(values: pd.Series) -> pd.Series:
    counts = values.astype(object).where(values.notna(), "<missing>").value_counts()
    return counts / counts.sum() if counts.sum() else counts.astype(float)


def referential_integrity(tables: dict[str, pd.DataFrame], schema: RelationalSchema) -> dict:
    out = {}
    for t in schema.tables:
        frame = tables[t.name]
        entry = {}
        if t.primary_key is not None:
            keys = frame[t.primary_key].astype(str)
            entry["unique_primary_keys"] = float(1.0 - keys.duplicated().mean()) if len(keys) else 1.0
        if t.parent is not None:
            parent = schema[t.parent]
            known = set(tables[parent.name][parent.primary_key].astype(str))
            fk = frame[t.foreign_key].astype(str)
            entry["foreign_keys_resolved"] = float(fk.isin(known).mean()) if len(fk) else 1.0
        out[t.name] = entry
    values = [v for e in out.values() for v in e.values()]
    return {"value": float(min(values)) if values else 1.0, "goal": "max", "range": [0, 1], "tables": out}


def child_counts(tables: dict[str, pd.DataFrame], schema: RelationalSchema, child: str) -> pd.Series:
    """Number of children in ``child`` of every parent row (0 included)."""
    t = schema[child]
    parent = schema[t.parent]
    parents = tables[parent.name][parent.primary_key].astype(str)
    counts = tables[child][t.foreign_key].astype(str).value_counts()
    return parents.map(counts).fillna(0).astype(int).reset_index(drop=True)


def children_per_parent(real, synthetic, schema: RelationalSchema) -> dict:
    out = {}
    for t in schema.tables[1:]:
        r, s = child_counts(real, schema, t.name), child_counts(synthetic, schema, t.name)
        k = int(t.max_per_parent)
        rd = r.value_counts(normalize=True).reindex(range(k + 1), fill_value=0.0)
        sd = s.value_counts(normalize=True).reindex(range(k + 1), fill_value=0.0)
        out[t.name] = {"parent": t.parent, "k": k, "tvd": tvd(rd, sd), "mean_real": float(r.mean()),
                       "mean_synthetic": float(s.mean()), "real": [round(float(x), 4) for x in rd],
                       "synthetic": [round(float(x), 4) for x in sd]}
    values = [e["tvd"] for e in out.values()]
    return {"value": float(np.mean(values)) if values else 0.0, "goal": "min", "range": [0, 1], "tables": out}


def _ordered(frame: pd.DataFrame, fk: str, order: str | None) -> pd.DataFrame:
    if order is not None and order in frame:
        return frame.sort_values([fk, order], kind="stable")
    return frame.sort_values(fk, kind="stable")  # synthetic tables are written in encounter order


def transitions(frame: pd.DataFrame, fk: str, column: str, order: str | None) -> pd.DataFrame:
    """Row-normalised first-order transition matrix: rows previous value (START first), columns value."""
    ordered = _ordered(frame, fk, order)
    cur = ordered[column].astype(object).where(ordered[column].notna(), "<missing>")
    prev = cur.groupby(ordered[fk].astype(str).to_numpy(), sort=False).shift(1).fillna(START)
    table = pd.crosstab(prev.to_numpy(), cur.to_numpy())
    return table.div(table.sum(axis=1), axis=0)


def transition_distance(real: pd.DataFrame, synthetic: pd.DataFrame, real_weights: pd.Series) -> float:
    total = 0.0
    for state, weight in real_weights.items():
        if state in synthetic.index:
            total += weight * tvd(real.loc[state], synthetic.loc[state])
        else:
            total += weight
    return float(total)


def sequence_metrics(real, synthetic, schema: RelationalSchema) -> dict:
    out = {}
    for t in schema.tables:
        if t.sequence is None:
            continue
        r_len, s_len = child_counts(real, schema, t.name), child_counts(synthetic, schema, t.name)
        r_len, s_len = r_len[r_len > 0], s_len[s_len > 0]
        entry = {"parent": t.parent, "length_tvd": tvd(shares(r_len), shares(s_len)),
                 "length_real": {int(k): round(float(v), 4) for k, v in shares(r_len).sort_index().items()},
                 "length_synthetic": {int(k): round(float(v), 4) for k, v in shares(s_len).sort_index().items()},
                 "transitions": {}}
        r_frame, s_frame = real[t.name], synthetic[t.name]
        # synthetic encounters in the order of their offset when the output has one (else row order)
        s_order = t.sequence.offset if t.sequence.offset is not None and t.sequence.offset in s_frame else None
        for col in t.sequence.previous:
            rt = transitions(r_frame, t.foreign_key, col, ORDER)
            st = transitions(s_frame, t.foreign_key, col, s_order)
            ordered = _ordered(r_frame, t.foreign_key, ORDER)
            prev = ordered[col].groupby(ordered[t.foreign_key].astype(str).to_numpy(), sort=False).shift(1) \
                .astype(object).fillna(START)
            weights = prev.value_counts(normalize=True)
            entry["transitions"][col] = {
                "distance": transition_distance(rt, st, weights),
                "real": _matrix_dict(rt), "synthetic": _matrix_dict(st),
            }
        if t.sequence.gap is not None:
            rg = _ordered(r_frame, t.foreign_key, ORDER)
            sg = _ordered(s_frame, t.foreign_key, s_order)
            r_gaps = rg[t.sequence.gap][rg.groupby(rg[t.foreign_key].astype(str)).cumcount() > 0].dropna()
            s_gaps = sg[t.sequence.gap][sg.groupby(sg[t.foreign_key].astype(str)).cumcount() > 0].dropna()
            entry["gap_ks"] = float(ks_2samp(r_gaps, s_gaps).statistic) if len(r_gaps) and len(s_gaps) else None
            entry["gap_pairs"] = {"real": int(len(r_gaps)), "synthetic": int(len(s_gaps))}
        out[t.name] = entry
    lengths = [e["length_tvd"] for e in out.values()]
    trans = [x["distance"] for e in out.values() for x in e["transitions"].values()]
    return {"length_tvd": float(np.mean(lengths)) if lengths else None,
            "transition_distance": float(np.mean(trans)) if trans else None, "tables": out}


def _matrix_dict(matrix: pd.DataFrame) -> dict:
    return {str(i): {str(c): round(float(v), 4) for c, v in row.items() if v > 0} for i, row in matrix.iterrows()}


def column_marginals(real, synthetic, schema: RelationalSchema) -> dict:
    out = {}
    for t in schema.tables:
        derived = {d.name: d for d in t.derive}
        for col in t.columns:
            r, s = real[t.name][col.name], synthetic[t.name][col.name]
            key = f"{t.name}.{col.name}"
            if col.is_numeric:
                r_num, s_num = pd.to_numeric(r, errors="coerce").dropna(), pd.to_numeric(s, errors="coerce").dropna()
                stat = float(ks_2samp(r_num, s_num).statistic) if len(r_num) and len(s_num) else 1.0
                out[key] = {"kind": "numeric", "ks": stat}
            else:
                norm = lambda x: x.map(lambda v: str(v) if pd.notna(v) else v)  # noqa: E731  1 == '1'
                rs, ss = shares(norm(r)), shares(norm(s))
                entry = {"kind": "categorical", "tvd": tvd(rs, ss)}
                if col.name in derived and derived[col.name].op == "icd9_chapter":
                    entry["chapters"] = True
                    entry["real"] = {str(k): round(float(v), 4) for k, v in rs.items()}
                    entry["synthetic"] = {str(k): round(float(v), 4) for k, v in ss.items()}
                out[key] = entry
    return out


def key_overlap(real, synthetic, schema: RelationalSchema) -> int:
    """How many synthetic primary / foreign key values equal a real key of the same column."""
    total = 0
    for t in schema.tables:
        for key in (t.primary_key, t.foreign_key):
            if key is not None:
                total += int(synthetic[t.name][key].astype(str).isin(set(real[t.name][key].astype(str))).sum())
    return total


def evaluate_relational_tables(*, real: dict[str, pd.DataFrame], synthetic: dict[str, pd.DataFrame],
                               schema: RelationalSchema) -> dict:
    marg = column_marginals(real, synthetic, schema)
    chapters = {k: v for k, v in marg.items() if v.get("chapters")}
    return {
        "rows": {t.name: {"real": int(len(real[t.name])), "synthetic": int(len(synthetic[t.name]))}
                 for t in schema.tables},
        "referential_integrity": referential_integrity(synthetic, schema),
        "key_overlap_with_real": key_overlap(real, synthetic, schema),
        "children_per_parent": children_per_parent(real, synthetic, schema),
        "sequences": sequence_metrics(real, synthetic, schema),
        "code_chapters": {"mean_tvd": float(np.mean([v["tvd"] for v in chapters.values()])) if chapters else None,
                          "columns": chapters},
        "columns": {k: ({"tvd": v["tvd"]} if "tvd" in v else {"ks": v["ks"]}) for k, v in marg.items()},
    }


def relational_report_markdown(results: dict, *, title: str) -> str:
    """A short Markdown report (INTERNAL: computed against real rows)."""
    lines = ["INTERNAL EVALUATION: computed against real patient rows; it stays inside and is never released.", "",
             f"# Related tables: {title}", "", "| table | real rows | synthetic rows |", "|---|---|---|"]
    for name, r in results["rows"].items():
        lines.append(f"| {name} | {r['real']} | {r['synthetic']} |")
    ri = results["referential_integrity"]
    lines += ["", f"Referential integrity (min over tables of resolved foreign keys and unique primary keys):"
                  f" {ri['value']:.3f}; synthetic keys equal to a real key: {results['key_overlap_with_real']}", "",
              "## Children per parent (share of parents with 0..k children)", "",
              "| child table | parent | k | mean real | mean synthetic | TVD |", "|---|---|---|---|---|---|"]
    for name, c in results["children_per_parent"]["tables"].items():
        lines.append(f"| {name} | {c['parent']} | {c['k']} | {c['mean_real']:.2f} | {c['mean_synthetic']:.2f} |"
                     f" {c['tvd']:.3f} |")
    lines += ["", "## Sequences", ""]
    for name, s in results["sequences"]["tables"].items():
        lines.append(f"- {name} per {s['parent']}: length TVD {s['length_tvd']:.3f}"
                     + "".join(f"; transitions of {c}: distance {x['distance']:.3f}" for c, x in s["transitions"].items())
                     + (f"; gap KS {s['gap_ks']:.3f}" if s.get("gap_ks") is not None else ""))
    lines += ["", "## Code-chapter marginals (TVD)", ""]
    for name, c in results["code_chapters"]["columns"].items():
        lines.append(f"- {name}: TVD {c['tvd']:.3f}")
    lines += ["", "## Every column", "", "| column | TVD / KS |", "|---|---|"]
    for name, c in results["columns"].items():
        lines.append(f"| {name} | {c.get('tvd', c.get('ks')):.3f} ({'TVD' if 'tvd' in c else 'KS'}) |")
    return "\n".join(lines) + "\n"
