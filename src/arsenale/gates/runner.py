"""One gate run: load the candidate, the champion and the evaluation data, score both models on the same
rows once, run every check of the policy, store the outcome with the candidate's version, and promote it
when it passed and the policy says how.

    outcome = run_gate("gates.toml", "models:/fraud/7", "models:/fraud@champion", "dataset:transactions@4")
    outcome.passed, outcome.run.id, outcome.results

The evaluation happens here, where the models and the data are (a CI job); the store only keeps results,
so the same code works against a local store and a remote server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from arsenale.errors import InvalidInput, NotFound
from arsenale.gates.metrics import get_metric
from arsenale.gates.performance import check_performance
from arsenale.gates.policy import Policy, load_policy
from arsenale.gates.results import CheckResult
from arsenale.registry.contract import Contract

if TYPE_CHECKING:
    import pandas as pd

    from arsenale.gates.models import GateRun
    from arsenale.platform import Client
    from arsenale.registry.models import ModelVersion

__all__ = ["GateEvaluation", "GateOutcome", "evaluate", "load_data", "run_gate"]


@dataclass
class _Scored:
    """One model's answers on the evaluation rows, computed once and read by every check."""

    version: ModelVersion
    model: Any
    contract: Contract | None
    classes: np.ndarray
    scores: np.ndarray | None

    def answers(self, reads: str) -> np.ndarray:
        if reads == "scores":
            if self.scores is None:
                raise InvalidInput(f"{self.version.uri} has no predict_proba for a binary label: metrics that "
                                   f"read scores (roc_auc, log_loss) cannot be computed", field="policy")
            return self.scores
        return self.classes


@dataclass
class GateEvaluation:
    candidate: ModelVersion
    champion: ModelVersion | None
    dataset: str
    rows: int
    results: list[CheckResult]
    policy_text: str
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def title(self) -> str:
        against = f"{self.champion.uri}" if self.champion else "no champion (first model)"
        return f"Gate: {self.candidate.uri} vs {against} on {self.dataset}"


@dataclass
class GateOutcome:
    evaluation: GateEvaluation
    run: GateRun

    @property
    def passed(self) -> bool:
        return self.run.passed

    @property
    def results(self) -> list[CheckResult]:
        return self.evaluation.results


def load_data(data: Any, client: Client) -> tuple[pd.DataFrame, str]:
    """The evaluation rows and how to name them: `dataset:NAME[@VERSION]` from the store, a Parquet or CSV
    file, or a DataFrame given directly."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data, f"a DataFrame of {len(data)} rows"
    if not isinstance(data, (str, Path)):
        raise InvalidInput("data must be dataset:NAME[@VERSION], a Parquet/CSV file or a DataFrame", field="data")
    text = str(data)
    if text.startswith("dataset:"):
        name, _, version = text[len("dataset:"):].partition("@")
        version = version or "latest"
        if version != "latest" and not version.isdigit():
            raise InvalidInput(f"a dataset version is a number or 'latest', got {version!r}", field="data")
        dv = client.datasets.get(name, int(version) if version.isdigit() else "latest")
        return client.datasets.read(name, dv.version).to_pandas(), dv.uri
    from arsenale.data.datasets import load_table

    path = Path(text)
    if not path.is_file():
        raise InvalidInput(f"no data file at {text!r} (give dataset:NAME[@VERSION] or a Parquet/CSV file)",
                           field="data")
    table, _ = load_table(path)
    return table.to_pandas(), path.name


def _resolve_champion(client: Client, against: str | None) -> ModelVersion | None:
    """The champion, or None when there is none yet (the alias or stage is not set): a first model."""
    if against is None:
        return None
    from arsenale.registry.uris import parse_model_uri

    ref = parse_model_uri(against)
    try:
        return client.registry.resolve(against)
    except NotFound:
        if ref.version is not None:
            raise  # a named version that does not exist is a mistake, not a first model
        client.registry.get_model(ref.name)  # an unknown model name is a mistake too
        return None


def _contract(mv: ModelVersion) -> Contract | None:
    return Contract.model_validate(mv.contract) if mv.contract else None


class _OnArrays:
    """A model trained on a NumPy array, called with the named columns every check works with."""

    def __init__(self, model: Any, columns: list[str]) -> None:
        self.model = model
        self.columns = columns

    def _array(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(X[self.columns].to_numpy(dtype=float, na_value=np.nan))

    def predict(self, X: pd.DataFrame) -> Any:
        return self.model.predict(self._array(X))

    @property
    def predict_proba(self) -> Any:
        proba = self.model.predict_proba  # AttributeError when the model has none: hasattr stays honest
        return lambda X: proba(self._array(X))


def _inputs(frame: pd.DataFrame, contract: Contract | None, features: list[str] | None, label: str,
            uri: str) -> tuple[pd.DataFrame, bool]:
    """The model's input columns, and whether it takes them as an array."""
    named = contract is not None and contract.inputs is not None and contract.inputs.kind == "dataframe"
    if named and contract is not None and contract.inputs is not None:
        columns = contract.inputs.names
    else:
        columns = features if features is not None else [c for c in frame.columns if c != label]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidInput(f"the evaluation data has no column {', '.join(map(repr, missing[:5]))} that "
                           f"{uri} needs", field="data")
    if not named and contract is not None and contract.inputs is not None:
        width = contract.inputs.shape[1] if len(contract.inputs.shape) > 1 else None
        if width is not None and width != len(columns):
            raise InvalidInput(f"{uri} was trained on arrays of {width} columns and the evaluation data has "
                               f"{len(columns)} besides the label: list them in order with features = [...] "
                               f"in the policy", field="policy.features")
    return frame[columns], not named


