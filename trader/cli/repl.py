"""The interactive shell: ``trader repl`` runs trader commands line by line in one process.

Each line is split like a shell would (``shlex``) and run through the same
click group as the ``trader`` command, in-process. An error prints its exit
code and what that code means, and the session goes on; ``exit``, ``quit``
or Ctrl-D end it. :class:`Repl` takes any iterable of lines, so the loop runs
without a terminal; only :func:`repl` (the command) uses prompt_toolkit, for
history under the run directory and completion of commands, options,
symbols and strategy names named by an earlier command that succeeded, and
the names the running stack knows (strategies, open order ids, pycron's
jobs, streamed keys: trader.cli.names, fetched in the background and cached
a few seconds, so a stopped stack never holds up the prompt).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import click
from rich.console import Console

from trader.cli import exits
from trader.cli.context import CliContext, pass_cli
from trader.cli.jsonout import json_requested
from trader.cli.names import LiveNames, stack_fetchers
from trader.errors import USAGE_EXIT_CODE, InternalError

LEAVE = frozenset({"exit", "quit"})
BUILTINS = ("help", "exit", "quit")
SYMBOL_PARAMS = ("symbol", "symbols", "key", "keys")  # `snapshot` and `resolve` take several
STRATEGY_GROUP, STRATEGY_PARAM = "strategy", "name"  # `strategy enable NAME` and the like
GLOBAL_OPTIONS = {"--json": 0, "--profile": 1}  # option -> how many values follow
ORDER_PARAM = "client_order_id"  # `book cancel ID`, `book modify ID`
JOB_GROUP, JOB_PARAM = "pycron", "job"  # `pycron restart JOB`
VALUE_OPTIONS = {"--strategy": "strategy", "--order": "order"}  # an option whose value is a name


def register(group: click.Group) -> None:
    """Add the ``repl`` command to the ``trader`` group."""
    group.add_command(repl)


def _command_path(
    group: click.Group, words: Sequence[str]
) -> tuple[click.Command, list[str], list[str]]:
    """Return the command ``words`` name, the names leading to it, and the words after them.

    Global options before the first command name are skipped.
    """
    command: click.Command = group
    path: list[str] = []
    rest = list(words)
    while rest and isinstance(command, click.Group):
        word = rest[0]
        if not path and word in GLOBAL_OPTIONS:
            del rest[: 1 + GLOBAL_OPTIONS[word]]
            continue
        sub = command.commands.get(word)
        if sub is None:
            break
        command, path, rest = sub, [*path, word], rest[1:]
    return command, path, rest


def completions(
    group: click.Group,
    text: str,
    symbols: Iterable[str],
    strategies: Iterable[str] = (),
    *,
    orders: Iterable[str] = (),
    jobs: Iterable[str] = (),
) -> list[str]:
    """Return the words that may complete the last word of ``text``.

    Commands, options, and for an argument (or the value of ``--strategy`` and
    ``--order``) the ``symbols``, ``strategies``, order ids (``orders``) or
    pycron ``jobs`` given.
    """
    try:
        words = shlex.split(text)
    except ValueError:
        return []
    current = words.pop() if words and text and not text[-1].isspace() else ""
    command, path, _ = _command_path(group, words)
    arguments = {p.name for p in command.params if isinstance(p, click.Argument)}
    previous = words[-1] if words and len(words) > len(path) else ""
    if previous in VALUE_OPTIONS:
        candidates = sorted(strategies if VALUE_OPTIONS[previous] == "strategy" else orders)
    elif current.startswith("-"):
        candidates = [opt for p in command.params if isinstance(p, click.Option) for opt in p.opts]
    elif isinstance(command, click.Group):
        candidates = sorted(command.commands) + (list(BUILTINS) if not path else [])
    elif arguments & set(SYMBOL_PARAMS):
        candidates = sorted(symbols)
    elif _takes_strategy(command, path):
        candidates = sorted(strategies)
    elif ORDER_PARAM in arguments:
        candidates = sorted(orders)
    elif path[:1] == [JOB_GROUP] and JOB_PARAM in arguments:
        candidates = sorted(jobs)
    else:
        candidates = []
    return [c for c in candidates if c.startswith(current) and c != current]


def _takes_strategy(command: click.Command, path: Sequence[str]) -> bool:
    """Return whether ``command`` (reached by ``path``) takes a strategy's name as argument."""
    arguments = (p.name for p in command.params if isinstance(p, click.Argument))
    return path[:1] == [STRATEGY_GROUP] and STRATEGY_PARAM in arguments


