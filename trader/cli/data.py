"""The market store's upkeep: ``data snapshot NAME``, ``snapshots``, ``snapshot-delete``, ``backup DIR``, ``restore DIR``.

Every command opens the store itself (``storage.arctic_uri`` of the
settings) with :func:`trader.data.open_store`: no service has to run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from trader.cli.context import CliContext, pass_cli
from trader.cli.layout import Col, FitTable
from trader.errors import Conflict, NotFound, Unavailable, ValidationError

if TYPE_CHECKING:  # ArcticDB is imported by the commands that open the store, not at start-up
    from trader.config import Settings
    from trader.data.arctic import ArcticStore
    from trader.data.backup import Manifest

SNAPSHOT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # as a universe's: safe in ArcticDB and in a shell
WRITERS = ("history_service", "tick_recorder", "trader_service")  # the jobs that write the market store
IDLE = frozenset({"STOPPED", "FAILED", "COMPLETED", "SCHEDULED"})  # a job in these states has no process


def check_snapshot_name(name: str) -> str:
    """Return ``name`` if it may name a snapshot (1-64 letters, digits, ``_``, ``-``); ValidationError if not."""
    if not SNAPSHOT_NAME.fullmatch(name):
        raise ValidationError(f"a snapshot name is 1-64 letters, digits, _ or -: {name!r} is not", name=name)
    return name


def running_writers(settings: Settings) -> list[str]:
    """Return the jobs that write the store and that the running pycron runs ([] when no pycron runs)."""
    from pycron import runfiles
    from trader.cli.jobs import running_client

    try:
        with running_client(settings) as client:
            jobs = client.jobs()
    except Unavailable:
        if runfiles.running_pid(settings) is None:  # no control token, or a stale one: nothing runs
            return []
        raise
    return sorted(job["name"] for job in jobs if job["name"] in WRITERS and job.get("state") not in IDLE)


def register(group: click.Group) -> None:
    """Add the ``data`` group to the ``trader`` group."""
    group.add_command(data_group)


def open_arctic(cli: CliContext) -> ArcticStore:
    """Return the store of the CLI's settings (an ArcticDB store: snapshots and backups are ArcticDB's)."""
    from trader.data.arctic import ArcticStore
    from trader.data.factory import open_store

    store = open_store(cli.settings())
    if not isinstance(store, ArcticStore):
        raise ValidationError(f"{store!r} is not an ArcticDB store: it has no snapshots or backups")
    return store


@click.group("data")
def data_group() -> None:
    """Snapshots, backups and restores of the market store.

    \b
    Examples:
      trader data snapshots
      trader data backup /mnt/usb/trader-2026-03-02
    """


@data_group.command("snapshot")
@click.argument("name")
@pass_cli
def snapshot_command(cli: CliContext, name: str) -> None:
    """Name the store's current state NAME; read it later with --as-of NAME.

    A snapshot keeps every version it names: the data written after it does
    not replace what it holds until it is deleted.

    \b
    Examples:
      trader data snapshot before-2026-rebuild
    JSON:
      {"name": string, "created": time, "libraries": [string]}
    Exits: 9 the name is taken, 3 a bad name (1-64 letters, digits, _ or
      -), 4 the store is empty, 14 store unusable
    """
    store = open_arctic(cli)
    store.snapshot(check_snapshot_name(name))
    info = {"name": name, **store.snapshot_info()[name]}
    cli.show(info, lambda i: f"snapshot {i['name']} taken: {', '.join(i['libraries'])}")


@data_group.command("snapshots")
@pass_cli
def snapshots_command(cli: CliContext) -> None:
    """List the snapshots: name, when taken, the libraries each holds.

    \b
    Examples:
      trader data snapshots
      trader data snapshots --json
    JSON:
      [{"name": string, "created": time | null, "libraries": [string]}]
    Exits: 14 store unusable
    """
    info = open_arctic(cli).snapshot_info()
    rows = [{"name": name, **info[name]} for name in sorted(info)]
    cli.show(rows, _snapshots_table, empty="no snapshots")


def _snapshots_table(rows: list[dict[str, Any]]) -> FitTable:
    cols = (Col("snapshot"), Col("created (UTC)"), Col("libraries", 1, wrap=True))
    return FitTable(cols, [[r["name"], (r["created"] or "-")[:19].replace("T", " "), ", ".join(r["libraries"])]
                           for r in rows])


@data_group.command("snapshot-delete")
@click.argument("name")
@pass_cli
def snapshot_delete_command(cli: CliContext, name: str) -> None:
    """Delete the snapshot NAME (the data it alone kept is freed).

    \b
    Examples:
      trader data snapshot-delete before-2026-rebuild
    JSON:
      {"name": string, "deleted": true}
    Exits: 4 no such snapshot, 14 store unusable
    """
    if not open_arctic(cli).delete_snapshot(name):
        raise NotFound(f"no snapshot named {name} (see `trader data snapshots`)", name=name)
    cli.show({"name": name, "deleted": True}, lambda r: f"snapshot {r['name']} deleted")


@data_group.command("backup")
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@pass_cli
def backup_command(cli: CliContext, directory: Path) -> None:
    """Copy the store into DIR (new or empty) and verify the copy.

    Each symbol is copied as of one snapshot (whole, while writers go on),
    read back from DIR and checked against the rows and checksum read from
    the store; DIR/manifest.json lists them all, written last.

    \b
    Examples:
      trader data backup /mnt/usb/trader-2026-03-02
      trader data backup /mnt/usb/trader-2026-03-02 --json
    JSON:
      {"directory": string, "created": time, "source": string, "rows":
       integer, "symbols": [{"library": string, "symbol": string, "rows":
       integer, "checksum": string}]}
    Exits: 9 DIR is not empty, 14 store unusable, DIR cannot be created or
      the copy differs
    """
    from trader.data.backup import backup

    manifest = backup(open_arctic(cli), directory)
    _show_manifest(cli, manifest, directory, "backed up")


@data_group.command("restore")
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace a store that is not empty (its snapshots too).")
@pass_cli
def restore_command(cli: CliContext, directory: Path, force: bool) -> None:
    """Restore the backup in DIR into the store, verified before and after.

    The backup is checked against its manifest first (nothing is written if
    it differs); a store that holds anything is refused without --force.
    An LMDB store is restored into a staging copy beside it, checked, then
    swapped in: a failure leaves the store as it was. An S3 store is
    restored only when empty: restore into a new bucket or ?path_prefix=,
    then point storage.arctic_uri at it.

    The services that write the store (history_service, tick_recorder,
    trader_service) must be stopped first: the restore is refused while
    pycron runs one (`trader pycron stop JOB`). An LMDB store directory
    that is a mount point is refused: the staging copy would fill the
    parent file system; keep the store in a subdirectory of the mount.

    \b
    Examples:
      trader data restore /mnt/usb/trader-2026-03-02
      trader data restore /mnt/usb/trader-2026-03-02 --force --json
    JSON:
      {"directory": string, "created": time, "source": string, "rows":
       integer, "symbols": [{"library": string, "symbol": string, "rows":
       integer, "checksum": string}]}
    Exits: 4 no backup in DIR, 7 pycron runs but does not answer, 9 the
      store is not empty (or an S3 store is, even with --force), a writer
      runs or the store is a mount point, 14 the backup or the restored
      store differs from the manifest, or the store cannot be written
    """
    from trader.data.backup import restore

    writers = running_writers(cli.settings())
    if writers:
        one = len(writers) == 1
        raise Conflict(f"{', '.join(writers)} {'runs' if one else 'run'} under pycron and "
                       f"{'writes' if one else 'write'} to the store: stop {'it' if one else 'them'} first "
                       f"(trader pycron stop {writers[0] if one else 'JOB, for each'})", jobs=writers)
    manifest = restore(open_arctic(cli), directory, force=force)
    _show_manifest(cli, manifest, directory, "restored")


def _show_manifest(cli: CliContext, manifest: Manifest, directory: Path, done: str) -> None:
    data = {"directory": str(directory), **manifest.to_dict(), "rows": manifest.rows}
    data.pop("version")
    if cli.json:
        cli.emit_json(data)
        return
    rows = [[e.library, e.symbol, f"{e.rows:,}", e.checksum[:12]] for e in manifest.symbols]
    cols = (Col("library"), Col("symbol"), Col("rows", justify="right"), Col("checksum", 2))
    cli.console.print(FitTable(cols, rows), highlight=False)
    cli.console.print(f"{done} {len(manifest.symbols)} symbols, {manifest.rows:,} rows, verified "
                      f"({directory})", highlight=False)