def _named(contract: Contract | None, columns: list[str]) -> Contract | None:
    """An array model's contract with its columns (f0, f1, …) named as the evaluation data names them, so that
    the robustness probes ask it about the columns they perturb."""
    if contract is None or contract.inputs is None or len(contract.inputs.columns) != len(columns):
        return contract
    named = contract.model_copy(deep=True)
    assert named.inputs is not None
    for column, name in zip(named.inputs.columns, columns):
        column.name = name
    named.inputs.kind = "dataframe"
    return named


def _score(client: Client, mv: ModelVersion, frame: pd.DataFrame, features: list[str] | None, label: str,
           trusted: bool) -> tuple[_Scored, pd.DataFrame]:
    from arsenale.registry.fluent import load_version

    model = load_version(client.registry, mv, trusted=trusted)  # from the model cache, digests checked
    contract = _contract(mv)
    X, on_arrays = _inputs(frame, contract, features, label, mv.uri)
    if on_arrays:
        model = _OnArrays(model, list(X.columns))
        contract = _named(contract, list(X.columns))
    try:
        classes = np.asarray(model.predict(X))
        scores = None
        if hasattr(model, "predict_proba"):
            proba = np.asarray(model.predict_proba(X))
            if proba.ndim == 2 and proba.shape[1] == 2:
                scores = proba[:, 1]
    except Exception as exc:  # the user's model failing on the evaluation data is the gate's answer
        raise InvalidInput(f"{mv.uri} failed to predict on the evaluation data: {type(exc).__name__}: {exc}",
                           field="candidate") from exc
    return _Scored(mv, model, contract, classes, scores), X


def _label(policy: Policy, contract: Contract | None, frame: pd.DataFrame) -> str:
    label = policy.label
    if label is None and contract is not None and contract.profile is not None and contract.profile.label:
        label = contract.profile.label.name
    if label is None:
        raise InvalidInput("name the label column: label = \"...\" in the policy (the candidate's contract "
                           "does not record one)", field="policy.label")
    if label not in frame.columns:
        raise InvalidInput(f"the evaluation data has no label column {label!r}", field="data")
    return label


def _columns(frame: pd.DataFrame, names: list[str], what: str) -> pd.DataFrame:
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise InvalidInput(f"the evaluation data has no column {', '.join(map(repr, missing))} that the "
                           f"policy's {what} check needs", field="data")
    return frame[names]


