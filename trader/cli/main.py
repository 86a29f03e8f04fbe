"""The ``trader`` command: global options, one error-to-exit-code mapping, and the command modules.

Each family of commands lives in its own module and is added in
``COMMAND_MODULES``; a module exposes ``register(group)``. Any ``TraderError``
a command raises ends the process with that error's ``exit_code`` and one
line on stderr, here and nowhere else.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import click

from trader.cli import keys, market, positions, repl, stack, strategy, trading
from trader.cli.context import CliContext
from trader.errors import EXIT_CODES, TraderError, error_from_wire

COMMAND_MODULES: tuple[ModuleType, ...] = (stack, trading, positions, market, strategy, keys, repl)
INTERRUPTED = 130  # 128 + SIGINT, as shells report it


def _exit_code_epilog() -> str:
    lines = ["Exit codes:", "", "\b", "  0   success"]
    for code, exit_code in sorted(EXIT_CODES.items(), key=lambda item: (item[1], item[0])):
        doc = (type(error_from_wire({"code": code})).__doc__ or "").strip().splitlines()[0]
        note = " (also: bad command-line usage)" if exit_code == 2 else ""
        lines.append(f"  {exit_code:<3} {code}: {doc}{note}")
    lines += ["  1   a confirmation declined, or an unexpected error", f"  {INTERRUPTED:<3} interrupted (Ctrl-C)"]
    return "\n".join(lines)


class TraderGroup(click.Group):
    """A click group that turns a ``TraderError`` into its exit code and a one-line message."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TraderError as exc:
            message = " ".join(str(exc).split())  # one line, whatever the message held
            click.echo(f"error ({exc.code}): {message}", err=True)
            raise click.exceptions.Exit(exc.exit_code) from None
        except KeyboardInterrupt:  # click would call it an abort (1), like a declined confirmation
            click.echo("interrupted", err=True)
            raise click.exceptions.Exit(INTERRUPTED) from None


@click.group(
    cls=TraderGroup,
    epilog=_exit_code_epilog(),
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--profile", default=None, help="Settings profile (default: TRADER_PROFILE or 'default')."
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of tables."
)
@click.pass_context
def cli(ctx: click.Context, profile: str | None, as_json: bool) -> None:
    """Run and control the trading platform."""
    ctx.obj = CliContext(profile=profile, json=as_json)


for _module in COMMAND_MODULES:
    _module.register(cli)
