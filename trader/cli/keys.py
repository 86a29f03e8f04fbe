"""``trader keys``: CURVE key pairs for the RPC and the bus beyond loopback.

``trader keys generate`` writes ``NAME.key_secret`` (both keys, mode 0600)
and ``NAME.key`` (the public key, 0644) with pyzmq's ``zmq.auth``, and prints
the settings that use them. The files are written in a private temporary
directory and moved into place, so the secret is never readable by others,
not even for a moment; an existing pair is kept unless ``--force``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import click
import zmq.auth

from trader.cli.context import CliContext, pass_cli
from trader.errors import ConfigError, Conflict

DEFAULT_DIR = Path("keys")
DEFAULT_NAME = "trader"
SECRET_MODE = 0o600
PUBLIC_MODE = 0o644


def register(group: click.Group) -> None:
    """Add the ``keys`` commands to the ``trader`` group."""
    group.add_command(keys)


@click.group()
def keys() -> None:
    """Create the CURVE keys that protect the RPC and the bus beyond loopback.

    \b
    Examples:
      trader keys generate --name client
    """


def write_key_pair(directory: Path, name: str, *, force: bool = False) -> tuple[Path, Path]:
    """Write ``name.key`` (0644) and ``name.key_secret`` (0600) in ``directory``; return (public, secret).

    Raise Conflict if either exists and not ``force``, ConfigError if the name
    is not a plain file name or the directory cannot be written.
    """
    if not name or Path(name).name != name or name.startswith("."):
        raise ConfigError(f"key name {name!r} must be a plain file name")
    public, secret = directory / f"{name}.key", directory / f"{name}.key_secret"
    existing = [str(p) for p in (public, secret) if p.exists()]
    if existing and not force:
        raise Conflict(f"{' and '.join(existing)} already exist; keep them, pick another --name, or use --force")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".keys-", dir=directory))  # mode 0700
    except OSError as exc:
        raise ConfigError(f"cannot write keys in {directory}: {exc.strerror or exc}") from None
    try:
        made_public, made_secret = (Path(p) for p in zmq.auth.create_certificates(staging, name))
        os.chmod(made_secret, SECRET_MODE)
        os.chmod(made_public, PUBLIC_MODE)
        # The secret first: a public key without its secret beside it would be no use.
        for made, target in ((made_secret, secret), (made_public, public)):
            if force:
                os.replace(made, target)
            else:
                os.link(made, target)  # fails rather than overwrite a pair written meanwhile
    except FileExistsError as exc:
        raise Conflict(f"{exc.filename2 or exc.filename} appeared meanwhile; nothing overwritten") from None
    except OSError as exc:
        raise ConfigError(f"cannot write keys in {directory}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return public, secret


@keys.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write the pair (default: <home>/keys).")
@click.option("--name", default=DEFAULT_NAME, show_default=True, help="File name: NAME.key and NAME.key_secret.")
@click.option("--force", is_flag=True, help="Overwrite an existing pair of that name.")
@pass_cli
def generate(cli: CliContext, directory: Path | None, name: str, force: bool) -> None:
    """Write a CURVE key pair: NAME.key_secret (0600, stays here) and NAME.key (public, 0644).

    \b
    Examples:
      trader keys generate
      trader keys generate --name client --dir keys
    JSON:
      {"public_file": string, "secret_file": string, "public_key": string}
    Exits: 9 the pair exists (--force replaces it), 78 a bad name or an
      unwritable directory
    """
    directory = (directory or cli.settings().path(DEFAULT_DIR)).resolve()
    public, secret = write_key_pair(directory, name, force=force)
    public_key = zmq.auth.load_certificate(public)[0].decode("ascii")
    if cli.json:
        cli.emit_json({"public_file": str(public), "secret_file": str(secret), "public_key": public_key})
        return
    click.echo(f"wrote {secret} (secret, mode 0600: it never leaves this host)")
    click.echo(f"wrote {public} (public key {public_key})")
    click.echo(f"""
To bind and connect with CURVE on this host, set in trader.yaml:

  security:
    mode: curve
    server:
      key_file: {secret}

(or TRADER_SECURITY__MODE=curve TRADER_SECURITY__SERVER__KEY_FILE={secret}).
Every host of the stack then needs `security.mode: curve`. On a host that
connects to this one, copy {public.name} there as `security.server.key_file`,
give that host a pair of its own (`trader keys generate --name client`, set as
`security.client.key_file`), and allow its public key here: put its NAME.key in
a directory named by `security.allowed_clients_dir`, or its key in
`security.allowed_clients`.""")
