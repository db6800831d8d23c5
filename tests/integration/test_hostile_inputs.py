"""A corpus of hostile inputs for the CLI (issue 11, item 6).

Every case runs one ``dpsynth`` command on a tiny fixture (tens of rows, the ``independent``
generator) and asserts: the documented exit code (2 for a wrong input), exactly one output line,
naming the file / column / option at fault, no traceback, and an unchanged directory listing
(no partial output, no temporary or lock file left, no existing file touched). The signal cases
(SIGINT/SIGTERM mid-train and mid-generate, and a second writer while the first one trains) run
the CLI in subprocesses; everything else runs in process with click's CliRunner.

Set DPSYNTH_CORPUS_SUMMARY=path.json to write the tally (inputs / clean errors / tracebacks /
silent wrong behaviours / leftovers) measured by the run.
"""

from __future__ import annotations

import atexit
from contextlib import ExitStack
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from dpsynth import safe_io
from dpsynth.cli import LOSS_WARNING, main

REPO = Path(__file__).resolve().parents[2]

SCHEMA = {"name": "tiny", "target": "outcome", "columns": [
    {"name": "age", "kind": "integer", "low": 18, "high": 90},
    {"name": "weight", "kind": "continuous", "low": 30, "high": 200},
    {"name": "sex", "kind": "binary", "categories": [0, 1], "sensitive": True},
    {"name": "race", "kind": "categorical", "categories": ["white", "black", "asian", "other"], "sensitive": True},
    {"name": "outcome", "kind": "binary", "categories": [0, 1]},
]}
IMAGE_SCHEMA = {"modality": "image", "name": "tinyimg", "height": 8, "width": 8, "channels": 1, "low": 0,
                "high": 255, "label": "label", "classes": [0, 1], "privacy_unit": "image"}
HEADER = "age,weight,sex,race,outcome\n"

TALLY = {"inputs": 0, "clean_errors": 0, "tracebacks": 0, "silent_wrong_behaviours": 0, "leftovers": 0,
         "other_failures": 0}  # other: wrong exit code, more than one line, or a message not naming the fault



# a corrupt model file: the loader names the model folder or the file it could not read
CORRUPT_MODEL = r"m(/[\w.]+)?: (corrupt model files|unreadable|a ledger is a JSON object)"

def _write_tally() -> None:
    path = os.environ.get("DPSYNTH_CORPUS_SUMMARY")
    if path and TALLY["inputs"]:
        Path(path).write_text(json.dumps(TALLY, indent=2))


atexit.register(_write_tally)


def table(n: int, seed: int = 0) -> pd.DataFrame:
    """A made-up patient table (not real data): n rows of the SCHEMA's columns."""
    r = np.random.default_rng(seed)
    sex = r.integers(0, 2, n)
    return pd.DataFrame({"age": r.integers(18, 91, n), "weight": np.round(r.uniform(40, 150, n), 1), "sex": sex,
                         "race": r.choice(["white", "black", "asian", "other"], n),
                         "outcome": (r.random(n) < 0.3 + 0.3 * sex).astype(int)})


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


# ---- the shared workspace -----------------------------------------------------------------
@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    w = tmp_path_factory.mktemp("hostile")
    table(60).to_csv(w / "t.csv", index=False)
    (w / "s.yaml").write_text(yaml.safe_dump(SCHEMA, sort_keys=False))
    (w / "img.yaml").write_text(yaml.safe_dump(IMAGE_SCHEMA, sort_keys=False))
    result = invoke("train", "--data", w / "t.csv", "--schema", w / "s.yaml", "-g", "independent", "--out", w / "run")
    assert result.exit_code == 0, result.output
    table(20, seed=5).to_csv(w / "syn.csv", index=False)
    return w


def snapshot(*roots: Path) -> dict:
    """Every path under roots (hidden ones included) with its size and a content hash."""
    out = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                out[str(p)] = (p.stat().st_size, hashlib.sha1(p.read_bytes()).hexdigest())
            else:
                out[str(p)] = "dir"
    return out


def _tally(*, traceback: bool, silent: bool, leftover: bool, clean: bool) -> None:
    """Count one input in exactly one class: the first of traceback, silent success, leftover
    file, clean error (right exit code, one line naming the fault), other failure."""
    TALLY["inputs"] += 1
    key = ("tracebacks" if traceback else "silent_wrong_behaviours" if silent else "leftovers" if leftover
           else "clean_errors" if clean else "other_failures")
    TALLY[key] += 1


@dataclass
class Ctx:
    d: Path  # this case's own folder (outputs go here)
    w: Path  # the shared workspace (data, schema, a trained run)
    hold: list = field(default_factory=list)  # context managers held while the command runs

    # inputs
    def text(self, name: str, content: str | bytes) -> Path:
        p = self.d / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
        return p

    def csv(self, frame: pd.DataFrame, name: str = "in.csv") -> Path:
        frame.to_csv(self.d / name, index=False)
        return self.d / name

    def schema(self, mutate: Callable[[dict], None], name: str = "bad.yaml") -> Path:
        raw = json.loads(json.dumps(SCHEMA))
        mutate(raw)
        return self.text(name, yaml.safe_dump(raw, sort_keys=False))

    def col(self, name: str) -> dict:
        return next(c for c in SCHEMA["columns"] if c["name"] == name)

    def model(self, mutate: Callable[[Path], None] | None = None) -> Path:
        m = self.d / "m"
        shutil.copytree(self.w / "run", m)
        if mutate is not None:
            mutate(m)
            if (m / "manifest.json").is_file():
                # a model that is corrupt but consistent with its manifest (e.g. a faulty writer): the
                # loader's own checks must still give one line; tampering is test_manifest.py's job
                from dpsynth.artifacts_manifest import write_manifest

                write_manifest(m)
        return m

    def npz(self, name: str = "x.npz", **arrays) -> Path:
        p = self.d / name
        with open(p, "wb") as f:
            np.savez(f, **arrays)
        return p

    # commands
    def train(self, data=None, schema=None, *extra, out=None):
        return ["train", "--data", data or self.w / "t.csv", "--schema", schema or self.w / "s.yaml",
                "-g", "independent", "--out", out or self.d / "r", *extra]

    def train_image(self, data, *extra):
        return ["train", "--data", data, "--schema", self.w / "img.yaml", "-g", "dp-gan-image",
                "--out", self.d / "r", *extra]

    def gen(self, *extra, model=None, out=None):
        return ["generate", "--model", model or self.w / "run", "-n", 20, "-o", out or self.d / "g.csv", *extra]

    def evaluate(self, synthetic, *extra):
        return ["evaluate", "--run", self.w / "run", "--synthetic", synthetic, "--report", self.d / "rep", *extra]


