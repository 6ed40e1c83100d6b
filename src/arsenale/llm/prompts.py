"""The prompt registry: immutable versions of Jinja2 templates with the model and parameters they were written
for, labels (`production`, `staging`, …) that move with an audit entry, diffs, and checked rendering.

    svc = PromptService(engine, actor)
    p = svc.register("support-answer", "Answer using {{ context }}:\n{{ question }}", model="gpt-x",
                     params={"temperature": 0.2})            # same content again returns the same version
    svc.set_label("support-answer", "production", p.version)
    svc.get("support-answer@production").render(context=hits, question=q)

References: `name` (the newest version), `name@label`, `name/3`, `name/latest`, each optionally prefixed with
`prompts:/`. Templates run in Jinja2's immutable sandbox with `StrictUndefined`: a template that does not parse
or reaches for private attributes (`''.__class__`) is refused at registration; every variable the template
names must be given at render time, and an unknown one is refused (a typo) unless `strict=False`. Values are
inserted as text: a value holding `{{ 7*7 }}` stays exactly that.
"""

from __future__ import annotations

import builtins
import difflib
import json
import math
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Protocol

import blake3
import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import (
    UNSAFE_FUNCTION_ATTRIBUTES,
    UNSAFE_METHOD_ATTRIBUTES,
    ImmutableSandboxedEnvironment,
    SecurityError,
)
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from arsenale.errors import Conflict, InvalidInput, NotFound
from arsenale.security.projects import visible
from arsenale.store import prompts as sql
from arsenale.store.audit import AuditRecord
from arsenale.store.audit import append as audit_append
from arsenale.store.db import read, write
from arsenale.tracking.models import check_name, now_ms

__all__ = ["Prompt", "PromptAPI", "PromptDiff", "PromptService", "PromptVersion", "check_label",
           "check_params", "check_prompt_name", "check_register", "check_template", "check_version", "parse_ref", "parse_selector",
           "render_template"]

MAX_TEMPLATE_BYTES = 100_000
MAX_PARAMS_BYTES = 10_000
MAX_DESCRIPTION_BYTES = 10_000
MAX_OUTPUT_CHARS = 10_000_000  # what `'x' * n` or a loop may build while rendering
MAX_VERSION = 2**31 - 1
URI_PREFIX = "prompts:/"
_LABEL_RE = re.compile(r"^[a-z][a-z0-9_\-]{0,63}$")


# ---- models ------------------------------------------------------------------------------------------------


class PromptVersion(BaseModel):
    """One immutable version of a prompt; `render(**variables)` fills it in."""

    name: str
    version: int
    template: str
    model: str | None = Field(None, description="the model the template was written for, e.g. gpt-x")
    params: dict[str, Any] = Field(default_factory=dict, description="call parameters, e.g. temperature")
    variables: list[str] = Field(default_factory=list, description="the variables the template needs, sorted")
    digest: str = Field(description="BLAKE3 of the canonical template, model and params")
    description: str | None = None
    labels: list[str] = Field(default_factory=list, description="the labels pointing at this version now")
    creation_time: int
    created_by: str

    @property
    def uri(self) -> str:
        return f"{URI_PREFIX}{self.name}/{self.version}"

    def render(self, variables: Mapping[str, Any] | None = None, /, *, strict: bool = True, **kwargs: Any) -> str:
        """The template filled in. Every variable it names is required; with `strict` (the default) an
        unknown one is an error too. A variable called `strict` goes in the mapping: `render({"strict": 1})`."""
        return render_template(self.template, {**(variables or {}), **kwargs}, strict=strict, what=self.uri)


class Prompt(BaseModel):
    name: str
    project: str = "default"
    description: str | None = None
    latest_version: int
    labels: dict[str, int] = Field(default_factory=dict, description="label -> version")
    creation_time: int
    created_by: str

    @property
    def uri(self) -> str:
        return f"{URI_PREFIX}{self.name}/{self.latest_version}"


