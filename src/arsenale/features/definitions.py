"""Feature definitions: entities, feature views, on-demand features and feature services.

    customer = Entity("customer", join_keys=["customer_id"])
    txn_stats = FeatureView("txn_stats", entities=[customer], source=ars.Dataset("transactions"),
                            timestamp="event_time", ttl="30d",
                            features={"amount": "amount", "amount_7d": "sum(amount) over 7d"})

A definition is data (a pydantic model that round-trips through JSON), so the store can version it: the
fingerprint covers everything that changes a value (keys, source, timestamp column, TTL, expressions, an
on-demand function's source), not the description or tags, and a new fingerprint is a new version.

Feature expressions are either a source column (the latest value as of the entity row's time, within the
TTL) or `fn(column) over <window>` with fn in sum, count, avg (or mean), min, max; `count(*)` counts
events. A window `over 7d` holds the events in (t - 7d, t] for an entity row at time t.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from arsenale.errors import InvalidInput
from arsenale.units import format_duration, parse_duration

__all__ = ["Aggregation", "Entity", "Feature", "FeatureRef", "FeatureService", "FeatureView", "OnDemandFeature",
           "SourceSpec", "check_identifier", "on_demand_feature", "parse_expression", "parse_feature_ref",
           "parse_window"]

# Column and feature names: what data frames hold ("mean radius" included), minus what the reference
# syntax uses (':' and '@'), quotes, control characters, and surrounding spaces.
_IDENT = re.compile(r"[^\x00-\x1f\x7f:@\"\s](?:[^\x00-\x1f\x7f:@\"]{0,126}[^\x00-\x1f\x7f:@\"\s])?")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
_AGG = re.compile(r"\s*(sum|count|avg|mean|min|max)\s*\(\s*(\*|\"[^\"]+\"|[A-Za-z_][A-Za-z0-9_]*)\s*\)\s+over\s+(.+?)\s*",
                  re.IGNORECASE)
AGGREGATIONS = ("sum", "count", "avg", "min", "max")
# A view's rows are looked up by key; these names would collide with the columns a retrieval adds.
RESERVED_COLUMNS = frozenset({"event_timestamp", "__row", "__ts"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_identifier(value: Any, *, field: str, what: str = "name") -> str:
    """A column name as data frames have them: 1-128 characters, no ':', '@', quotes or control characters,
    no spaces at either end."""
    if not isinstance(value, str) or not _IDENT.fullmatch(value):
        raise InvalidInput(f"{what} must be 1-128 characters without ':', '@', quotes, control characters or "
                           f"surrounding spaces; got {value!r:.140}", field=field)
    return value


def _check_name(value: Any, *, field: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value) or ".." in value:
        raise InvalidInput(f"{field} must be 1-128 letters, digits, '_', '-' or '.', starting with a letter or "
                           f"digit; got {value!r}", field=field)
    return value


def parse_window(value: Any, *, field: str = "window") -> float:
    """'30s', '15m', '24h', '7d', '2w', a number of seconds or a timedelta → seconds (under ~30,000 years)."""
    if hasattr(value, "total_seconds") and not isinstance(value, (int, float, str)):
        value = float(value.total_seconds())  # datetime.timedelta, pandas.Timedelta
    seconds = parse_duration(value, field=field)
    if seconds >= 1e12:
        raise InvalidInput(f"{field} is too long: {value!r}", field=field)
    return seconds


class Aggregation(_Model):
    """`function(column) over window`; column None means count(*)."""

    function: Literal["sum", "count", "avg", "min", "max"]
    column: str | None
    window_seconds: float = Field(gt=0)

    def expression(self) -> str:
        column = self.column or "*"
        if self.column is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.column):
            column = f'"{self.column}"'
        return f"{self.function}({column}) over {format_duration(self.window_seconds)}"


class Feature(_Model):
    """One feature of a view: a source column, or an aggregation over a trailing window."""

    name: str
    column: str | None = None
    aggregation: Aggregation | None = None

    @property
    def expression(self) -> str:
        return self.aggregation.expression() if self.aggregation else str(self.column)

    @property
    def source_column(self) -> str | None:
        return self.aggregation.column if self.aggregation else self.column


def parse_expression(name: str, expression: Any) -> Feature:
    """`"amount"` → a plain column; `"sum(amount) over 7d"` → an aggregation."""
    check_identifier(name, field=f"features.{name}", what="a feature name")
    field = f"features.{name}"
    if not isinstance(expression, str):
        raise InvalidInput(f"{field} must be a column name or 'fn(column) over <window>'; got {expression!r}",
                           field=field)
    text = expression.strip()
    m = _AGG.fullmatch(text)
    if m is None and _IDENT.fullmatch(text) and "(" not in text:
        return Feature(name=name, column=text)
    if m is None:
        raise InvalidInput(f"{field}: cannot read {expression!r}; write a column name or 'fn(column) over "
                           f"<window>' with fn one of sum, count, avg, min, max (e.g. 'sum(amount) over 7d'; quote a column "
                           "name with spaces: 'sum(\"unit price\") over 7d')",
                           field=field)
    function = m.group(1).lower()
    function = "avg" if function == "mean" else function
    column = None if m.group(2) == "*" else check_identifier(m.group(2).strip('"'), field=field, what="a column")
    if column is None and function != "count":
        raise InvalidInput(f"{field}: only count takes '*'; {function} needs a column", field=field)
    window = parse_window(m.group(3), field=field)
    return Feature(name=name, aggregation=Aggregation(function=function, column=column,  # type: ignore[arg-type]
                                                      window_seconds=window))


class _Named(_Model):
    """A stored definition: a name (also accepted as the first positional argument), a description and tags,
    which document it without changing its version. Subclasses normalise what users write in `_normalise`;
    a stored definition read back goes through it too, so it must accept its own output."""

    name: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)

    def __init__(self, name: str | None = None, /, **data: Any) -> None:
        if name is not None:
            data["name"] = name
        super().__init__(**self._normalise(data))

    @classmethod
    def _normalise(cls, data: dict[str, Any]) -> dict[str, Any]:
        return data


class Entity(_Named):
    """What features describe (a customer, a card): a name and the columns that identify one."""

    kind: Literal["entity"] = "entity"
    join_keys: tuple[str, ...]

    @classmethod
    def _normalise(cls, data: dict[str, Any]) -> dict[str, Any]:
        data["name"] = _check_name(data.get("name"), field="name")
        keys = data.get("join_keys") or [data["name"]]
        if isinstance(keys, str):
            keys = [keys]
        if not isinstance(keys, (list, tuple)) or not keys or len(keys) > 8:
            raise InvalidInput("join_keys must be a list of 1 to 8 column names", field="join_keys")
        keys = tuple(check_identifier(k, field="join_keys", what="a join key") for k in keys)
        if len(set(keys)) != len(keys):
            raise InvalidInput(f"join_keys repeat a column: {list(keys)}", field="join_keys")
        data["join_keys"] = keys
        return data

    def definition(self) -> dict[str, Any]:
        return {"join_keys": list(self.join_keys)}


class SourceSpec(_Model):
    """Where a view's events come from: a registered dataset (pinned or following its newest version)
    or a Parquet file or folder."""

    dataset: str | None = None
    version: int | Literal["latest"] = "latest"
    path: str | None = None

    def describe(self) -> str:
        return f"dataset:{self.dataset}@{self.version}" if self.dataset else str(self.path)


def _source(value: Any) -> SourceSpec:
    if isinstance(value, SourceSpec):
        return value
    if isinstance(value, Mapping):
        return SourceSpec.model_validate(dict(value))
    if hasattr(value, "info") and hasattr(value, "name") and hasattr(value, "version"):  # ars.Dataset
        requested = getattr(value, "requested", value.version)
        return SourceSpec(dataset=value.name, version=requested if requested == "latest" else int(requested))
    if isinstance(value, str) and value.startswith("dataset:"):
        name, _, version = value[len("dataset:"):].partition("@")
        _check_name(name, field="source")
        if version and version != "latest" and not version.isdigit():
            raise InvalidInput(f"source version must be a number or 'latest'; got {version!r}", field="source")
        return SourceSpec(dataset=name, version=int(version) if version.isdigit() else "latest")
    if isinstance(value, str) and value.strip():
        return SourceSpec(path=value)
    if hasattr(value, "__fspath__"):
        return SourceSpec(path=str(value))
    raise InvalidInput("source must be an ars.Dataset, 'dataset:<name>[@<version>]' or a Parquet path; "
                       f"got {type(value).__name__}", field="source")


class FeatureView(_Named):
    """Features of one or more entities, computed from one event source.

    `features` maps each feature name to an expression (see the module docstring); a list of column
    names is shorthand for plain columns of the same names. `ttl` bounds how old a plain column's value
    may be at the entity row's time (older → null); windowed aggregations have their own window.
    """

    kind: Literal["view"] = "view"
    entities: tuple[str, ...]
    join_keys: tuple[str, ...]
    source: SourceSpec
    timestamp: str
    created_timestamp: str | None = None
    ttl_seconds: float | None = None
    features: tuple[Feature, ...]

    @classmethod
    def _normalise(cls, data: dict[str, Any]) -> dict[str, Any]:
        features = data.get("features")
        if isinstance(features, Mapping) or (isinstance(features, (list, tuple))
                                             and all(isinstance(f, str) for f in features)):
            return _normalise_view(data)  # as a user writes it; a stored definition is already normal
        return data

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise InvalidInput(f"feature view {self.name!r} has no feature {name!r}; it has "
                           f"{', '.join(f.name for f in self.features)}", field="features")

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def source_columns(self) -> list[str]:
        """The columns a retrieval reads from the source: keys, timestamps and every feature's input."""
        cols = [*self.join_keys, self.timestamp, *([self.created_timestamp] if self.created_timestamp else [])]
        for f in self.features:
            if f.source_column and f.source_column not in cols:
                cols.append(f.source_column)
        return cols

    def definition(self) -> dict[str, Any]:
        return {"join_keys": list(self.join_keys), "source": self.source.model_dump(),
                "timestamp": self.timestamp, "created_timestamp": self.created_timestamp,
                "ttl_seconds": self.ttl_seconds,
                "features": [[f.name, f.expression] for f in self.features]}


