"""The Generator plumbing shared by ``aim`` and ``mst``: fit skeleton, sampling with exact
conditioning, and the tensor-only state dict.

State dict (safetensors): ``domain.sizes`` (int64, codes per column), ``domain.map.{j}``
(int64, column j's code -> model code; the identity unless MST compressed the column),
``tree.parent`` (int64, -1 for roots), and per junction-tree node i ``clique.{i}.columns``
(int64 column indices) and ``clique.{i}.values`` (float64 probability table over model codes).
These are DP post-processing of noisy marginals; no training row is stored.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import torch

from dpsynth.data.schema import Schema
from dpsynth.data.table import SyntheticData, TableData
from dpsynth.data.transform import restore_types
from dpsynth.errors import DpsynthError
from dpsynth.generators.base import Generator, ProgressFn
from dpsynth.generators.tabular.marginal.compress import DomainMap
from dpsynth.generators.tabular.marginal.discretize import Discretizer
from dpsynth.generators.tabular.marginal.fitting import Fit
from dpsynth.generators.tabular.marginal.junction import CalibratedTree, JunctionTree
from dpsynth.generators.tabular.marginal.measure import Measurer, available_rho
from dpsynth.scale.counting import exact_counts
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.ledger import Ledger


class GraphicalModelGenerator(Generator):
    """Base for generators whose fitted state is a calibrated junction tree over binned columns.

    Conditioning is exact: ``sample(n, conditions={"race": 1})`` fixes the evidence in the
    graphical model and samples from P(rest | evidence). A numeric condition fixes the
    column to the requested value and conditions the model on that value's bin.
    """

    exact_conditioning = True
    _param_names: tuple[str, ...] = ()
    bins: int

    model_: CalibratedTree | None = None
    discretizer_: Discretizer | None = None
    domain_map_: DomainMap | None = None

    def _strata(self) -> list[str]:
        """Columns whose cells a plain ``sample(n)`` draws in the model's exact proportions."""
        return []

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._param_names}

    # ---- fit ------------------------------------------------------------------------------
    def _run(self, measurer: Measurer, rho: float, progress: Callable[[dict], None] | None, *,
             target: int | None = None) -> Fit:
        raise NotImplementedError

    def fit(
        self,
        data: TableData,
        *,
        budget: Budget,
        rng: np.random.Generator,
        ledger: Ledger | None = None,
        progress: ProgressFn | None = None,
    ) -> "GraphicalModelGenerator":
        from dpsynth.generators.tabular.marginal.mbi_glue import require_mbi

        require_mbi(self.name)
        schema = data.schema
        discretizer = Discretizer(schema, bins=self.bins)
        with exact_counts(data, discretizer) as (codes, counter):  # data: a TableData or a TableSource
            ledger = self._make_ledger(budget, counter.n_rows if counter is not None else len(codes), ledger)
            measurer = Measurer(
                codes, discretizer.sizes, ledger=ledger, rng=rng, secure=budget.secure_mode,
                non_private=budget.non_private, names=discretizer.names, counter=counter,
                contribution=getattr(data, "max_rows_per_unit", 1),
            )
            self._fit_measured(measurer, schema, discretizer, budget, ledger, progress)
        return self

    def _fit_measured(self, measurer, schema, discretizer, budget, ledger, progress) -> None:
        if budget.non_private:
            rho = float("inf")
        else:
            target = ledger.target_epsilon if ledger.target_epsilon is not None else budget.epsilon
            rho = available_rho(ledger, target)
        target = schema.names.index(schema.target) if schema.target is not None else None
        fit = self._run(measurer, rho, progress, target=target)
        self.model_, self.discretizer_ = fit.model, discretizer
        self.domain_map_ = fit.domain_map or DomainMap.identity(discretizer.sizes)
        self.schema_, self.ledger_ = schema, ledger

    # ---- sample ---------------------------------------------------------------------------
    def sample(self, n: int, *, conditions: Mapping[str, Any] | None = None, rng: np.random.Generator) -> SyntheticData:
        self._check_fitted()
        if not isinstance(n, (int, np.integer)) or n <= 0:
            raise DpsynthError(f"number of rows must be a positive integer, got {n!r}")
        disc = self.discretizer_
        evidence, fixed = disc.evidence(conditions)
        model_evidence = {j: int(self.domain_map_.maps[j][code]) for j, code in evidence.items()}
        strata = [disc.index(c) for c in self._strata()]
        if strata and not evidence:
            model_codes = self._sample_stratified(int(n), strata, rng)
        else:
            model_codes = self.model_.sample(int(n), rng, model_evidence)
        codes = self.domain_map_.from_model(model_codes, rng)
        for j, code in evidence.items():  # a merged model code stands for several codes: keep the asked one
            codes[:, j] = code
        frame = disc.decode(codes, rng)
        for name, value in fixed.items():
            frame[name] = value
        frame = restore_types(frame, self.schema_)
        info = {"conditions": dict(conditions or {})}
        return SyntheticData(frame=frame, schema=self.schema_, generator=self.name, info=info)

    def _sample_stratified(self, n: int, strata: list[int], rng: np.random.Generator) -> np.ndarray:
        """n rows whose cells over ``strata`` have counts round(n x model marginal) (largest
        remainder), each cell drawn from the model conditioned on it; rows shuffled."""
        strata = sorted(strata)
        p = self.model_.marginal(tuple(strata))
        expected = n * p.ravel() / p.sum()
        counts = np.floor(expected).astype(np.int64)
        short = n - int(counts.sum())
        if short > 0:
            counts[np.argsort(-(expected - counts), kind="stable")[:short]] += 1
        parts = []
        for flat in np.flatnonzero(counts):
            cell = np.unravel_index(flat, p.shape)
            evidence = {j: int(c) for j, c in zip(strata, cell)}
            parts.append(np.ascontiguousarray(self.model_.sample(int(counts[flat]), rng, evidence)))
        rows = np.concatenate(parts, axis=0)
        return rows[rng.permutation(n)]

    # ---- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        self._check_fitted()
        tree = self.model_.tree
        state = {
            "domain.sizes": torch.tensor(self.discretizer_.sizes, dtype=torch.int64),
            "tree.parent": torch.tensor(tree.parent, dtype=torch.int64),
        }
        for j, mapping in enumerate(self.domain_map_.maps):
            state[f"domain.map.{j}"] = torch.from_numpy(np.ascontiguousarray(mapping, dtype=np.int64))
        for i, (node, table) in enumerate(zip(tree.nodes, self.model_.marginals)):
            state[f"clique.{i}.columns"] = torch.tensor(node, dtype=torch.int64)
            state[f"clique.{i}.values"] = torch.from_numpy(np.ascontiguousarray(table, dtype=np.float64))
        return state

    def load_state_dict(self, state: Mapping[str, torch.Tensor], *, schema: Schema) -> "GraphicalModelGenerator":
        discretizer = Discretizer(schema, bins=self.bins)
        try:
            sizes = tuple(int(s) for s in state["domain.sizes"].tolist())
            maps = [state[f"domain.map.{j}"].numpy().astype(np.int64) for j in range(len(sizes))]
            parent = [int(p) for p in state["tree.parent"].tolist()]
            nodes = [tuple(int(a) for a in state[f"clique.{i}.columns"].tolist()) for i in range(len(parent))]
            tables = [state[f"clique.{i}.values"].numpy().astype(np.float64) for i in range(len(parent))]
        except KeyError as exc:
            raise DpsynthError(f"generator '{self.name}': state dict lacks tensor {exc.args[0]!r}") from None
        if sizes != tuple(discretizer.sizes):
            raise DpsynthError(
                f"generator '{self.name}': saved domain sizes {list(sizes)} do not match schema '{schema.name}'"
                f" with bins={self.bins} ({discretizer.sizes})"
            )
        domain_map = DomainMap(maps)
        if any(len(m) != s for m, s in zip(maps, sizes)):
            raise DpsynthError(f"generator '{self.name}': a domain.map tensor does not match domain.sizes")
        tree = JunctionTree(sizes=domain_map.model_sizes, nodes=nodes, parent=parent)
        for node, table in zip(tree.nodes, tables):
            if table.shape != tree.shape(node):
                raise DpsynthError(f"generator '{self.name}': table of clique {node} has shape {table.shape}")
        self.model_, self.discretizer_, self.schema_ = CalibratedTree(tree, tables), discretizer, schema
        self.domain_map_ = domain_map
        return self
