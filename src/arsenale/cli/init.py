"""`arsenale init ci`: a ready CI workflow that trains, gates the new version against the champion, comments
the report on the pull (merge) request and promotes on merge, plus a starter `gates.toml`.

    arsenale init ci --github --model fraud --train "python train.py" --data dataset:transactions
    arsenale init ci --gitlab --model fraud --train "python train.py" --data dataset:transactions
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import jinja2
import typer

from arsenale.cli import render
from arsenale.errors import Conflict, InvalidInput
from arsenale.registry.models import check_model_name

app = typer.Typer(help="Write project files: a CI workflow with a gate.", no_args_is_help=True)

_TEMPLATES = Path(__file__).resolve().parent.parent / "gates" / "templates" / "ci"
# Values that land inside a shell command line: no quote, no `$`, no backtick can reach the shell.
_SAFE = re.compile(r"^[A-Za-z0-9_.:@/+=,\-]{1,500}$")
TARGETS = {"github": (".github/workflows/arsenale-gate.yml", "github.yml"),
           "gitlab": (".gitlab-ci.yml", "gitlab-ci.yml")}


def _safe(value: str, field: str) -> str:
    if not _SAFE.match(value):
        raise InvalidInput(f"{field} {value!r} may hold only letters, digits and _ . : @ / + = , -", field=field)
    return value


def _render(template: str, **values: object) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=False,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.get_template(template).render(**values)


def write_ci(root: Path, target: str, *, model: str, train: str, data: str, policy: str = "gates.toml",
             branch: str = "main", metric: str = "roc_auc", label: str | None = None,
             install: str = "pip install arsenale", force: bool = False) -> list[Path]:
    """The workflow for `target` (github or gitlab) and, when absent, the policy file; the paths written."""
    from arsenale.gates.metrics import get_metric

    if target not in TARGETS:
        raise InvalidInput(f"target must be one of {', '.join(TARGETS)}", field="target")
    check_model_name(model)
    get_metric(metric)
    for value, field in ((data, "data"), (policy, "policy"), (branch, "branch")):
        _safe(value, field)
    if label is not None:
        _safe(label, "label")
    for value, field in ((train, "train"), (install, "install")):
        if not value.strip() or "\n" in value:
            raise InvalidInput(f"{field} must be one command line", field=field)
    values = {"candidate": f"models:/{model}/latest", "against": f"models:/{model}@champion", "data": data,
              "policy": policy, "branch": branch, "train": train, "install": install, "metric": metric,
              "label": label}
    relative, template = TARGETS[target]
    workflow = root / relative
    if workflow.exists() and not force:
        raise Conflict(f"{workflow} exists; pass --force to overwrite it", field="target")
    written = []
    workflow.parent.mkdir(parents=True, exist_ok=True)
    workflow.write_text(_render(template, **values), encoding="utf-8")
    written.append(workflow)
    policy_path = root / policy
    if not policy_path.exists():
        policy_path.parent.mkdir(parents=True, exist_ok=True)
        policy_path.write_text(_render("gates.toml", **values), encoding="utf-8")
        written.append(policy_path)
    return written


@app.command("ci")
def ci(model: Annotated[str, typer.Option("--model", help="The registered model the training registers.")],
       train: Annotated[str, typer.Option("--train", help="The command that trains and registers a version.")],
       data: Annotated[str, typer.Option("--data", help="The evaluation data: dataset:NAME[@VERSION] or a "
                                         "file in the repository.")],
       github: Annotated[bool, typer.Option("--github", help="Write .github/workflows/arsenale-gate.yml.")]
       = False,
       gitlab: Annotated[bool, typer.Option("--gitlab", help="Write .gitlab-ci.yml.")] = False,
       policy: Annotated[str, typer.Option("--policy", help="The policy file (written if absent).")]
       = "gates.toml",
       branch: Annotated[str, typer.Option("--branch", help="Merges to this branch promote.")] = "main",
       metric: Annotated[str, typer.Option("--metric", help="The starter policy's performance metric.")]
       = "roc_auc",
       label: Annotated[str | None, typer.Option("--label", help="The label column, if the contract has "
                                                 "none.")] = None,
       install: Annotated[str, typer.Option("--install", help="How CI installs the project.")]
       = "pip install arsenale",
       root: Annotated[Path, typer.Option("--root", help="The repository's root.")] = Path("."),
       force: Annotated[bool, typer.Option("--force", help="Overwrite an existing workflow.")] = False) -> None:
    """A CI workflow that trains, gates against the champion, comments the report and promotes on merge."""
    if github == gitlab:
        raise InvalidInput("pass exactly one of --github and --gitlab", field="target")
    for path in write_ci(root, "github" if github else "gitlab", model=model, train=train, data=data,
                         policy=policy, branch=branch, metric=metric, label=label, install=install, force=force):
        render.print_message(f"wrote {path}", "green")