def _normalise_view(data: dict[str, Any]) -> dict[str, Any]:
    out = dict(data)
    out["name"] = _check_name(data.get("name"), field="name")
    entities = data.get("entities")
    if isinstance(entities, (Entity, str)):
        entities = [entities]
    if not isinstance(entities, (list, tuple)) or not entities:
        raise InvalidInput("entities must be a non-empty list of Entity objects", field="entities")
    names: list[str] = []
    keys: list[str] = []
    for e in entities:
        if isinstance(e, Entity):
            names.append(e.name)
            keys.extend(k for k in e.join_keys if k not in keys)
        elif isinstance(e, str) and "join_keys" in data:
            names.append(_check_name(e, field="entities"))
        else:
            raise InvalidInput(f"entities must be Entity objects; got {e!r}", field="entities")
    out["entities"] = tuple(names)
    out["join_keys"] = tuple(keys) if keys else tuple(data["join_keys"])
    out["source"] = _source(data.get("source"))
    out["timestamp"] = check_identifier(data.get("timestamp"), field="timestamp", what="timestamp")
    if data.get("created_timestamp") is not None:
        out["created_timestamp"] = check_identifier(data["created_timestamp"], field="created_timestamp",
                                                    what="created_timestamp")
    ttl = out.pop("ttl", None)
    if ttl is not None:
        out["ttl_seconds"] = parse_window(ttl, field="ttl")
    features = data.get("features")
    if isinstance(features, (list, tuple)) and all(isinstance(f, str) for f in features):
        features = {f: f for f in features}
    if not isinstance(features, Mapping) or not features:
        raise InvalidInput("features must map feature names to expressions, e.g. {'amount_7d': "
                           "'sum(amount) over 7d'}", field="features")
    if len(features) > 1000:
        raise InvalidInput("a view holds at most 1000 features", field="features")
    parsed = tuple(parse_expression(n, e) for n, e in features.items())
    taken = set(out["join_keys"]) | {out["timestamp"]} | RESERVED_COLUMNS
    for f in parsed:
        if f.name in taken:
            raise InvalidInput(f"feature name {f.name!r} is a join key, the timestamp or reserved",
                               field=f"features.{f.name}")
        if f.source_column is not None and f.source_column in (*out["join_keys"], out["timestamp"]):
            raise InvalidInput(f"feature {f.name!r} reads {f.source_column!r}, a join key or the timestamp",
                               field=f"features.{f.name}")
    out["features"] = parsed
    return out