def evaluate(policy: Policy, candidate: str, against: str | None, data: Any, *, client: Client | None = None,
             policy_text: str = "", trusted: bool = False, seed: int = 0) -> GateEvaluation:
    """Every check of `policy` on `candidate` (and `against`, when it resolves) over the same rows."""
    from arsenale.gates.fairness import check_fairness
    from arsenale.gates.operational import check_operational
    from arsenale.gates.robustness import check_robustness
    from arsenale.gates.slices import check_slices
    from arsenale.platform import Client

    client = client or Client()
    cand_mv = client.registry.resolve(candidate)
    champ_mv = _resolve_champion(client, against)
    notes = []
    if champ_mv is None:
        notes.append(f"{against or 'no champion given'}: no champion yet, so absolute thresholds only")
    elif champ_mv.name == cand_mv.name and champ_mv.version == cand_mv.version:
        notes.append(f"{cand_mv.uri} is already the champion: it is compared with itself")
    frame, dataset = load_data(data, client)
    if frame.empty:
        raise InvalidInput("the evaluation data has no rows", field="data")
    label = _label(policy, _contract(cand_mv), frame)
    frame = frame[frame[label].notna()]
    y = frame[label].to_numpy()
    results: list[CheckResult] = []
    cand, X = _score(client, cand_mv, frame, policy.features, label, trusted)
    champ = _score(client, champ_mv, frame, policy.features, label, trusted)[0] if champ_mv else None
    for check in policy.performance:
        reads = get_metric(check.metric).reads
        results.append(check_performance(check, y, cand.answers(reads),
                                         champ.answers(reads) if champ else None, seed=seed))
    for fair in policy.fairness:
        sensitive = [fair.sensitive] if isinstance(fair.sensitive, str) else list(fair.sensitive)
        results.extend(check_fairness(fair, y, cand.classes, champ.classes if champ else None,
                                      _columns(frame, sensitive, "fairness"),
                                      candidate_scores=cand.scores,
                                      champion_scores=champ.scores if champ else None))
    slices = list(policy.slices)
    if policy.contract_slices is not None:
        named = cand.contract.slices if cand.contract else []
        present = [s for s in named if s in frame.columns]
        slices += [policy.contract_slices.check(s) for s in present]
        notes += [f"the contract's slice {s!r} is not a column of the evaluation data: not checked"
                  for s in named if s not in present]
        if not named:
            notes.append(f"{cand_mv.uri}'s contract names no slices: [contract_slices] checked nothing")
    for sl in slices:
        reads = get_metric(sl.metric).reads
        results.extend(check_slices(sl, y, cand.answers(reads), champ.answers(reads) if champ else None,
                                    _columns(frame, [sl.by], "slices")))
    if policy.robustness is not None:
        results.extend(check_robustness(policy.robustness, cand.model, X, cand.contract))
    if policy.operational is not None:
        size = sum(f.size for f in cand_mv.files)
        results.extend(check_operational(policy.operational, cand.model, X, size_bytes=size,
                                         candidate_contract=_contract(cand_mv),
                                         deployed_contract=_contract(champ_mv) if champ_mv else None))
    return GateEvaluation(cand_mv, champ_mv, dataset, len(frame), results, policy_text, notes)


def run_gate(policy: str | Path, candidate: str, against: str | None, data: Any, *, client: Client | None = None,
             promote: bool = True, trusted: bool = False, seed: int = 0) -> GateOutcome:
    """`evaluate`, then store the run with the candidate's version (audited) and, when it passed and the
    policy has a `[promote]` table, promote it."""
    from arsenale.platform import Client

    client = client or Client()
    parsed, text = load_policy(policy, with_text=True)
    evaluation = evaluate(parsed, candidate, against, data, client=client, policy_text=text, trusted=trusted,
                          seed=seed)
    champion = evaluation.champion
    run = client.gates.record(evaluation.candidate.name, evaluation.candidate.version,
                              dataset=evaluation.dataset, results=evaluation.results, policy=text,
                              champion_version=champion.version if champion
                              and champion.name == evaluation.candidate.name else None)
    if promote and run.passed and parsed.promote is not None:
        run = client.gates.promote(run.id, alias=parsed.promote.alias, canary=parsed.promote.canary)
    return GateOutcome(evaluation, run)
