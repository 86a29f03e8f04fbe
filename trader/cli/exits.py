"""The ``trader`` command's exit codes: one table for ``--help``, the REPL, docs/CLI.md and the README; one error report.

Each code appears once. The errors of ``trader/errors.py`` bring theirs
(several error codes may share an exit code: ``protocol`` and
``frame_too_large``); click's usage errors exit 2, which no error takes; a
configuration error exits 78 (``EX_CONFIG`` of sysexits.h).

:func:`report` is the one place a failure becomes its exit code and its one
line on stderr, for the ``trader`` command and the REPL alike: in JSON mode
``{"error": {"type", "code", "message", "details"}}``, the shape an RPC
error has on the wire (``TraderError.to_wire``; ``details`` only when the
error has any: the nearest valid prices, the accounts managed, the
candidates of an ambiguous symbol).
"""

from __future__ import annotations

import textwrap
from typing import Any

import click

from trader.cli.jsonout import error_document
from trader.errors import EXIT_CODES, USAGE_EXIT_CODE, TraderError, error_from_wire

SUCCESS = 0
DECLINED = 1  # click's Abort: a confirmation answered no
INTERRUPTED = 130  # 128 + SIGINT, as shells report it
HELP_WIDTH = 76  # the table's lines, so that --help reads at 80 columns
USAGE_CODE = "usage"  # the JSON error code of a click usage error
_EXTRA = {
    SUCCESS: "success",
    USAGE_EXIT_CODE: "usage: bad command-line usage (unknown command or option, missing or invalid value)",
    INTERRUPTED: "interrupted (Ctrl-C)",
}


def _first_line(code: str) -> str:
    doc = (type(error_from_wire({"code": code})).__doc__ or "").strip()
    return doc.splitlines()[0].rstrip(".") if doc else code


def exit_codes() -> list[tuple[int, str]]:
    """Return ``(exit code, meaning)`` for every code ``trader`` exits with, each code once, ascending."""
    by_exit: dict[int, list[str]] = {}
    for code, exit_code in EXIT_CODES.items():
        by_exit.setdefault(exit_code, []).append(code)
    rows = dict(_EXTRA)
    for exit_code, codes in by_exit.items():
        if exit_code in rows:
            raise AssertionError(f"exit code {exit_code} is taken twice ({codes} and {rows[exit_code]!r})")
        rows[exit_code] = f"{', '.join(codes)}: {_first_line(codes[0])}"
    rows[DECLINED] += "; or a confirmation declined"
    return sorted(rows.items())


def meaning(exit_code: int) -> str:
    """Return what ``trader`` exiting with ``exit_code`` means (``failed`` for a code it never uses)."""
    return dict(exit_codes()).get(exit_code, "failed")


def epilog() -> str:
    """Return the exit-code table of ``trader --help`` (``\\b`` keeps click from rewrapping it)."""
    lines = ["Exit codes:", "", "\b"]
    for code, text in exit_codes():  # within 80 columns: click indents the epilog by two
        lines += textwrap.wrap(f"{code:<3} {text}", width=HELP_WIDTH, initial_indent="  ",
                               subsequent_indent="      ")
    return "\n".join(lines)


def markdown() -> str:
    """Return the exit codes as a Markdown table, as README.md and docs/CLI.md show them."""
    lines = ["| code | meaning |", "| --- | --- |"]
    lines += [f"| {code} | {text.replace('|', '/')} |" for code, text in exit_codes()]
    return "\n".join(lines)


def error_of(exc: BaseException) -> tuple[dict[str, Any], int]:
    """Return the wire form of a failure (``type``, ``code``, ``message``, ``details`` if any) and its exit code.

    A TraderError brings both; Ctrl-C is ``interrupted`` (130), a declined
    confirmation ``aborted`` (1), a usage error ``usage`` and any other click
    error ``invalid``, with click's exit code.
    """
    if isinstance(exc, TraderError):
        return exc.to_wire(), exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return {"type": "Interrupted", "code": "interrupted", "message": "interrupted"}, INTERRUPTED
    if isinstance(exc, click.Abort):
        return {"type": "Aborted", "code": "aborted", "message": "aborted: a confirmation was answered no"}, DECLINED
    if isinstance(exc, click.ClickException):
        code = USAGE_CODE if isinstance(exc, click.UsageError) else "invalid"
        return {"type": type(exc).__name__, "code": code, "message": exc.format_message()}, exc.exit_code
    raise TypeError(f"not a failure the CLI reports: {exc!r}")


def report(exc: BaseException, as_json: bool) -> int:
    """Print ``exc`` on stderr (one line; JSON with ``as_json``) and return the exit code it ends with.

    Without JSON: a TraderError is ``error (CODE): message``, a usage error
    click's usage and message, Ctrl-C ``interrupted``, a declined
    confirmation ``Aborted!``.
    """
    error, exit_code = error_of(exc)
    error["message"] = " ".join(str(error["message"]).split())  # one line, whatever the message held
    if as_json:
        click.echo(error_document(error), err=True)
    elif isinstance(exc, click.ClickException):
        exc.show()
    elif isinstance(exc, click.Abort):
        click.echo("Aborted!", err=True)
    elif isinstance(exc, KeyboardInterrupt):
        click.echo("interrupted", err=True)
    else:
        click.echo(f"error ({error['code']}): {error['message']}", err=True)
    return exit_code