class FeatureRef(_Model):
    """`view:feature`, `view@3:feature`, or an on-demand feature's bare name."""

    view: str | None
    version: int | None = None
    feature: str

    def __str__(self) -> str:
        if self.view is None:
            return self.feature
        return f"{self.view}{'' if self.version is None else f'@{self.version}'}:{self.feature}"


def parse_feature_ref(value: Any, *, field: str = "features") -> FeatureRef:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"a feature reference is 'view:feature' or an on-demand feature's name; got {value!r}",
                           field=field)
    text = value.strip()
    sep = ":" if ":" in text else ("." if "." in text and "@" not in text.split(".")[-1] else None)
    if sep is None:
        return FeatureRef(view=None, feature=check_identifier(text, field=field, what="a feature name"))
    head, _, feature = text.rpartition(sep)
    view, _, version = head.partition("@")
    if version and not version.isdigit():
        raise InvalidInput(f"{value!r}: a view version is a number, as in 'txn_stats@2:amount_7d'", field=field)
    return FeatureRef(view=_check_name(view, field=field), version=int(version) if version else None,
                      feature=check_identifier(feature, field=field, what="a feature name"))


class OnDemandFeature(_Named):
    """A feature computed at request time from other features and request columns, by one Python function
    that runs identically offline and online. The function is found by `module:qualname`; its source's
    digest is part of the definition, so editing the body makes a new version."""

    kind: Literal["on_demand"] = "on_demand"
    inputs: tuple[str, ...]
    function: str
    source_digest: str
    _callable: Callable[..., Any] | None = None

    def input_refs(self) -> list[FeatureRef]:
        return [parse_feature_ref(i, field="inputs") for i in self.inputs]

    @property
    def request_columns(self) -> list[str]:
        """Inputs that come with the request (entity-df or online row columns), not from a view."""
        return [r.feature for r in self.input_refs() if r.view is None]

    def definition(self) -> dict[str, Any]:
        return {"inputs": list(self.inputs), "function": self.function, "source_digest": self.source_digest}

    def resolve(self) -> Callable[..., Any]:
        """The function: the one given to the decorator in this process, else imported by name."""
        if self._callable is not None:
            return self._callable
        import importlib

        module, _, qualname = self.function.partition(":")
        if module == "__main__":
            raise InvalidInput(f"on-demand feature {self.name!r} was defined in a script's __main__; define it "
                               "in an importable module so other processes (the server) can run it",
                               field="function")
        try:
            obj: Any = importlib.import_module(module)
            for part in qualname.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise InvalidInput(f"on-demand feature {self.name!r}: cannot import {self.function}: {exc}",
                               field="function") from exc
        fn = getattr(obj, "function", obj)
        if _source_digest(fn) != self.source_digest:
            raise InvalidInput(f"on-demand feature {self.name!r}: the code of {self.function} differs from the "
                               "applied version; apply the definitions again", field="function")
        object.__setattr__(self, "_callable", fn)
        return fn

    def __call__(self, df: Any) -> Any:
        return self.resolve()(df)