def _edit_json(path: Path, mutate) -> None:
    raw = json.loads(path.read_text())
    mutate(raw)
    path.write_text(json.dumps(raw))


def _del(key):
    return lambda raw: raw.pop(key)


def _set(path: str, value):
    def mutate(raw):
        *head, last = path.split(".")
        node = raw
        for k in head:
            node = node[int(k)] if k.isdigit() else node[k]
        node[int(last) if last.isdigit() else last] = value
    return mutate


def _csv_with(column: str, value, row: int = 3) -> Callable[[Ctx], Path]:
    def make(c: Ctx) -> Path:
        frame = table(40).astype(object)
        frame.loc[row, column] = value
        return c.csv(frame)
    return make


def _held_lock(target: Callable[[Ctx], Path]):
    def add(c: Ctx) -> None:
        c.hold.append(safe_io.output_lock(target(c)))
    return add


# ---- the corpus: (id, case(ctx) -> argv, pattern the single line must match, exit code) ----------
C = []


def case(cid: str, build: Callable[[Ctx], list], pattern: str, code: int = 2) -> None:
    C.append(pytest.param(build, pattern, code, id=cid))


# data files (train)
case("csv-empty-file", lambda c: c.train(c.text("e.csv", "")), r"e\.csv: .*(no columns|no rows|cannot read)")
case("csv-header-only", lambda c: c.train(c.text("h.csv", HEADER)), r"h\.csv: the table has no rows")
case("csv-one-row", lambda c: c.train(c.csv(table(1))), r"in\.csv: only \d training row\(s\) after splitting 1 rows")
case("csv-semicolon-delimiter", lambda c: c.train(c.text("semi.csv", table(30).to_csv(index=False, sep=";"))),
     r"semi\.csv: column\(s\) \['age', 'weight', 'sex', 'race', 'outcome'\] declared .* are missing")
case("csv-tab-delimiter", lambda c: c.train(c.text("tab.csv", table(30).to_csv(index=False, sep="\t"))),
     r"tab\.csv: column\(s\) .* are missing")
case("csv-non-utf8", lambda c: c.train(c.text("latin.csv", (HEADER + "40,70.0,1,caf\xe9,0\n").encode("latin-1"))),
     r"latin\.csv: cannot read table .*utf-8")
case("csv-utf16", lambda c: c.train(c.text("u16.csv", table(20).to_csv(index=False).encode("utf-16"))),
     r"u16\.csv: ")
case("csv-binary-garbage", lambda c: c.train(c.text("bin.csv", b"\x00\xff\xfe garbage \"unclosed\n1,2\n")),
     r"bin\.csv")
case("csv-ragged-rows", lambda c: c.train(c.text("rag.csv", HEADER + "40,70.0,1,white,0\n41,71,0,black,1,9,9\n")),
     r"rag\.csv: cannot read table")
case("csv-whitespace-only", lambda c: c.train(c.text("ws.csv", "\n\n   \n")), r"ws\.csv: ")
case("csv-inf-value", lambda c: c.train(_csv_with("weight", "inf")(c)), r"in\.csv: column 'weight' has 1 infinite value")
case("csv-minus-inf-value", lambda c: c.train(_csv_with("age", "-inf")(c)), r"in\.csv: column 'age' has 1 infinite value")
case("csv-nan-text", lambda c: c.train(_csv_with("weight", "NaN")(c)), r"in\.csv: column 'weight' has 1 missing value")
case("csv-empty-cell", lambda c: c.train(_csv_with("age", "")(c)), r"in\.csv: column 'age' has 1 missing value")
case("csv-1e308", lambda c: c.train(_csv_with("weight", "1e308")(c)), r"in\.csv: column 'weight' .*outside the declared domain")
case("csv-1e309-overflow", lambda c: c.train(_csv_with("weight", "1e309")(c)), r"in\.csv: column 'weight' (.*outside|is continuous but holds non-numeric value '1e309')")
case("csv-minus-1e308", lambda c: c.train(_csv_with("age", "-1e308")(c)), r"in\.csv: column 'age' ")
case("csv-text-in-numeric", lambda c: c.train(_csv_with("age", "forty")(c)), r"in\.csv: column 'age' is integer but holds non-numeric")
case("csv-fraction-in-integer", lambda c: c.train(_csv_with("age", 40.5)(c)), r"in\.csv: column 'age' is integer but holds fractional")
case("csv-unknown-category", lambda c: c.train(_csv_with("race", "martian")(c)), r"in\.csv: column 'race' has unknown category 'martian'")
case("csv-binary-out-of-set", lambda c: c.train(_csv_with("sex", 2)(c)), r"in\.csv: column 'sex' has unknown category")
case("csv-duplicate-columns", lambda c: c.train(c.text("dup.csv", "age,age,weight,sex,race,outcome\n" +
                                                        "40,41,70.0,1,white,0\n" * 30)), r"dup\.csv: column\(s\) \['age\.1'\]")