class Repl:
    """Run lines of trader commands through ``group`` in-process; report errors on ``console``."""

    def __init__(
        self, group: click.Group, console: Console, *, global_args: Sequence[str] = ()
    ) -> None:
        self.group = group
        self.console = console
        self.global_args = list(global_args)
        self.symbols: set[str] = set()
        self.strategies: set[str] = set()
        self.last_exit = 0

    def run(self, lines: Iterable[str]) -> int:
        """Run every line until one says ``exit`` or ``quit``; return the last exit code."""
        for line in lines:
            if not self.run_line(line):
                break
        return self.last_exit

    def run_line(self, line: str) -> bool:
        """Run one line; return False when it asks to leave."""
        text = line.strip()
        if not text or text.startswith("#"):
            return True
        try:
            words = shlex.split(text)
        except ValueError as exc:
            self._failed(USAGE_EXIT_CODE, f"cannot split the line: {exc}")
            return True
        if words[0] == "trader":  # typed out of habit
            words = words[1:]
        if not words:
            return True
        if words[0] in LEAVE:
            return False
        if words[0] == "help":
            self._help(words[1:])
            return True
        if words[0] == "repl":
            self._failed(USAGE_EXIT_CODE, "already in the REPL")
            return True
        self.last_exit = self._invoke(words)
        if self.last_exit == 0:
            self._remember(words)
        else:
            self.console.print(
                f"exit {self.last_exit}: {exits.meaning(self.last_exit)}",
                style="dim",
                highlight=False,
            )
        return True

    def _failed(self, code: int, message: str) -> None:
        self.last_exit = code
        self.console.print(f"error: {message}", style="red", highlight=False, markup=False)
        self.console.print(f"exit {code}: {exits.meaning(code)}", style="dim", highlight=False)

    def _invoke(self, words: list[str]) -> int:
        """Run the words as a trader command line; return its exit code (never raise)."""
        try:
            result = self.group.main(
                [*self.global_args, *words], prog_name="trader", standalone_mode=False
            )
        except (click.ClickException, click.Abort, KeyboardInterrupt) as exc:
            # a TraderError already became an exit code, reported by the group as here
            return exits.report(exc, json_requested([*self.global_args, *words]))
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else InternalError.exit_code
        except Exception as exc:  # noqa: BLE001 - a bug in one command must not end the session
            bug = InternalError(f"{type(exc).__name__}: {exc}")
            return exits.report(bug, json_requested([*self.global_args, *words]))
        return result if isinstance(result, int) else 0

    def _help(self, words: list[str]) -> None:
        self.last_exit = self._invoke([*words, "--help"])
        if self.last_exit:
            self.console.print(
                f"exit {self.last_exit}: {exits.meaning(self.last_exit)}",
                style="dim",
                highlight=False,
            )
        elif not words:
            self.console.print(
                "In the REPL: `help COMMAND` for one command, `exit`, `quit` or Ctrl-D to leave."
            )

    def _remember(self, words: list[str]) -> None:
        """Keep the symbols and strategy names a successful command named, for completion."""
        command, path, rest = _command_path(self.group, words)
        if isinstance(command, click.Group) or not path:
            return
        try:
            ctx = command.make_context(path[-1], rest, resilient_parsing=True)
        except click.ClickException:
            return
        for name in SYMBOL_PARAMS:
            value: Any = ctx.params.get(name)
            if isinstance(value, str) and value:
                self.symbols.add(value.upper())
            elif isinstance(value, tuple):
                self.symbols.update(str(v).upper() for v in value)
        strategy = ctx.params.get(STRATEGY_PARAM)
        if _takes_strategy(command, path) and isinstance(strategy, str) and strategy:
            self.strategies.add(strategy)


def _prompted(session: Any, message: str) -> Iterator[str]:
    """Yield the lines typed at the prompt; Ctrl-C clears the line, Ctrl-D ends."""
    while True:
        try:
            yield session.prompt(message)
        except KeyboardInterrupt:
            continue
        except EOFError:
            return


@click.command()
@pass_cli
@click.pass_context
def repl(ctx: click.Context, cli: CliContext) -> None:
    """Run trader commands interactively, with history and completion (`help`, `exit`).

    Exits with the last command's exit code, as a shell does (a piped script keeps its status).

    \b
    Examples:
      trader repl
      trader --json repl
      echo portfolio | trader repl  # a script: one command a line
    JSON:
      each command's own (`trader --json repl`: every command in JSON)
    Exits: the last command's
    """
    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import Completer, Completion
    from prompt_toolkit.history import FileHistory

    root = ctx.find_root().command
    assert isinstance(root, click.Group)
    group: click.Group = root  # narrowed for the completer class below too
    settings = cli.settings()
    run_dir = settings.path(settings.storage.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    global_args = (["--profile", cli.profile] if cli.profile else []) + (
        ["--json"] if cli.json else []
    )
    shell = Repl(group, cli.console, global_args=global_args)
    live = LiveNames(stack_fetchers(cli))

    class _Completer(Completer):
        def get_completions(self, document: Any, complete_event: Any) -> Iterator[Completion]:
            text = document.text_before_cursor
            current = "" if not text or text[-1].isspace() else text.split()[-1]
            words = completions(group, text, shell.symbols | live.get("key"),
                                shell.strategies | live.get("strategy"),
                                orders=live.get("order"), jobs=live.get("job"))
            for word in words:
                yield Completion(word, start_position=-len(current))

    session: PromptSession[str] = PromptSession(
        history=FileHistory(str(run_dir / "repl_history")), completer=_Completer()
    )
    profile = "" if settings.profile == "default" else f"[{settings.profile}]"
    cli.console.print(
        f"trader {settings.profile} profile; `help` lists the commands, `exit` or Ctrl-D leaves",
        style="dim",
        highlight=False,
    )
    ctx.exit(shell.run(_prompted(session, f"trader{profile}> ")))  # as a shell does: the last command's status