def _source_digest(fn: Callable[..., Any]) -> str:
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        source = getattr(getattr(fn, "__code__", None), "co_code", b"").hex()
    return hashlib.blake2b(source.encode(), digest_size=16).hexdigest()


def on_demand_feature(inputs: Sequence[str], *, name: str | None = None, description: str = ""
                      ) -> Callable[[Callable[..., Any]], OnDemandFeature]:
    """Decorate `fn(df) -> Series`: `df` holds one column per input, named by the input's feature name."""
    if isinstance(inputs, str) or not isinstance(inputs, Iterable) or not list(inputs):
        raise InvalidInput("inputs must be a non-empty list such as ['amount', 'txn_stats.amount_7d']",
                           field="inputs")
    refs = [parse_feature_ref(i, field="inputs") for i in inputs]
    bare = [r.feature for r in refs]
    if len(set(bare)) != len(bare):
        raise InvalidInput(f"inputs repeat a feature name: {bare}", field="inputs")

    def wrap(fn: Callable[..., Any]) -> OnDemandFeature:
        if not callable(fn):
            raise InvalidInput("on_demand_feature decorates a function", field="function")
        feature = OnDemandFeature(name=check_identifier(name or fn.__name__, field="name"),
                                  inputs=tuple(str(r) for r in refs),
                                  function=f"{fn.__module__}:{fn.__qualname__}",
                                  source_digest=_source_digest(fn), description=description)
        object.__setattr__(feature, "_callable", fn)
        return feature

    return wrap


class FeatureService(_Named):
    """A named set of features a model consumes; serving fetches exactly these."""

    kind: Literal["service"] = "service"
    features: tuple[str, ...]

    @classmethod
    def _normalise(cls, data: dict[str, Any]) -> dict[str, Any]:
        data["name"] = _check_name(data.get("name"), field="name")
        features = data.get("features")
        if isinstance(features, str) or not isinstance(features, (list, tuple)) or not features:
            raise InvalidInput("features must be a non-empty list of feature references", field="features")
        data["features"] = tuple(str(parse_feature_ref(f)) for f in features)
        return data

    def refs(self) -> list[FeatureRef]:
        return [parse_feature_ref(f) for f in self.features]

    def definition(self) -> dict[str, Any]:
        return {"features": list(self.features)}


Definition = Entity | FeatureView | OnDemandFeature | FeatureService


def fingerprint(obj: Definition) -> str:
    """What versions a definition: its value-changing fields, canonically serialised."""
    blob = json.dumps({"kind": obj.kind, **obj.definition()}, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


def from_spec(kind: str, spec: Mapping[str, Any]) -> Definition:
    """A stored definition back as its model (the inverse of `model_dump(mode="json")`)."""
    cls: dict[str, type[Definition]] = {"entity": Entity, "view": FeatureView, "on_demand": OnDemandFeature,
                                        "service": FeatureService}
    if kind not in cls:
        raise InvalidInput(f"unknown definition kind {kind!r}", field="kind")
    return cls[kind].model_validate(dict(spec))