case("csv-extra-column", lambda c: c.train(c.csv(table(30).assign(ssn=1))), r"in\.csv: column\(s\) \['ssn'\] are not in schema")
case("csv-missing-column", lambda c: c.train(c.csv(table(30).drop(columns="race"))), r"in\.csv: column\(s\) \['race'\] declared")
case("csv-10k-columns", lambda c: c.train(c.text("wide.csv", HEADER.strip() + "".join(f",c{i}" for i in range(10_000)) + "\n"
                                                   + ("40,70.0,1,white,0" + ",0" * 10_000 + "\n") * 5)),
     r"wide\.csv: column\(s\) \['c0', .* and 99\d\d more are not in schema")
case("parquet-garbage", lambda c: c.train(c.text("x.parquet", b"PAR1 not really")), r"x\.parquet: cannot read table")
case("unsupported-suffix", lambda c: c.train(c.text("x.xlsx", "a,b\n")), r"x\.xlsx")
case("data-missing-file", lambda c: c.train(c.d / "nope.csv"), r"data file not found: .*nope\.csv")
case("data-dir-for-table-generator", lambda c: c.train(c.d), r"data path is not a file: .*case")

# schema files (train)
case("schema-missing-file", lambda c: c.train(schema=c.d / "nope.yaml"), r"schema file not found: .*nope\.yaml")
case("schema-invalid-yaml", lambda c: c.train(schema=c.text("b.yaml", "columns: [\n  - {name: age")), r"b\.yaml is not valid YAML")
case("schema-empty-file", lambda c: c.train(schema=c.text("b.yaml", "")), r"b\.yaml: expected a mapping")
case("schema-top-level-list", lambda c: c.train(schema=c.text("b.yaml", "- a\n- b\n")), r"b\.yaml: expected a mapping")
case("schema-no-columns", lambda c: c.train(schema=c.schema(_set("columns", []))), r"bad\.yaml: 'columns' must be a non-empty list")
case("schema-unknown-kind", lambda c: c.train(schema=c.schema(_set("columns.0.kind", "date"))), r"column 'age': kind 'date'")
case("schema-categorical-no-categories", lambda c: c.train(schema=c.schema(lambda r: r["columns"][3].pop("categories"))),
     r"column 'race': categorical column needs")
case("schema-binary-three-categories", lambda c: c.train(schema=c.schema(_set("columns.2.categories", [0, 1, 2]))),
     r"column 'sex': a binary column has exactly 2")
case("schema-duplicate-categories", lambda c: c.train(schema=c.schema(_set("columns.3.categories", ["a", "a"]))),
     r"column 'race': duplicate categories")
case("schema-duplicate-columns", lambda c: c.train(schema=c.schema(lambda r: r["columns"].append(dict(r["columns"][0])))),
     r"duplicate column\(s\) \['age'\]")
case("schema-target-not-a-column", lambda c: c.train(schema=c.schema(_set("target", "death"))), r"target 'death' is not a declared column")
case("schema-unknown-column-key", lambda c: c.train(schema=c.schema(_set("columns.0.units", "years"))), r"column 'age': unknown key")
case("schema-bound-is-text", lambda c: c.train(schema=c.schema(_set("columns.0.low", "zero"))), r"column 'age': 'low' must be a number")
case("schema-bound-inf", lambda c: c.train(schema=c.text("b.yaml", yaml.safe_dump(SCHEMA).replace("high: 200", "high: .inf"))),
     r"column 'weight': bounds must be finite")
case("schema-bound-minus-inf", lambda c: c.train(schema=c.text("b.yaml", yaml.safe_dump(SCHEMA).replace("low: 30", "low: -.inf"))),
     r"column 'weight': bounds must be finite")
case("schema-bound-nan", lambda c: c.train(schema=c.text("b.yaml", yaml.safe_dump(SCHEMA).replace("low: 18", "low: .nan"))),
     r"column 'age': ")
case("schema-bounds-lower-above-upper", lambda c: c.train(schema=c.schema(_set("columns.0.low", 100))),
     r"column 'age': low \(100\) must be below high \(90\)")
case("schema-bounds-equal", lambda c: c.train(schema=c.schema(_set("columns.1.low", 200))), r"column 'weight': low \(200\) must be below")
case("schema-bounds-missing", lambda c: c.train(schema=c.schema(lambda r: r["columns"][0].pop("high"))),
     r"column 'age': integer column needs public 'low' and 'high'")
case("schema-ghost-column", lambda c: c.train(schema=c.schema(lambda r: r["columns"].append(
    {"name": "ghost", "kind": "binary", "categories": [0, 1]}))), r"column\(s\) \['ghost'\] declared")
case("schema-column-without-kind", lambda c: c.train(schema=c.schema(lambda r: r["columns"][0].pop("kind"))),
     r"bad\.yaml: column #0 needs at least 'name' and 'kind'")

