"""The ``trader`` command: global options, one error-to-exit-code mapping, and the command modules.

Each family of commands lives in its own module and is added in
``COMMAND_MODULES``; a module exposes ``register(group)``. Any ``TraderError``
a command raises ends the process with that error's ``exit_code`` and one
line on stderr (``exits.report``, which the REPL shares); a usage error ends
it with click's 2.

``--json`` is one option, which the group adds to every command it is given
and to their subcommands (:func:`add_json_option`): ``trader --json book``
and ``trader book --json`` are the same. It is eager, so it holds for the
errors met while the rest of the line is read; in JSON mode an error is
``{"error": {"type", "code", "message", "details"}}`` on stderr (details only
when the error has any), with the same exit code.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import click

from trader.cli import (
    account,
    book,
    close,
    data,
    exits,
    history,
    instruments,
    jobs,
    keys,
    kill_switch,
    market,
    orders,
    repl,
    research,
    stack,
    strategy,
    universes,
)
from trader.cli.context import CliContext
from trader.cli.jsonout import JSON_FLAG, json_requested
from trader.errors import TraderError

COMMAND_MODULES: tuple[ModuleType, ...] = (
    stack, jobs, orders, book, account, instruments, kill_switch, close, market, strategy, history, data,
    universes, keys, research, repl,
)
JSON_HELP = "Print machine-readable JSON instead of tables (and errors as JSON on stderr)."


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(CliContext).json = True


def add_json_option(command: click.Command) -> None:
    """Give ``command`` and every command under it the shared ``--json`` flag (once each)."""
    if not any(JSON_FLAG in param.opts for param in command.params):
        command.params.append(
            click.Option([JSON_FLAG], is_flag=True, expose_value=False, is_eager=True,
                         callback=_set_json, help=JSON_HELP)
        )
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_json_option(sub)


def _json_mode(ctx: click.Context | None, args: Sequence[str]) -> bool:
    """Return whether the line asked for JSON: the flag was read, or is among the words before ``--``."""
    found = ctx.find_object(CliContext) if ctx is not None else None
    return (found is not None and found.json) or json_requested(args)


class TraderGroup(click.Group):
    """A click group that adds ``--json`` everywhere and turns every failure into an exit code and one line."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        """Add ``cmd`` (and the commands under it) with the shared ``--json`` flag."""
        add_json_option(cmd)
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a TraderError or Ctrl-C becomes its exit code and one line on stderr."""
        try:
            return super().invoke(ctx)
        except (TraderError, KeyboardInterrupt) as exc:  # click would call Ctrl-C an abort (1)
            raise click.exceptions.Exit(exits.report(exc, _json_mode(ctx, ()))) from None

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run as click does; in standalone mode report usage errors and aborts as JSON in JSON mode."""
        words = list(sys.argv[1:] if args is None else args)
        if not standalone_mode:  # the REPL: it reports errors itself
            return super().main(words, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(words, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            sys.exit(exits.report(exc, _json_mode(getattr(exc, "ctx", None), words)))
        except click.Abort as exc:
            sys.exit(exits.report(exc, _json_mode(None, words)))
        sys.exit(result if isinstance(result, int) else 0)


@click.group(
    cls=TraderGroup,
    epilog=exits.epilog(),
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--profile", default=None, help="Settings profile (default: TRADER_PROFILE or 'default')."
)
@click.pass_context
def cli(ctx: click.Context, profile: str | None) -> None:
    """Run and control the trading platform."""
    ctx.ensure_object(CliContext).profile = profile


add_json_option(cli)
for _module in COMMAND_MODULES:
    _module.register(cli)
