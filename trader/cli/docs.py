"""docs/CLI.md, generated from the click command tree: ``python -m trader.cli.docs > docs/CLI.md``.

Every command's usage and options come from click; its example and JSON
shape from the ``Examples:`` and ``JSON:`` sections of its help text (the
docstring, or the epilog), which ``--help`` shows too; the exit codes from
trader.cli.exits; the shapes of orders, fills, positions and contracts from
the domain dataclasses. tests/cli/test_docs.py fails when docs/CLI.md is not
what this module writes, or when a command has no example or no JSON shape.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
import typing
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from types import NoneType, UnionType
from typing import Any

import click

from trader.cli import exits
from trader.domain import Contract, Fill, Order, Position

COMMON_OPTIONS = {"--json", "--help"}  # on every command: said once, under Conventions
HEADER = re.compile(r"^\s*(Examples|JSON|Exits):\s*(.*)$")
REGENERATE = "python -m trader.cli.docs > docs/CLI.md"
# Shapes returned as plain mappings (not dataclasses): written here, next to the generated ones.
MAPPING_SHAPES = {
    "Tick": {
        "instrument": "string: the contract key (`AAPL.STK`)", "time": "time", "bid": "number | null",
        "ask": "number | null", "last": "number | null", "bid_size": "number | null",
        "ask_size": "number | null", "last_size": "number | null", "volume": "number | null",
    },
    "Job": {
        "name": "string", "state": "string: PENDING, STARTING, RUNNING, BACKOFF, STOPPING, STOPPED, FAILED, "
        "SCHEDULED or COMPLETED", "pid": "integer | null", "started_at": "time | null", "uptime": "number | null "
        "(seconds)", "restarts": "integer", "healthy": "boolean", "ready": "boolean", "last_exit": "integer | null",
        "heartbeat": "{state, age} | null", "next_run": "time | null", "log": "string: the job's log file",
    },
    "Holding": {
        "account": "string (`portfolio` only)", "key": "string (`portfolio` only)",
        "contract": "Contract (`portfolio` only)", "quantity": "number: signed, negative is short",
        "avg_cost": "number: per unit, without the multiplier, with the opening commissions",
        "market_price": "number | null", "market_value": "number | null: quantity x price x multiplier",
        "realized_pnl": "number | null: net of commissions", "commission": "number | null: every commission "
        "paid, already inside the PnL (null in `portfolio`: IB gives none per position)",
        "unrealized_pnl": "number | null", "net_pnl": "number | null: realized + unrealized",
        "price_decimals": "integer: the decimals a price of the instrument shows",
    },
    "Error": {
        "type": "string: the error's class (`NotFound`)", "code": "string: `not_found`, `invalid`... (Exit codes)",
        "message": "string", "details": "object, only when the error has any: the nearest valid prices of a price "
        "off the tick grid, the accounts the login manages, an ambiguous symbol's candidates",
    },
    "Strategy": {
        "name": "string", "state": "string: RUNNING, DEGRADED, WAITING_HISTORY, INSTALLED, DISABLED or ERROR",
        "reason": "string | null", "starved": "string | null: why no tick came (DEGRADED)",
        "instruments": "[string]", "bar_size": "string", "positions": "{key: number}",
        "holdings": "{key: Holding}: the money figures of each instrument it traded",
        "realized_pnl": "number", "unrealized_pnl": "number | null", "commission": "number",
        "net_pnl": "number | null: realized + unrealized", "orders": "integer", "fills": "integer",
        "drift": "object | null: the last `strategy drift --record` (its JSON without orders and notes, and "
        "`time`; or `score` null and `error`)",
        "...": "class, file, keys, warmup, bars, targets, ticks, ticks_dropped, signal_ms",
    },
}


def sections(command: click.Command) -> dict[str, str]:
    """Return a command's help split in its description and its ``Examples``, ``JSON``, ``Exits`` blocks.

    A block starts at a line ``Examples:`` (its text may follow on the line)
    and holds the lines indented under it; the first line back at the
    header's indent that is not a header ends it, and goes to the
    description. A header met twice (in the help and the epilog) adds to its
    block. Click's ``\\b`` lines are left out.
    """
    text = "\n".join(inspect.cleandoc(part) for part in (command.help or "", command.epilog or "") if part)
    found: dict[str, list[str]] = {"": []}
    current, margin = "", 0
    for raw in text.splitlines():
        line = raw.replace("\b", "")
        if not line.strip() and raw.strip():  # click's no-rewrap mark alone on its line
            continue
        header = HEADER.match(line)
        indent = len(line) - len(line.lstrip())
        if header:
            current, margin = header.group(1), indent
            found.setdefault(current, [])
            if header.group(2):
                found[current].append(" " * (margin + 2) + header.group(2))
        else:
            if current and line.strip() and indent <= margin:
                current = ""
            found[current].append(line)
    return {name: _dedent(lines) for name, lines in found.items()}


def _dedent(lines: list[str]) -> str:
    body = list(lines)
    while body and not body[0].strip():
        body.pop(0)
    while body and not body[-1].strip():
        body.pop()
    margin = min((len(line) - len(line.lstrip()) for line in body if line.strip()), default=0)
    return "\n".join(line[margin:] for line in body)


def walk(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Yield ``(names, command)`` for ``command`` and every command under it, depth first, in name order."""
    yield path, command
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            yield from walk(command.commands[name], (*path, name))