# privacy and run options (train)
case("epsilon-zero", lambda c: c.train(None, None, "--epsilon", 0), r"epsilon must be > 0, got 0")
case("epsilon-negative", lambda c: c.train(None, None, "--epsilon", -1), r"epsilon must be > 0, got -1")
case("epsilon-nan", lambda c: c.train(None, None, "--epsilon", "nan"), r"epsilon must be > 0, got nan")
case("epsilon-inf", lambda c: c.train(None, None, "--epsilon", "inf"), r"epsilon=inf is the non-private reference")
case("epsilon-text", lambda c: c.train(None, None, "--epsilon", "one"), r"'--epsilon': 'one' is not a valid float")
case("delta-above-one-over-n", lambda c: c.train(None, None, "--delta", 0.05), r"delta=0\.05 is >= 1/n")
case("delta-one", lambda c: c.train(None, None, "--delta", 1), r"delta must be in \(0, 1\), got 1")
case("delta-zero", lambda c: c.train(None, None, "--delta", 0), r"delta must be in \(0, 1\), got 0")
case("delta-negative", lambda c: c.train(None, None, "--delta", -1e-5), r"delta must be in \(0, 1\)")
case("delta-nan", lambda c: c.train(None, None, "--delta", "nan"), r"delta must be in \(0, 1\), got nan")
case("delta-inf", lambda c: c.train(None, None, "--delta", "inf"), r"delta must be in \(0, 1\), got inf")
case("accountant-unknown", lambda c: c.train(None, None, "--accountant", "moments"), r"'--accountant': 'moments' is not one of")
case("train-seed-negative", lambda c: c.train(None, None, "--seed", -1), r"'--seed': -1 is not in the range x>=0")
case("train-seed-text", lambda c: c.train(None, None, "--seed", "abc"), r"'--seed': 'abc' is not a valid integer")
case("threads-zero", lambda c: c.train(None, None, "--threads", 0), r"'--threads': 0 is not in the range")
case("threads-huge", lambda c: c.train(None, None, "--threads", 10**9), r"'--threads': 1000000000 is not in the range")
case("generator-unknown", lambda c: c.train(None, None, "-g", "nope"), r"nope")
case("image-generator-on-table", lambda c: c.train(None, None, "-g", "dp-gan-image"), r"generator 'dp-gan-image' is for images")
case("config-missing-file", lambda c: c.train(None, None, "--config", c.d / "nope.yaml"), r"config file not found: .*nope\.yaml")
case("config-invalid-yaml", lambda c: c.train(None, None, "--config", c.text("c.yaml", "generator: [")), r"c\.yaml: not valid YAML")
case("config-top-level-list", lambda c: c.train(None, None, "--config", c.text("c.yaml", "- 1\n")), r"c\.yaml: expected a mapping")
case("config-unknown-key", lambda c: c.train(None, None, "--config", c.text("c.yaml", "generator: independent\nepochs: 3\n")),
     r"c\.yaml: unknown key\(s\) \['epochs'\]")
case("config-unknown-param", lambda c: c.train(None, None, "--config", c.text("c.yaml", "generator: independent\nparams: {binz: 3}\n")),
     r"unknown parameter\(s\) \['binz'\]")
case("config-seed-negative", lambda c: c.train(None, None, "--config", c.text("c.yaml", "generator: independent\nseed: -1\n")),
     r"c\.yaml: 'seed' must be an integer >= 0")
case("config-split-seed-negative", lambda c: c.train(None, None, "--config", c.text("c.yaml", "generator: independent\nsplit: {seed: -3}\n")),
     r"c\.yaml: 'split\.seed' must be an integer >= 0")
case("config-epsilon-text", lambda c: c.train(None, None, "--config", c.text("c.yaml", "generator: independent\nprivacy: {epsilon: one}\n")),
     r"epsilon must be > 0, got one")
case("config-split-fractions", lambda c: c.train(None, None, "--config", c.text("c.yaml", "generator: independent\nsplit: {holdout: 0.7, test: 0.5}\n")),
     r"split fractions holdout=0\.7, test=0\.5")

# outputs (train)
case("train-out-exists", lambda c: c.train(out=c.model()), r"m: run directory exists and is not empty \(pass --overwrite")
case("train-out-unrelated-folder-overwrite", lambda c: (c.text("keep.txt", "precious"), c.train(None, None, "--overwrite", out=c.d))[1],
     r"exists and is not a dpsynth run directory .*refusing to replace it")
case("train-out-is-a-file", lambda c: c.train(out=c.text("f.txt", "x")), r"'--out'.*f\.txt' is a file")
case("train-out-under-a-file", lambda c: c.train(out=c.text("f.txt", "x") / "run"), r"run: the output lies under .*f\.txt, which is not a directory")
case("train-second-writer-locked", lambda c: (_held_lock(lambda c: c.d / "r")(c), c.train())[1],
     r"r: another dpsynth process is writing it")

# generate
case("rows-zero", lambda c: ["generate", "--model", c.w / "run", "-n", 0, "-o", c.d / "g.csv"], r"-n must be > 0, got 0")
case("rows-negative", lambda c: ["generate", "--model", c.w / "run", "-n", -5, "-o", c.d / "g.csv"], r"-n must be > 0, got -5")
case("rows-text", lambda c: ["generate", "--model", c.w / "run", "-n", "many", "-o", c.d / "g.csv"], r"'many' is not a valid integer")
case("rows-above-max-rows", lambda c: ["generate", "--model", c.w / "run", "-n", 10**12, "-o", c.d / "g.csv"],
     r"-n 1000000000000 is above --max-rows 10000000")
case("rows-beyond-free-disk", lambda c: ["generate", "--model", c.w / "run", "-n", 10**12, "--max-rows", 10**13, "-o", c.d / "g.csv"],
     r"g\.csv: 1000000000000 rows need about [\d.]+ TB but .* has only [\d.]+ [GTM]B free")
case("generate-seed-negative", lambda c: c.gen("--seed", -1), r"'--seed': -1 is not in the range x>=0")
case("generate-output-exists", lambda c: c.gen(out=c.text("g.csv", "keep me\n")), r"g\.csv: output exists \(pass --overwrite")
case("generate-output-is-a-directory", lambda c: c.gen(out=c.d), r"('--output'.*case' is a directory|case: output must end in)")
case("generate-output-suffix", lambda c: c.gen(out=c.d / "g.txt"), r"g\.txt: output must end in \.csv or \.parquet")
case("generate-output-under-a-file", lambda c: c.gen(out=c.text("f.txt", "x") / "g.csv"), r"g\.csv: the output lies under .*f\.txt, which is not a directory")
case("generate-second-writer-locked", lambda c: (_held_lock(lambda c: c.d / "g.csv")(c), c.gen())[1],
     r"g\.csv: another dpsynth process is writing it")
case("model-missing", lambda c: c.gen(model=c.d / "nope"), r"model directory not found: .*nope")
case("model-is-a-file", lambda c: c.gen(model=c.text("m.txt", "x")), r"model directory not found: .*m\.txt")
case("model-missing-weights", lambda c: c.gen(model=c.model(lambda m: (m / "weights.safetensors").unlink())),
     r"m is not a dpsynth model directory \(missing weights\.safetensors\)")