class PromptDiff(BaseModel):
    name: str
    from_version: int
    to_version: int
    template_diff: str = Field(description="a unified diff of the two templates ('' when equal)")
    changes: dict[str, list[Any]] = Field(
        default_factory=dict, description="what else changed, as [before, after]: model, params.<key>, variables")

    @property
    def changed(self) -> bool:
        return bool(self.template_diff or self.changes)


class PromptAPI(Protocol):
    def register(self, name: str, template: str, *, model: str | None = None,
                 params: Mapping[str, Any] | None = None, description: str | None = None) -> PromptVersion: ...
    def get(self, ref: str, *, version: int | str | None = None, label: str | None = None) -> PromptVersion: ...
    def get_prompt(self, name: str) -> Prompt: ...
    def list(self) -> builtins.list[Prompt]: ...
    def versions(self, name: str) -> builtins.list[PromptVersion]: ...
    def set_label(self, name: str, label: str, version: int, *, reason: str | None = None) -> PromptVersion: ...
    def delete_label(self, name: str, label: str) -> None: ...
    def diff(self, name: str, a: int | str, b: int | str) -> PromptDiff: ...


# ---- checks (one message for local and remote callers alike) -----------------------------------------------


def check_prompt_name(name: Any) -> str:
    """Like a model name: non-empty, at most 256 characters, no '/', '@', NUL or surrounding spaces."""
    check_name(name, "name")
    if "/" in name or "@" in name or name != name.strip():
        raise InvalidInput(f"prompt name {name!r:.80} must not contain '/' or '@' or surrounding spaces",
                           field="name")
    return str(name)


def check_label(label: Any) -> str:
    if not isinstance(label, str) or not _LABEL_RE.match(label):
        raise InvalidInput(f"label {label!r:.80} must start with a lowercase letter and hold only lowercase "
                           f"letters, digits, '-' and '_' (at most 64)", field="label")
    if label == "latest" or re.fullmatch(r"v\d+", label):
        raise InvalidInput(f"label {label!r} is reserved (it reads as a version)", field="label")
    return label


def check_version(version: Any) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION:
        raise InvalidInput(f"version must be a positive integer, got {version!r:.60}", field="version")
    return version


def _finite_json(value: Any, path: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"{path} must be a finite number, got {value}", field="params")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidInput(f"{path} keys must be strings, got {k!r:.60}", field="params")
            _finite_json(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _finite_json(v, f"{path}[{i}]")
    elif not (value is None or isinstance(value, (bool, int, float, str))):
        raise InvalidInput(f"{path} must be JSON (strings, numbers, booleans, null, lists, objects), got "
                           f"{type(value).__name__}", field="params")


def check_params(params: Any) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise InvalidInput(f"params must be an object, got {type(params).__name__}", field="params")
    out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}
    _finite_json(out, "params")
    if len(_canonical(out).encode()) > MAX_PARAMS_BYTES:
        raise InvalidInput(f"params exceed {MAX_PARAMS_BYTES} bytes as JSON", field="params")
    return out


def _text(value: Any, field: str, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string, got {type(value).__name__}", field=field)
    if len(value.encode("utf-8", "surrogatepass")) > limit:
        raise InvalidInput(f"{field} is larger than the limit of {limit} bytes", field=field)
    if "\x00" in value:
        raise InvalidInput(f"{field} must not contain NUL characters", field=field)
    return value


def check_template(template: Any) -> tuple[str, builtins.list[str]]:
    """The template if it parses and stays within the sandbox, with the variables it needs (sorted)."""
    template = _text(template, "template", MAX_TEMPLATE_BYTES)
    try:
        ast = _env().parse(template)
    except jinja2.TemplateSyntaxError as exc:
        raise InvalidInput(f"template does not parse (line {exc.lineno}): {exc.message}", field="template") from None
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        attr: str | None = None
        if isinstance(node, nodes.Getattr):
            attr = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) \
                and isinstance(node.arg.value, str):
            attr = node.arg.value
        if attr is not None and (attr.startswith("_") or attr in UNSAFE_FUNCTION_ATTRIBUTES
                                 or attr in UNSAFE_METHOD_ATTRIBUTES or attr in _UNSAFE_MORE):
            raise InvalidInput(f"template reaches for the attribute {attr!r} (line {node.lineno}), which the "
                               f"sandbox forbids", field="template")
    try:
        _env().from_string(ast)
    except jinja2.TemplateError as exc:  # e.g. an unknown filter, found at compile time
        raise InvalidInput(f"template does not compile: {exc}", field="template") from None
    return template, sorted(meta.find_undeclared_variables(ast))


