"""The `arsenale` command: one Typer sub-app per component, errors mapped to exit codes in one place.

    arsenale [--uri URI] experiments|runs|artifacts|models|datasets|data|features|deploy|monitor|alerts|gate|
                         prompts|index|audit|db|init ...
    arsenale server | ui | serve | version

An `ArsenaleError` never shows a traceback: its message goes to stderr as
`error: <message>` and the process exits with the error class's exit code
(2 bad input, 3 not found, 4 conflict, 5 forbidden/tampered, 6 backend down).
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from arsenale.cli import data, use_uri
from arsenale.errors import ArsenaleError


def _register(app: typer.Typer) -> None:
    """Every sub-app but `data`. Imported on first use: they pull in SQLAlchemy, pandas and scikit-learn,
    which `arsenale data status` (about 100 ms in all) must not pay for."""
    from arsenale.cli import (
        alerts,
        artifacts,
        audit,
        datasets,
        db,
        deploy,
        experiments,
        features,
        gate,
        index,
        init,
        metrics,
        models,
        monitor,
        pipelines,
        projects,
        prompts,
        retention,
        runs,
        secrets,
        server,
        serving,
        tokens,
        traces,
    )

    app.add_typer(experiments.app, name="experiments")
    app.add_typer(runs.app, name="runs")
    app.add_typer(artifacts.app, name="artifacts")
    app.add_typer(models.app, name="models")
    app.add_typer(datasets.app, name="datasets")
    app.add_typer(audit.app, name="audit")
    app.add_typer(deploy.app, name="deploy")
    app.add_typer(monitor.app, name="monitor")
    app.add_typer(features.app, name="features")
    app.add_typer(alerts.app, name="alerts")
    app.add_typer(metrics.app, name="metrics")
    app.add_typer(db.app, name="db")
    app.add_typer(gate.app, name="gate")
    app.add_typer(init.app, name="init")
    app.add_typer(traces.app, name="traces")
    app.add_typer(prompts.app, name="prompts")
    app.add_typer(index.app, name="index")
    app.add_typer(tokens.app, name="tokens")
    app.add_typer(retention.app, name="retention")
    app.add_typer(secrets.app, name="secrets")
    app.command("projects")(projects.projects)
    app.command("server")(server.server)
    app.command("ui")(server.ui)
    app.command("serve")(serving.serve)
    pipelines.register(app)  # `arsenale pipeline …` and `arsenale scheduler`


_loaded: TyperGroup | None = None


def _lazy_group() -> TyperGroup:
    global _loaded
    if _loaded is None:
        lazy = typer.Typer(cls=TyperGroup)
        _register(lazy)
        group = typer.main.get_group(lazy)
        assert isinstance(group, TyperGroup)
        _loaded = group
    return _loaded


class _ArsenaleGroup(TyperGroup):
    """The root group: turns an `ArsenaleError` from any command into a message and an exit code.

    Commands registered on `app` below are loaded eagerly; the others come from `_register` on first use.
    """

    def invoke(self, ctx: Any) -> Any:  # typer.Context; typer vendors its own click
        try:
            return super().invoke(ctx)
        except ArsenaleError as exc:
            from arsenale.cli import render

            render.print_error(exc.message)
            raise typer.Exit(exc.exit_code) from None

    def list_commands(self, ctx: Any) -> list[str]:
        lazy = _lazy_group().list_commands(ctx)
        return [*lazy, *(name for name in super().list_commands(ctx) if name not in lazy)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        return super().get_command(ctx, cmd_name) or _lazy_group().get_command(ctx, cmd_name)


app = typer.Typer(
    cls=_ArsenaleGroup,
    name="arsenale",
    help="Arsenale: the whole lifecycle of a machine-learning model, from raw data to a monitored endpoint.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(data.app, name="data")


@app.callback()
def _root(
    uri: Annotated[str | None, typer.Option(
        "--uri", help="Where metadata lives: a path, sqlite:///…, postgresql://… or http(s)://… "
                      "(overrides ARSENALE_URI).")] = None,
    project: Annotated[str | None, typer.Option(
        "--project", help="Work inside one project: create there and see only its things "
                          "(overrides ARSENALE_PROJECT).")] = None,
) -> None:
    use_uri(uri)
    if project is not None:
        from arsenale.security.projects import check_project_name

        os.environ["ARSENALE_PROJECT"] = check_project_name(project)


@app.command("version")
def version() -> None:
    """Print Arsenale's version."""
    from arsenale import __version__

    typer.echo(f"arsenale {__version__}")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except ArsenaleError as exc:  # raised outside a command, e.g. while parsing
        from arsenale.cli import render

        render.print_error(exc.message)
        sys.exit(exc.exit_code)
    except BrokenPipeError:  # `arsenale runs list x --json | head`: the reader left; not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(141)


if __name__ == "__main__":
    main()