case("model-missing-ledger", lambda c: c.gen(model=c.model(lambda m: (m / "ledger.json").unlink())), r"missing ledger\.json")
case("model-missing-schema", lambda c: c.gen(model=c.model(lambda m: (m / "schema.yaml").unlink())), r"missing schema\.yaml")
case("model-missing-generator-json", lambda c: c.gen(model=c.model(lambda m: (m / "generator.json").unlink())), r"missing generator\.json")
case("weights-truncated", lambda c: c.gen(model=c.model(lambda m: (m / "weights.safetensors").write_bytes(
    (m / "weights.safetensors").read_bytes()[:-20]))), CORRUPT_MODEL)
case("weights-header-only", lambda c: c.gen(model=c.model(lambda m: (m / "weights.safetensors").write_bytes(
    (m / "weights.safetensors").read_bytes()[:50]))), CORRUPT_MODEL)
case("weights-garbage", lambda c: c.gen(model=c.model(lambda m: (m / "weights.safetensors").write_bytes(b"\x08" + b"\x00" * 7 + b"{}"))),
     CORRUPT_MODEL)
case("weights-empty", lambda c: c.gen(model=c.model(lambda m: (m / "weights.safetensors").write_bytes(b""))), CORRUPT_MODEL)
case("weights-missing-tensor", lambda c: c.gen(model=c.model(lambda m: save_file(
    dict(list(load_file(str(m / "weights.safetensors")).items())[1:]), str(m / "weights.safetensors")))),
     r"weights\.safetensors: .*generator 'independent'")
case("weights-wrong-shape", lambda c: c.gen(model=c.model(lambda m: save_file(
    {k: v[..., :1].contiguous() for k, v in load_file(str(m / "weights.safetensors")).items()}, str(m / "weights.safetensors")))),
     r"weights\.safetensors: .*generator 'independent'")
case("generator-json-without-name", lambda c: c.gen(model=c.model(lambda m: _edit_json(m / "generator.json", _del("name")))),
     r"generator\.json: needs 'name'")
case("generator-json-garbage", lambda c: c.gen(model=c.model(lambda m: (m / "generator.json").write_text("{nope"))), CORRUPT_MODEL)
case("generator-json-unknown-name", lambda c: c.gen(model=c.model(lambda m: _edit_json(m / "generator.json", _set("name", "gpt")))),
     r"gpt")
case("generator-json-params-list", lambda c: c.gen(model=c.model(lambda m: _edit_json(m / "generator.json", _set("params", [1])))),
     r"generator\.json: needs 'name' .* and 'params'")
case("generator-json-unknown-param", lambda c: c.gen(model=c.model(lambda m: _edit_json(m / "generator.json", _set("params", {"binz": 3})))),
     r"unknown parameter\(s\) \['binz'\]")
case("ledger-garbage", lambda c: c.gen(model=c.model(lambda m: (m / "ledger.json").write_text("[]"))), CORRUPT_MODEL)
case("ledger-not-json", lambda c: c.gen(model=c.model(lambda m: (m / "ledger.json").write_text("\x00\x01"))), CORRUPT_MODEL)
case("model-schema-garbage", lambda c: c.gen(model=c.model(lambda m: (m / "schema.yaml").write_text("columns: [\n"))),
     r"schema\.yaml is not valid YAML")
case("model-config-garbage", lambda c: c.gen(model=c.model(lambda m: (m / "config.yaml").write_text("a: [\n"))),
     r"m: corrupt config\.yaml or run\.json")
case("condition-malformed", lambda c: c.gen("--condition", "race"), r"condition 'race' must look like column=value")
case("condition-unknown-column", lambda c: c.gen("--condition", "zodiac=leo"), r"zodiac")
case("condition-unknown-category", lambda c: c.gen("--condition", "race=martian"), r"martian")
case("balance-unknown-column", lambda c: c.gen("--balance", "zodiac"), r"zodiac")
case("balance-and-balance-file", lambda c: c.gen("--balance", "race", "--balance-file", c.text("b.yaml", "cells: []\n")),
     r"give either --balance or --balance-file, not both")
case("balance-file-missing", lambda c: c.gen("--balance-file", c.d / "nope.yaml"), r"nope\.yaml")
case("model-and-data", lambda c: c.gen("--data", c.w / "t.csv"), r"give exactly one of --model RUN_DIR or --data")
case("one-shot-unrelated-model-folder", lambda c: (c.text("g_model/notes.txt", "mine") if (c.d / "g_model").mkdir() is None else None,
                                                   ["generate", "--data", c.w / "t.csv", "--schema", c.w / "s.yaml", "-g",
                                                    "independent", "-n", 20, "-o", c.d / "g.csv", "--no-evaluate"])[1],
     r"g_model: run directory exists and is not empty")
case("one-shot-unrelated-model-folder-overwrite",
     lambda c: (c.text("g_model/notes.txt", "mine") if (c.d / "g_model").mkdir() is None else None,
                ["generate", "--data", c.w / "t.csv", "--schema", c.w / "s.yaml", "-g", "independent", "-n", 20,
                 "-o", c.d / "g.csv", "--no-evaluate", "--overwrite"])[1],
     r"g_model: exists and is not a dpsynth run directory")
case("one-shot-bad-condition-removes-its-model",
     lambda c: ["generate", "--data", c.w / "t.csv", "--schema", c.w / "s.yaml", "-g", "independent", "-n", 20,
                "-o", c.d / "g.csv", "--no-evaluate", "--condition", "zodiac=leo"], r"zodiac")
case("format-png-with-suffix", lambda c: c.gen("--format", "png"), r"g\.csv: --format png writes a folder")
case("format-npz-on-csv", lambda c: c.gen("--format", "npz"), r"g\.csv: --format npz needs an output ending in \.npz")

