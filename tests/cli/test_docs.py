"""docs/CLI.md is what trader.cli.docs generates, and every command documents an example and its JSON."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from trader.cli import docs
from trader.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = [(path, command) for path, command in docs.walk(cli) if path]


def test_docs_cli_md_is_the_generated_text() -> None:
    written = (ROOT / "docs" / "CLI.md").read_text()
    assert written == docs.generate(cli), f"docs/CLI.md is stale: run `{docs.REGENERATE}`"
    assert docs.REGENERATE in (ROOT / "README.md").read_text()


def test_every_command_has_an_example_and_every_runnable_one_its_json() -> None:
    missing = [" ".join(path) for path, command in COMMANDS if not docs.examples(command)]
    assert not missing, f"no Examples: block in {missing}"
    no_json = [" ".join(path) for path, command in COMMANDS
               if docs.runnable(command) and not docs.sections(command).get("JSON")]
    assert not no_json, f"no JSON: block in {no_json}"
    text = docs.generate(cli)
    for path, _ in COMMANDS:
        assert f"## `trader {' '.join(path)}`" in text


def test_every_example_is_a_valid_command_line_of_its_command() -> None:
    for path, command in COMMANDS:
        for line in docs.examples(command):
            words = shlex.split(line.split("|")[-1].strip())
            assert words[0] == "trader", line
            args = [w for w in words[1:] if w != "--json"]  # a global flag: anywhere on the line
            target: click.Command = cli
            names: list[str] = []
            while isinstance(target, click.Group) and args and args[0] in target.commands:
                names.append(args[0])
                target = target.commands[args.pop(0)]
            assert names[: len(path)] == list(path), (line, path)
            target.make_context(names[-1], args)  # raises a UsageError on an unknown option or a bad value


def test_sections_are_read_from_the_help_and_the_epilog() -> None:
    @click.command(epilog="\b\nJSON:\n  {\"ok\": boolean}\nExits: 4 nothing")
    def sample() -> None:
        """Do a thing.

        More words.

        \b
        Examples:
          trader sample  # a comment
          trader sample --x
        """

    parts = docs.sections(sample)
    assert parts[""] == "Do a thing.\n\nMore words."
    assert docs.examples(sample) == ["trader sample", "trader sample --x"]
    assert parts["JSON"] == '{"ok": boolean}' and parts["Exits"] == "4 nothing"

    @click.command(epilog="\b\nExamples:\n  trader other --y\n\n\bA note after the block.\nJSON: {\"a\": number,\n  \"b\": null}")
    def other() -> None:
        """Do another thing.

        \b
        Examples:
          trader other
        """

    parts = docs.sections(other)
    assert docs.examples(other) == ["trader other", "trader other --y"]  # help and epilog, together
    assert parts[""] == "Do another thing.\n\nA note after the block." and parts["JSON"] == '{"a": number,\n"b": null}'