_UNSAFE_MORE = frozenset({"gi_frame", "gi_code", "cr_frame", "cr_code", "ag_code", "ag_frame", "mro", "format",
                          "format_map"})


def check_register(name: Any, template: Any, model: Any, params: Any, description: Any
                   ) -> tuple[str, str, builtins.list[str], str | None, dict[str, Any], str | None]:
    name = check_prompt_name(name)
    template, variables = check_template(template)
    if model is not None:
        check_name(model, "model")
    return (name, template, variables, model, check_params(params),
            None if description is None else _text(description, "description", MAX_DESCRIPTION_BYTES))


def parse_ref(ref: Any, version: Any = None, label: Any = None) -> tuple[str, int | None, str | None]:
    """(name, version, label) from `name`, `name@label`, `name/3`, `name/latest` (optionally `prompts:/…`) and
    the keyword arguments; (name, None, None) means the newest version."""
    if not isinstance(ref, str):
        raise InvalidInput(f"prompt reference must be a string, got {type(ref).__name__}", field="name")
    body = ref.removeprefix(URI_PREFIX)
    name, sep, suffix = body, "", ""
    for mark in ("@", "/"):
        if mark in body:
            name, sep, suffix = body.partition(mark)
            break
    name = check_prompt_name(name)
    if sep and (version is not None or label is not None):
        raise InvalidInput(f"give the version or label either in the reference {ref!r} or as an argument, "
                           f"not both", field="name")
    if version is not None and label is not None:
        raise InvalidInput("give a version or a label, not both", field="version")
    if sep == "@":
        label = suffix
    elif sep == "/":
        version = suffix
    if isinstance(version, str):
        if version == "latest":
            version = None
        elif version.isdigit() and version.isascii():
            version = int(version)
        else:
            raise InvalidInput(f"version must be a positive integer or 'latest', got {version!r:.60}",
                               field="version")
    if label == "latest":
        return name, None, None
    return name, None if version is None else check_version(version), None if label is None else check_label(label)


def parse_selector(value: Any) -> tuple[int | None, str | None]:
    """One side of a diff: a version number, 'latest', or a label."""
    if isinstance(value, int) and not isinstance(value, bool):
        return check_version(value), None
    if isinstance(value, str) and value.startswith("v") and value[1:].isdigit():
        value = value[1:]
    if isinstance(value, str) and (value.isdigit() or value == "latest"):
        return parse_ref("x/" + value)[1], None
    return None, check_label(value)


# ---- rendering ---------------------------------------------------------------------------------------------


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with `*` and `**` bounded so a template cannot build a gigabyte string."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > 100:
            raise SecurityError("exponent too large in template")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_OUTPUT_CHARS:
                    raise SecurityError("a repetition in the template would exceed the output limit")
        return super().call_binop(context, operator, left, right)


@lru_cache(maxsize=1)
def _env() -> _Sandbox:
    return _Sandbox(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)


@lru_cache(maxsize=256)
def _compiled(template: str) -> tuple[jinja2.Template, frozenset[str]]:
    ast = _env().parse(template)
    return _env().from_string(ast), frozenset(meta.find_undeclared_variables(ast))