# evaluate
case("evaluate-one-row-synthetic", lambda c: c.evaluate(c.csv(table(1), "one.csv")), r"one\.csv: 1 row\(s\); the full evaluation needs at least 10")
case("evaluate-five-row-synthetic", lambda c: c.evaluate(c.csv(table(5), "five.csv")), r"five\.csv: 5 row\(s\)")
case("evaluate-synthetic-missing", lambda c: c.evaluate(c.d / "nope.csv"), r"data file not found: .*nope\.csv")
case("evaluate-synthetic-header-only", lambda c: c.evaluate(c.text("h.csv", HEADER)), r"h\.csv: the table has no rows")
case("evaluate-synthetic-wrong-columns", lambda c: c.evaluate(c.csv(table(20).rename(columns={"race": "ethnicity"}))),
     r"in\.csv: column\(s\) \['race'\] declared .* are missing")
case("evaluate-synthetic-out-of-domain", lambda c: c.evaluate(_csv_with("age", 150)(c)), r"in\.csv: column 'age' has 1 value\(s\) outside")
case("evaluate-quick-without-synthetic", lambda c: ["evaluate", "--run", c.w / "run", "--quick"], r"--quick needs --synthetic")
case("evaluate-run-missing", lambda c: ["evaluate", "--run", c.d / "nope", "--synthetic", c.w / "syn.csv"], r"model directory not found")
case("evaluate-target-unknown", lambda c: ["evaluate", "--run", c.w / "run", "--synthetic", c.w / "syn.csv", "--quick",
                                           "--target", "death"], r"target 'death' is not a column")
case("evaluate-thresholds-missing", lambda c: c.evaluate(c.w / "syn.csv", "--thresholds", c.d / "nope.yaml"), r"nope\.yaml")
case("evaluate-seed-negative", lambda c: c.evaluate(c.w / "syn.csv", "--seed", -1), r"'--seed': -1 is not in the range")
case("evaluate-nothing", lambda c: ["evaluate"], r"evaluate needs --synthetic")
case("evaluate-explicit-without-schema", lambda c: ["evaluate", "--train", c.w / "t.csv", "--holdout", c.w / "t.csv",
                                                    "--test", c.w / "t.csv", "--synthetic", c.w / "syn.csv"],
     r"evaluating explicit split files needs --schema")

# images (train)
case("npz-empty-file", lambda c: c.train_image(c.text("x.npz", b"")), r"x\.npz: not a readable \.npz archive")
case("npz-not-a-zip", lambda c: c.train_image(c.text("x.npz", "hello")), r"x\.npz: not a readable \.npz archive")
case("npz-missing-keys", lambda c: c.train_image(c.npz(images=np.zeros((4, 8, 8), np.uint8))), r"x\.npz: missing key\(s\)")
case("npz-mis-shaped-images", lambda c: c.train_image(c.npz(train_images=np.zeros(64, np.uint8), train_labels=np.zeros(64, np.uint8))),
     r"x\.npz: images must be \(N,H,W\)")
case("npz-wrong-size", lambda c: c.train_image(c.npz(train_images=np.zeros((4, 28, 28), np.uint8), train_labels=np.zeros(4, np.uint8))),
     r"x\.npz: images are 28x28 .* declares 8x8")
case("npz-pickled-object-array", lambda c: c.train_image(c.npz(train_images=np.array([{"a": 1}] * 4, dtype=object),
                                                                train_labels=np.zeros(4, np.uint8))),
     r"x\.npz: not a readable \.npz archive .*pickle")
case("npz-nan-pixels", lambda c: c.train_image(c.npz(train_images=np.full((4, 8, 8), np.nan), train_labels=np.zeros(4, np.uint8))),
     r"x\.npz: images hold NaN")
case("npz-pixels-out-of-range", lambda c: c.train_image(c.npz(train_images=np.full((4, 8, 8), 300, np.uint16),
                                                               train_labels=np.zeros(4, np.uint8))), r"x\.npz: 256 pixel value\(s\) outside")
case("npz-labels-out-of-range", lambda c: c.train_image(c.npz(train_images=np.zeros((4, 8, 8), np.uint8), train_labels=np.full(4, 7))),
     r"x\.npz: labels must be class indices 0\.\.1")
case("npz-labels-length", lambda c: c.train_image(c.npz(train_images=np.zeros((4, 8, 8), np.uint8), train_labels=np.zeros(3, np.uint8))),
     r"x\.npz: labels have shape \(3,\), expected \(4,\)")
case("npz-zero-images", lambda c: c.train_image(c.npz(train_images=np.zeros((0, 8, 8), np.uint8), train_labels=np.zeros(0, np.uint8))),
     r"x\.npz: 'train_images' holds no images")

# audit / datasets
case("audit-run-missing", lambda c: ["audit", "--run", c.d / "nope"], r"model directory not found")
case("audit-out-exists", lambda c: ["audit", "--run", c.w / "run", "--out", c.text("a.json", "{}")],
     r"a\.json: output exists \(pass --overwrite")
case("audit-out-is-a-directory", lambda c: ["audit", "--run", c.w / "run", "--out", c.d], r"'--out'.*case' is a directory")
case("evaluate-report-exists", lambda c: (c.text("rep/report.json", "{}") if (c.d / "rep").mkdir() is None else None,
                                          c.evaluate(c.w / "syn.csv"))[1], r"rep: report folder exists and is not empty")
case("evaluate-report-unrelated-folder-overwrite",
     lambda c: (c.text("rep/mine.txt", "x") if (c.d / "rep").mkdir() is None else None,
                c.evaluate(c.w / "syn.csv", "--overwrite"))[1], r"rep: exists and is not a dpsynth report folder")
case("evaluate-report-locked", lambda c: (_held_lock(lambda c: c.d / "rep")(c), c.evaluate(c.w / "syn.csv"))[1],
     r"rep: another dpsynth process is writing it")