def runnable(command: click.Command) -> bool:
    """Return whether the command does something itself (a group does only with ``invoke_without_command``)."""
    return not isinstance(command, click.Group) or command.invoke_without_command


def examples(command: click.Command) -> list[str]:
    """Return the command lines of a command's ``Examples:`` block (comments and blank lines left out)."""
    lines = (line.split("  #")[0].strip() for line in sections(command).get("Examples", "").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


# -- shapes ---------------------------------------------------------------------------------------


def _type_name(hint: Any) -> str:
    if isinstance(hint, UnionType) or typing.get_origin(hint) is typing.Union:
        return " | ".join(_type_name(arg) for arg in typing.get_args(hint))
    if hint is NoneType:
        return "null"
    if isinstance(hint, type) and issubclass(hint, Enum):
        return "string: " + ", ".join(str(member.value) for member in hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return hint.__name__
    names = {Decimal: "number", bool: "boolean", int: "integer", float: "number", str: "string",
             datetime: "time", date: "date"}
    return names.get(hint, str(hint))


def shapes() -> list[str]:
    """Return the Markdown of the JSON shapes: the domain dataclasses' fields, then the mappings."""
    out: list[str] = []
    for cls in (Order, Fill, Position, Contract):
        hints = typing.get_type_hints(cls)
        fields = {f.name: _type_name(hints[f.name]) for f in dataclasses.fields(cls) if f.name != "_"}
        if cls is Contract:
            fields["key"] = "string: the contract key"
        out += [f"### {cls.__name__}", "", "| field | JSON |", "| --- | --- |"]
        out += [f"| `{name}` | {_cell(kind)} |" for name, kind in fields.items()]
        out.append("")
    for name, fields in MAPPING_SHAPES.items():
        out += [f"### {name}", "", "| field | JSON |", "| --- | --- |"]
        out += [f"| `{key}` | {_cell(kind)} |" for key, kind in fields.items()]
        out.append("")
    return out


# -- commands ---------------------------------------------------------------------------------------


def _context(root: click.Command, path: tuple[str, ...]) -> click.Context:
    ctx = click.Context(root, info_name="trader")
    command = root
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
        ctx = click.Context(command, info_name=name, parent=ctx)
    return ctx


def _usage(command: click.Command, ctx: click.Context) -> str:
    return " ".join(["Usage:", ctx.command_path, *command.collect_usage_pieces(ctx)])


def _cell(text: str) -> str:
    """Return ``text`` fit for a Markdown table cell (a ``|`` escaped)."""
    return text.replace("|", "\\|")


def _options(command: click.Command, ctx: click.Context) -> list[str]:
    rows = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None or not isinstance(param, click.Option) or set(param.opts) & COMMON_OPTIONS:
            continue
        flags, help_text = record
        rows.append(f"| `{_cell(flags)}` | {_cell(' '.join(help_text.split()))} |")
    return ["| option | meaning |", "| --- | --- |", *rows] if rows else []


def command_section(root: click.Command, path: tuple[str, ...], command: click.Command) -> list[str]:
    """Return the Markdown of one command: description, usage, options, examples, JSON, exit codes."""
    ctx = _context(root, path)
    parts = sections(command)
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", parts[""]) if p.strip()]
    out = [f"## `trader {' '.join(path)}`", "", "\n\n".join(paragraphs), "", "```", _usage(command, ctx), "```", ""]
    if isinstance(command, click.Group):
        names = ", ".join(f"`{name}`" for name in sorted(command.commands))
        out += [f"Subcommands: {names}.", ""]
    options = _options(command, ctx)
    out += [*options, ""] if options else []
    if parts.get("Examples"):
        out += ["Examples:", "", "```bash", parts["Examples"], "```", ""]
    if parts.get("JSON"):
        out += ["JSON (`--json`):", "", "```", parts["JSON"], "```", ""]
    if runnable(command):
        extra = parts.get("Exits", "")
        common = f"0 success, {exits.USAGE_EXIT_CODE} bad usage"
        out += [f"Exit codes: {common}{'; ' + ' '.join(extra.split()) if extra else ''}.", ""]
    return out


def generate(root: click.Command) -> str:
    """Return docs/CLI.md for the command tree under ``root``."""
    out = [
        "# The `trader` command line",
        "",
        f"Generated from the click command tree by `{REGENERATE}`; do not edit by hand",
        "(tests/cli/test_docs.py fails when this file and the commands differ).",
        "",
        "## Conventions",
        "",
        "- Every command takes `-h`/`--help` and `--json` (not repeated in the option tables below).",
        "- `--json` goes anywhere on the line: `trader --json book` and `trader book --json` are the same.",
        "  Output is then JSON on stdout (a stream, `subscribe listen` and `strategy logs --follow`: one",
        "  object per line). A failure is one line of JSON on stderr, `{\"error\": Error}`:",
        '  `{"error": {"type": "NotFound", "code": "not_found", "message": "...", "details": {...}}}`,',
        "  with the exit code of the table below (a usage error: type `UsageError` or a subclass, code",
        "  `usage`, exit 2). A row of `snapshot` or `close` that failed carries the same `Error`.",
        "- Quantities, prices and amounts are JSON numbers written with their exact decimal digits",
        "  (`229.12`, `0.00001`), never rounded through a binary float: parse them as decimals to keep",
        "  every digit (Python: `json.loads(text, parse_float=Decimal)`). A value that is not a finite",
        "  number is `null`; no number is ever a string.",
        "- Times in JSON are ISO 8601 with their offset; in tables they are UTC and say so",
        "  (`14:03:07 UTC`; another day: `12-06 14:03 UTC`).",
        "- Tables fit the terminal: the least important columns go first, ids are cut in the middle",
        "  (`3f9a…1.sl`); an order's time, symbol, side, quantity, type, price and status always show.",
        "",
        "## Exit codes",
        "",
        exits.markdown(),
        "",
        "## JSON shapes",
        "",
        "The `JSON` of each command names these objects.",
        "",
        *shapes(),
    ]
    for path, command in walk(root):
        if path:
            out += command_section(root, path, command)
    return "\n".join(out).rstrip() + "\n"


def main() -> None:
    """Print docs/CLI.md for the ``trader`` command on stdout."""
    from trader.cli.main import cli

    sys.stdout.write(generate(cli))


if __name__ == "__main__":
    main()