def render_template(template: str, variables: Mapping[str, Any], *, strict: bool = True,
                    what: str = "template") -> str:
    try:
        compiled, needed = _compiled(template)
    except jinja2.TemplateError as exc:
        raise InvalidInput(f"{what} does not parse: {exc}", field="template") from None
    names = set(variables)
    missing = sorted(needed - names)
    if missing:
        raise InvalidInput(f"missing variable{'s' if len(missing) > 1 else ''} {', '.join(missing)} for {what}",
                           field="variables")
    extra = sorted(names - needed)
    if strict and extra:
        expected = ", ".join(sorted(needed)) or "none"
        raise InvalidInput(f"unknown variable{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))} for "
                           f"{what} (it uses: {expected}); pass strict=False to allow extras", field="variables")
    try:
        out = compiled.render(**{k: variables[k] for k in needed})
    except SecurityError as exc:
        raise InvalidInput(f"{what} was refused by the sandbox: {exc}", field="template") from None
    except jinja2.UndefinedError as exc:
        raise InvalidInput(f"{what}: {exc.message}", field="variables") from None
    except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise InvalidInput(f"{what} failed to render: {type(exc).__name__}: {exc}", field="template") from None
    if len(out) > MAX_OUTPUT_CHARS:
        raise InvalidInput(f"{what} rendered to more than {MAX_OUTPUT_CHARS} characters", field="template")
    return out


# ---- the service -------------------------------------------------------------------------------------------


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_digest(template: str, model: str | None, params: Mapping[str, Any]) -> str:
    return blake3.blake3(_canonical({"template": template, "model": model, "params": params}).encode()).hexdigest()


def _version(row: Any, labels: builtins.list[str]) -> PromptVersion:
    return PromptVersion(name=row.name, version=row.version, template=row.template, model=row.model,
                         params=json.loads(row.params), variables=json.loads(row.variables), digest=row.digest,
                         description=row.description, labels=sorted(labels), creation_time=row.creation_time,
                         created_by=row.created_by)


def diff_versions(a: PromptVersion, b: PromptVersion) -> PromptDiff:
    lines = difflib.unified_diff(a.template.splitlines(keepends=True), b.template.splitlines(keepends=True),
                                 fromfile=a.uri, tofile=b.uri)
    text = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)
    changes: dict[str, builtins.list[Any]] = {}
    if a.model != b.model:
        changes["model"] = [a.model, b.model]
    for key in sorted(set(a.params) | set(b.params)):
        if a.params.get(key, _ABSENT) != b.params.get(key, _ABSENT):
            changes[f"params.{key}"] = [a.params.get(key), b.params.get(key)]
    if a.variables != b.variables:
        changes["variables"] = [a.variables, b.variables]
    return PromptDiff(name=a.name, from_version=a.version, to_version=b.version, template_diff=text,
                      changes=changes)


_ABSENT = object()