case("sweep-config-missing", lambda c: ["sweep", "--config", c.d / "nope.yaml"], r"nope\.yaml")
case("sweep-out-locked", lambda c: (_held_lock(lambda c: c.d / "sw")(c), ["sweep", "--config", REPO / "configs" / "sweep_tiny.yaml",
                                                                          "--out", c.d / "sw"])[1],
     r"sw: another dpsynth process is writing it")
case("unknown-command", lambda c: ["trian"], r"No such command 'trian'")
case("unknown-top-level-option", lambda c: ["--bogus", "train"], r"No such option '--bogus'")
case("unknown-command-option", lambda c: c.gen("--rowz", 5), r"No such option '--rowz'")
case("missing-required-option", lambda c: ["train", "--data", c.w / "t.csv"], r"Missing option '--out'")
case("datasets-unknown", lambda c: ["datasets", "nope"], r"nope")


@pytest.mark.parametrize("build,pattern,code", C)
def test_hostile_input(work, warm, tmp_path, build, pattern, code):
    ctx = Ctx(d=tmp_path / "case", w=work)
    ctx.d.mkdir()
    argv = [str(a) for a in build(ctx)]
    before = snapshot(ctx.d, work)
    with ExitStack() as stack:
        for cm in ctx.hold:
            stack.enter_context(cm)
        result = CliRunner().invoke(main, argv)
    after = snapshot(ctx.d, work)
    lines = [line for line in result.output.splitlines() if line.strip()]
    traceback = result.exception is not None and not isinstance(result.exception, SystemExit) \
        or "Traceback" in result.output or "internal error" in result.output
    clean = (result.exit_code == code and len(lines) == 1 and lines[0].startswith("error: ")
             and re.search(pattern, lines[0]) is not None)
    leftover = before != after
    _tally(traceback=traceback, silent=result.exit_code == 0, leftover=leftover, clean=clean)
    assert not traceback, f"traceback for {argv}: {result.output}\n{result.exception!r}"
    assert result.exit_code == code, f"exit {result.exit_code} for {argv}: {result.output}"
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert re.search(pattern, lines[0]), lines[0]
    assert not leftover, f"files changed: {sorted(set(before) ^ set(after))}"


# ---- signals and a second writer from another process ---------------------------------------
SLOW_DPGAN = {"generator": "dp-gan", "params": {"epochs": 3000, "batch_size": 8, "generator_hidden": [8],
                                                "discriminator_hidden": [8]}}


class _Proc:
    """A CLI subprocess that imports dpsynth first (slow on a busy machine, so it overlaps the
    in-process corpus), then waits for ``go()`` before running ``dpsynth.cli.main`` with its
    argv exactly as ``python -m dpsynth.cli ARGS`` would. stderr is collected by a thread."""

    WARM = ("import sys; from dpsynth.cli import main; sys.stdin.readline(); "
            "sys.argv = ['dpsynth', *sys.argv[1:]]; main()")

    def __init__(self, args, cwd: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
        env.pop("DPSYNTH_TRACEBACK", None)
        self.proc = subprocess.Popen([sys.executable, "-c", self.WARM, *map(str, args)], cwd=cwd, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.err: list[str] = []
        self.reader = threading.Thread(target=lambda: self.err.extend(iter(lambda: self.proc.stderr.read(1), "")),
                                       daemon=True)
        self.reader.start()

    def go(self) -> None:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def stderr(self) -> str:
        return "".join(self.err)

    def wait_for(self, ready: Callable[[], bool], timeout: float = 180) -> None:
        end = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"process ended early ({self.proc.returncode}): {self.stderr()}")
            if time.monotonic() > end:
                self.proc.kill()
                raise AssertionError(f"timed out waiting; stderr so far: {self.stderr()}")
            time.sleep(0.05)

    def finish(self, timeout: float = 120) -> tuple[int, str, str]:
        # not communicate(): it would read stderr too, racing the reader thread for its last bytes
        self.proc.wait(timeout=timeout)
        self.reader.join(timeout=10)
        out = self.proc.stdout.read()
        return self.proc.returncode, out, self.stderr()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def warm(work, tmp_path_factory):
    """The signal cases' processes, started (importing) as soon as the workspace exists."""
    s = tmp_path_factory.mktemp("signals")
    (s / "slow.yaml").write_text(yaml.safe_dump(SLOW_DPGAN))
    procs = {"train": _Proc(["train", "--data", work / "t.csv", "--schema", work / "s.yaml", "--config",
                             s / "slow.yaml", "--out", s / "run"], s)}
    for sig in ("SIGTERM", "SIGINT"):
        procs[sig] = _Proc(["generate", "--model", work / "run", "-n", 5_000_000, "-o", s / f"big_{sig}.csv"], s)
    yield s, procs
    for proc in procs.values():
        proc.kill()


@pytest.fixture(scope="module")
def signalled(work, warm) -> dict:
    """SIGTERM and SIGINT mid-generate, SIGINT mid-train (after an in-process second writer to
    the same run directory was refused). Each one's exit code, stdout, stderr; the listings."""
    s, procs = warm
    before = snapshot(s, work)
    for proc in procs.values():
        proc.go()
    results = {}
    for sig in ("SIGTERM", "SIGINT"):
        procs[sig].wait_for(lambda: any(s.glob(f".big_{sig}.csv.tmp-*")))
        time.sleep(0.3)
        procs[sig].proc.send_signal(signal.Signals[sig])
    train = procs["train"]
    train.wait_for(lambda: "training" in train.stderr())
    results["second_writer"] = invoke("train", "--data", work / "t.csv", "--schema", work / "s.yaml", "-g",
                                      "independent", "--out", s / "run")
    results["listing_while_training"] = sorted(p.name for p in s.iterdir())
    train.proc.send_signal(signal.SIGINT)
    results["train"] = train.finish()
    for sig in ("SIGTERM", "SIGINT"):
        results[sig] = procs[sig].finish()
    after = snapshot(s, work)
    results["unchanged"] = before == after
    results["leftover"] = sorted(set(after) ^ set(before))
    return results




def _last_line(err: str) -> str:
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1] if lines else ""


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_signal_mid_generate_leaves_nothing(signalled, sig):
    code, out, err = signalled[sig]
    expected = 128 + signal.Signals[sig].value
    message = "terminated by SIGTERM" if sig == "SIGTERM" else "interrupted"
    _tally(traceback="Traceback" in err, silent=code == 0, leftover=not signalled["unchanged"],
           clean=code == expected and _last_line(err).startswith(message) and not out.strip())
    assert "Traceback" not in err and code == expected, (code, err)
    assert _last_line(err).startswith(message) and "no partial output was written" in _last_line(err), err
    assert not out.strip(), out  # nothing was reported as written
    assert signalled["unchanged"], f"left behind: {signalled['leftover']}"


