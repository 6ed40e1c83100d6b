"""The registry's SDK: `ars.log_model`, `ars.register_model`, `ars.set_alias`, `ars.load_model`.

Saving a model and inferring its contract happen where the user's code runs;
only files (content-addressed, deduplicated) and JSON cross to the store or
server, so the same code works embedded and against `arsenale server`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from arsenale.config import get_settings
from arsenale.errors import InvalidInput
from arsenale.registry.contract import build_contract
from arsenale.registry.flavors import flavor_for, get_flavor
from arsenale.registry.models import ModelFile, ModelVersion
from arsenale.registry.service import MODEL_META_FILE
from arsenale.tracking.fluent import ActiveRun, active_run, get_client
from arsenale.tracking.models import Run


def _run_id(run: ActiveRun | Run | str | None) -> str | None:
    if run is None:
        return None
    if isinstance(run, (ActiveRun, Run)):
        return run.run_id
    if isinstance(run, str):
        return run
    raise InvalidInput("run must be an active run, a Run or a run id", field="run")


def _prepare(model: Any, folder: Path, signature_from: Any, reference: Any, labels: Any,
             metrics: Mapping[str, float] | None, slices: Sequence[str] | None) -> tuple[str, dict[str, Any],
                                                                                       dict[str, Any]]:
    flavor = flavor_for(model)
    flavor_meta = flavor.save(model, folder)
    data = signature_from if signature_from is not None else reference
    contract = build_contract(X=data, y=labels, model=model if data is not None else None,
                              metrics=dict(metrics) if metrics else None, slices=list(slices) if slices else None)
    if reference is not None and signature_from is not None and reference is not signature_from:
        from arsenale.registry.contract import fingerprint, profile

        contract.profile = profile(reference, labels)
        contract.data_fingerprint = fingerprint(reference)
    return flavor.name, flavor_meta, json.loads(contract.model_dump_json())


def log_model(model: Any, artifact_path: str = "model", *, signature_from: Any = None, reference: Any = None,
              labels: Any = None, metrics: Mapping[str, float] | None = None,
              slices: Sequence[str] | None = None) -> str:
    """Store a model (and its contract) as artifacts of the active run; returns its `runs:/` URI."""
    run = active_run()
    if run is None:
        raise InvalidInput("log_model needs an active run (use ars.start_run)", field="run")
    with tempfile.TemporaryDirectory(prefix="arsenale-model-") as tmp:
        folder = Path(tmp) / artifact_path.rstrip("/").rpartition("/")[2]
        folder.mkdir()
        flavor, flavor_meta, contract = _prepare(model, folder, signature_from, reference, labels, metrics, slices)
        (folder / MODEL_META_FILE).write_text(json.dumps({"flavor": flavor, "flavor_meta": flavor_meta,
                                                          "contract": contract}, indent=1))
        parent = artifact_path.rstrip("/").rpartition("/")[0] or None
        run.log_artifact(folder, parent)
    return f"runs:/{run.run_id}/{artifact_path.rstrip('/')}"


def register_model(name: str, model: Any, *, run: ActiveRun | Run | str | None = None, signature_from: Any = None,
                   reference: Any = None, labels: Any = None, metrics: Mapping[str, float] | None = None,
                   slices: Sequence[str] | None = None, description: str | None = None,
                   tags: Mapping[str, Any] | None = None) -> ModelVersion:
    """Register a new version of `name` from a model object or a `runs:/<run_id>/<path>` URI.

    With an object, the model is saved in its flavor (skops, ONNX or Python code plus data), its contract
    is inferred from `signature_from` (schema) and `reference` (profile), and it is linked to `run`
    (default: the active run)."""
    registry = get_client().registry
    current = run if isinstance(run, ActiveRun) else active_run()
    if current is not None:
        current.flush()  # the version's contract takes the run's metrics: buffered points must land first
    if isinstance(model, str) and model.startswith("runs:/"):
        return registry.create_version(name, source=model, description=description, tags=tags)
    run_id = _run_id(run) if run is not None else _run_id(current)
    with tempfile.TemporaryDirectory(prefix="arsenale-model-") as tmp:
        folder = Path(tmp)
        flavor, flavor_meta, contract = _prepare(model, folder, signature_from, reference, labels, metrics, slices)
        files = []
        for f in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest, size = registry.upload_file(f)
            files.append(ModelFile(path=f.relative_to(folder).as_posix(), digest=digest, size=size))
    return registry.create_version(name, files=files, flavor=flavor, flavor_meta=flavor_meta, contract=contract,
                                   run_id=run_id, source=f"runs:/{run_id}" if run_id else "python",
                                   description=description, tags=tags)


def set_alias(name: str, alias: str, version: int, reason: str | None = None) -> ModelVersion:
    return get_client().registry.set_alias(name, alias, version, reason=reason)


def _cache_dir(mv: ModelVersion) -> Path:
    manifest = hashlib.sha256(json.dumps([f.model_dump() for f in mv.files], sort_keys=True).encode()).hexdigest()
    return get_settings().resolved_home() / "cache" / "models" / f"{manifest[:32]}"


def load_model(uri: str, *, trusted: bool = False, dest: str | os.PathLike[str] | None = None) -> Any:
    """Load `models:/name/3`, `models:/name@alias` or `models:/name/Stage`.

    Every file is checked against its digest. Formats that can run arbitrary code (pickle, stored Python
    code, types outside the scikit-learn/numpy/scipy allowlist) are refused unless `trusted=True`."""
    registry = get_client().registry
    return load_version(registry, registry.resolve(uri), trusted=trusted, dest=dest)


def load_version(registry: Any, mv: ModelVersion, *, trusted: bool = False,
                 dest: str | os.PathLike[str] | None = None) -> Any:
    """`load_model` for a version already resolved, through a given registry (local or remote): its files go
    to the shared model cache unless `dest` is given."""
    folder = registry.download_version(mv.name, mv.version, dest or _cache_dir(mv))
    return get_flavor(mv.flavor).load(folder, mv.flavor_meta, trusted=trusted)
