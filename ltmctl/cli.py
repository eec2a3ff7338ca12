"""The root command: global options, the sub-apps, and the one handler that renders every LtmctlError."""

from __future__ import annotations

import copy
import traceback
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from ltmctl import __version__
from ltmctl.commands import api as api_cmd
from ltmctl.commands import config as config_cmd
from ltmctl.commands import demo as demo_cmd
from ltmctl.commands import deploy as deploy_cmd
from ltmctl.commands import destroy as destroy_cmd
from ltmctl.commands import dlq as dlq_cmd
from ltmctl.commands import init as init_cmd
from ltmctl.commands import local as local_cmd
from ltmctl.commands import logs as logs_cmd
from ltmctl.commands import metrics as metrics_cmd
from ltmctl.commands import monitoring as monitoring_cmd
from ltmctl.commands import provision as provision_cmd
from ltmctl.commands import publish as publish_cmd
from ltmctl.commands import query as query_cmd
from ltmctl.commands import status as status_cmd
from ltmctl.commands import verify as verify_cmd
from ltmctl.errors import LtmctlError


@dataclass
class State:
    """Global options, handed to every command through ctx.obj."""

    config: str | None = None
    env: str | None = None  # one name, or a selection: a list and/or glob patterns (ltmctl.fleet.selection)
    debug: bool = False
    command: str | None = None  # the command being run, for errors that name it
    # Global options given on the command line, by name: (value, the command they followed), for `give`.
    given: dict[str, tuple[Any, str]] = field(default_factory=dict)

    def give(self, name: str, value: Any, where: str) -> None:
        """A global option given on the command line, before or after any command. Given twice with different
        values (`ltmctl --env dev deploy --env prod`) is refused rather than resolved by position: an environment
        picked by a rule the user has to remember is how a deploy lands in the wrong project."""
        from ltmctl.errors import UsageError

        if name in self.given and self.given[name][0] != value:
            before, first = self.given[name]
            flag = GLOBAL_FLAGS[name]
            raise UsageError(f"{flag} is given twice with different values: {before!r} after `{first}` and "
                             f"{value!r} after `{where}`.", hint=f"Give {flag} once, before or after the command.")
        self.given.setdefault(name, (value, where))
        setattr(self, name, value)

    def load(self) -> Any:
        """The one environment selected; a command that acts on one refuses a selection of several."""
        from ltmctl.fleet import selection

        return selection.require_one(self.load_many(), self.command)

    def load_many(self) -> list[Any]:
        """Every environment `--env` selects, in config order (`metrics`, `status`, `verify`)."""
        from ltmctl.fleet import selection

        return selection.load(self.config, self.env)

    def environment(self) -> Any:
        """The selected environment as its backend reaches it (`ltmctl.environments.Environment`)."""
        from ltmctl.environments import open_environment

        return open_environment(self.load())


# The root's options that every command and group also takes, after its name: one meaning everywhere.
GLOBAL_FLAGS = {"config": "--config", "env": "--env", "debug": "--debug"}


def _given_after(ctx: Any, param: Any, value: Any) -> Any:
    from typer._click.core import ParameterSource

    # The environment variable is the root's to read: here only what was typed counts (and may conflict).
    if ctx.get_parameter_source(param.name) == ParameterSource.COMMANDLINE:
        state = ctx.find_object(State)
        if state is None:  # no root callback ran (a command invoked on its own)
            state = ctx.find_root().obj = State()
        state.give(param.name, value, ctx.command_path)
    return value


def _add_global_options(root: Any) -> None:
    """Give every command and group below the root a copy of the root's global options: accepted after the
    command name as before it, and listed in each command's --help. The copies hand their value to the State
    (never to the command's function), so a command's code is the same whichever side they were given on."""
    options = [p for p in root.params if p.name in GLOBAL_FLAGS]

    def walk(command: Any) -> None:
        for sub in getattr(command, "commands", {}).values():
            for option in options:
                twin = copy.copy(option)
                twin.expose_value, twin.callback = False, _given_after
                sub.params.append(twin)
            walk(sub)

    walk(root)


class _Group(TyperGroup):
    def __init__(self, **kwargs: Any) -> None:
        from ltmctl.commands.metavars import make_readable

        super().__init__(**kwargs)
        _add_global_options(self)
        make_readable(self)

    # Every command runs inside the root group's invoke, so this is the one place errors are rendered.
    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LtmctlError as exc:
            from ltmctl import ui

            state = ctx.obj if isinstance(ctx.obj, State) else State()
            if state.debug:
                ui.err.print(traceback.format_exc())
            ui.print_error(exc.title, exc.message, exc.hint)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    cls=_Group,
    help="Provision, deploy and operate the LTM event pipeline, on Google Cloud or on local emulators.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# Registration order is the order of `ltmctl --help`: set-up first, then daily use.
app.add_typer(config_cmd.app, name="config")
app.add_typer(local_cmd.app, name="local")
app.command("demo")(demo_cmd.demo)
app.command("publish")(publish_cmd.publish)
app.command("query")(query_cmd.query)
app.add_typer(api_cmd.app, name="api")
app.add_typer(dlq_cmd.app, name="dlq")
# Google Cloud: set up an environment, create its resources, check them, tear them down.
app.command("init")(init_cmd.init)
app.command("provision")(provision_cmd.provision)
app.command("deploy")(deploy_cmd.deploy)
app.command("status")(status_cmd.status)
app.command("verify")(verify_cmd.verify)
app.command("destroy")(destroy_cmd.destroy)
app.command("metrics")(metrics_cmd.metrics)
app.command("logs")(logs_cmd.logs)
app.add_typer(monitoring_cmd.app, name="monitoring")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ltmctl {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[str | None, typer.Option("--config", help="Config file (default: config/ltm.yaml).",
                                               envvar="LTM_CONFIG", show_envvar=True)] = None,
    env: Annotated[str | None, typer.Option(
        "--env", "-e", help="Environment to use (default: local); metrics, status and verify also take a list or "
                            "a pattern: dev,prod or 'prod-*'.", envvar="LTM_ENV", show_envvar=True)] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version.")] = False,
) -> None:
    from typer._click.core import ParameterSource

    ctx.obj = State(config=config, env=env, debug=debug, command=ctx.invoked_subcommand)
    for name, value in (("config", config), ("env", env), ("debug", debug)):
        if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE:
            ctx.obj.given[name] = (value, "ltmctl")


if __name__ == "__main__":  # python -m ltmctl.cli
    app(prog_name="ltmctl")