class PromptService:
    def __init__(self, engine: Engine, actor: str) -> None:
        self.engine = engine
        self.actor = actor

    def __repr__(self) -> str:
        return "PromptService()"

    def register(self, name: str, template: str, *, model: str | None = None,
                 params: Mapping[str, Any] | None = None, description: str | None = None) -> PromptVersion:
        """A new version when the content (template, model, params) is new; the existing version otherwise."""
        name, template, variables, model, stored, description = check_register(name, template, model, params,
                                                                               description)
        digest = content_digest(template, model, stored)
        now = now_ms()
        with write(self.engine) as conn:
            sql.ensure_prompt(conn, name, description, now, self.actor)
            owner = sql.lock_prompt(conn, name)  # concurrent writers of one prompt queue here (PostgreSQL)
            if not visible(owner):  # names are global: this one is another project's prompt
                raise Conflict(f"prompt name {name!r} is already taken", field="name")
            existing = sql.find_digest(conn, name, digest)
            if existing is None:
                version = sql.next_version(conn, name)
                sql.insert_version(conn, name=name, version=version, template=template, model=model,
                                   params=_canonical(stored), variables=json.dumps(variables), digest=digest,
                                   description=description, creation_time=now, created_by=self.actor)
                audit_append(conn, AuditRecord(self.actor, "prompt.register", "prompt", f"{name}/{version}",
                                               {"digest": digest, "model": model}), now)
            else:
                version = existing
        return self.get(name, version=version)

    def get(self, ref: str, *, version: int | str | None = None, label: str | None = None) -> PromptVersion:
        name, number, label = parse_ref(ref, version, label)
        with read(self.engine) as conn:
            self._require(conn, name)
            if label is not None:
                number = sql.get_label(conn, name, label)
                if number is None:
                    known = ", ".join(sorted(sql.labels(conn, name))) or "none"
                    raise NotFound(f"prompt {name!r} has no label {label!r} (labels: {known})", field="label")
            row = sql.get_version(conn, name, number)
            if row is None:
                if label is not None:
                    raise NotFound(f"label {label!r} of prompt {name!r} points at version {number}, which does "
                                   f"not exist", field="label")
                raise NotFound(f"prompt {name!r} has no version {number}", field="version")
            return _version(row, sql.labels_of(conn, name, row.version))

    def get_prompt(self, name: str) -> Prompt:
        name = check_prompt_name(name)
        with read(self.engine) as conn:
            row = self._require(conn, name)
            return Prompt(name=row.name, project=row.project, description=row.description,
                          latest_version=sql.latest(conn, name) or 0,
                          labels=sql.labels(conn, name), creation_time=row.creation_time,
                          created_by=row.created_by)

    def list(self) -> builtins.list[Prompt]:
        with read(self.engine) as conn:
            labels = sql.all_labels(conn)
            return [Prompt(name=r.name, project=r.project, description=r.description, latest_version=r.latest or 0,
                           labels=labels.get(r.name, {}), creation_time=r.creation_time, created_by=r.created_by)
                    for r in sql.list_prompts(conn)]

    def versions(self, name: str) -> builtins.list[PromptVersion]:
        """Newest first."""
        name = check_prompt_name(name)
        with read(self.engine) as conn:
            self._require(conn, name)
            by_version: dict[int, builtins.list[str]] = {}
            for label, v in sql.labels(conn, name).items():
                by_version.setdefault(v, []).append(label)
            return [_version(r, by_version.get(r.version, [])) for r in sql.list_versions(conn, name)]

    def set_label(self, name: str, label: str, version: int, *, reason: str | None = None) -> PromptVersion:
        """Point `label` at `version` (audited with the version it left); NotFound for a missing version."""
        name, label, version = check_prompt_name(name), check_label(label), check_version(version)
        if reason is not None:
            reason = _text(reason, "reason", MAX_DESCRIPTION_BYTES)
        now = now_ms()
        with write(self.engine) as conn:
            self._require(conn, name)
            if sql.get_version(conn, name, version) is None:
                raise NotFound(f"prompt {name!r} has no version {version}: label {label!r} not moved",
                               field="version")
            previous = sql.get_label(conn, name, label)
            if previous != version:
                sql.set_label(conn, name, label, version, now, self.actor)
                audit_append(conn, AuditRecord(self.actor, "prompt.label", "prompt", name, {
                    "label": label, "version": version, "previous": previous, "reason": reason}), now)
        return self.get(name, version=version)

    def delete_label(self, name: str, label: str) -> None:
        name, label = check_prompt_name(name), check_label(label)
        now = now_ms()
        with write(self.engine) as conn:
            self._require(conn, name)
            previous = sql.get_label(conn, name, label)
            if previous is None:
                raise NotFound(f"prompt {name!r} has no label {label!r}", field="label")
            sql.delete_label(conn, name, label)
            audit_append(conn, AuditRecord(self.actor, "prompt.label_delete", "prompt", name,
                                           {"label": label, "previous": previous}), now)

    def diff(self, name: str, a: int | str, b: int | str) -> PromptDiff:
        """From `a` to `b`, each a version number, 'latest' or a label."""
        name = check_prompt_name(name)
        (va, la), (vb, lb) = parse_selector(a), parse_selector(b)
        return diff_versions(self.get(name, version=va, label=la), self.get(name, version=vb, label=lb))

    @staticmethod
    def _require(conn: Any, name: str) -> Any:
        row = sql.get_prompt(conn, name)
        if row is None:
            raise NotFound(f"prompt {name!r} does not exist", field="name")
        return row