def test_sigint_mid_train_leaves_nothing_and_prints_no_losses(signalled):
    code, out, err = signalled["train"]
    _tally(traceback="Traceback" in err, silent=code == 0, leftover=not signalled["unchanged"],
           clean=code == 130 and _last_line(err) == "interrupted; no partial output was written" and "loss" not in err)
    assert "Traceback" not in err and code == 130, (code, err)
    assert _last_line(err) == "interrupted; no partial output was written", err
    assert "training" in err and "eps=" in err, err  # the bar ran and showed the epsilon spent ...
    assert "loss" not in err, err  # ... but no loss on real batches (not DP) by default
    assert signalled["unchanged"], f"left behind: {signalled['leftover']}"


def test_second_writer_from_another_process_fails_cleanly(signalled):
    result = signalled["second_writer"]
    lines = [line for line in result.output.splitlines() if line.strip()]
    _tally(traceback="Traceback" in result.output, silent=result.exit_code == 0, leftover=not signalled["unchanged"],
           clean=result.exit_code == 2 and len(lines) == 1 and "another dpsynth process is writing it" in lines[0])
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert re.search(r"run: another dpsynth process is writing it \(lock .*\.run\.lock\)", lines[0]), lines[0]
    assert ".run.lock" in signalled["listing_while_training"]  # the first writer's lock, removed at its exit
    assert signalled["unchanged"], f"left behind: {signalled['leftover']}"


# ---- what the write-safety options allow ------------------------------------------------------
@pytest.fixture
def files(tmp_path):
    table(60).to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SCHEMA))
    return tmp_path


def _train(files, out, *extra):
    return invoke("train", "--data", files / "t.csv", "--schema", files / "s.yaml", "-g", "independent", "--out", out, *extra)


def _hidden(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_overwrite_replaces_dpsynth_outputs_and_leaves_no_lock(files):
    assert _train(files, files / "run").exit_code == 0
    first = json.loads((files / "run" / "ledger.json").read_text())
    result = _train(files, files / "run", "--overwrite", "--seed", 3)
    assert result.exit_code == 0, result.output
    assert json.loads((files / "run" / "run.json").read_text())["split"]["seed"] == 0  # split seed is its own
    assert first["entries"] and (files / "run" / "weights.safetensors").is_file()
    out = files / "g.csv"
    out.write_text("old\n")
    assert invoke("generate", "--model", files / "run", "-n", 30, "-o", out).exit_code == 2
    assert out.read_text() == "old\n"
    result = invoke("generate", "--model", files / "run", "-n", 30, "-o", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(out)) == 30
    assert _hidden(files) == []  # no .g.csv.lock, .run.lock or temporary left


def test_one_shot_overwrite_replaces_its_own_model_folder(files):
    args = ["generate", "--data", files / "t.csv", "--schema", files / "s.yaml", "-g", "independent", "-n", 25,
            "-o", files / "g.csv", "--no-evaluate"]
    assert invoke(*args).exit_code == 0
    assert (files / "g_model" / "generator.json").is_file()
    again = invoke(*args)
    assert again.exit_code == 2 and "g.csv: output exists" in again.output
    result = invoke(*args, "--overwrite", "-n", 40)
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(files / "g.csv")) == 40 and _hidden(files) == []


def test_losses_print_only_with_verbose_losses(files):
    (files / "gan.yaml").write_text(yaml.safe_dump({"generator": "dp-gan", "params": {
        "epochs": 2, "batch_size": 8, "generator_hidden": [8], "discriminator_hidden": [8]}}))
    base = ["train", "--data", files / "t.csv", "--schema", files / "s.yaml", "--config", files / "gan.yaml"]
    quiet = invoke(*base, "--out", files / "a")
    assert quiet.exit_code == 0, quiet.output
    assert "eps=" in quiet.output and "_loss=" not in quiet.output and LOSS_WARNING not in quiet.output
    loud = invoke(*base, "--out", files / "b", "--verbose-losses")
    assert loud.exit_code == 0, loud.output
    assert LOSS_WARNING in loud.output and "d_loss=" in loud.output and "g_loss=" in loud.output


# ---- the error wrapper itself ----------------------------------------------------------------
@pytest.mark.parametrize("exc,code,line", [
    (OSError(28, "No space left on device", "/data/g.csv"), 2, "error: /data/g.csv: No space left on device"),
    (TypeError("unsupported operand"), 1, "internal error (TypeError: unsupported operand); rerun with "
                                          "DPSYNTH_TRACEBACK=1 and report it"),
])
def test_environment_errors_and_bugs_are_one_line(work, tmp_path, monkeypatch, exc, code, line):
    from dpsynth import api

    def fail(**kwargs):
        raise exc

    monkeypatch.setattr(api, "generate", fail)
    monkeypatch.delenv("DPSYNTH_TRACEBACK", raising=False)
    result = invoke("generate", "--model", work / "run", "-n", 5, "-o", tmp_path / "g.csv")
    assert result.exit_code == code and result.output.strip() == line, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # the lock is gone too
