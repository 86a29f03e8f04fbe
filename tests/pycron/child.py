"""A scriptable child process for pycron tests: records its life in a file, then behaves as told.

    child.py NAME RECORD [--delay S] [--listen PORT] [--exit CODE] [--after S] [--ignore-term]

Waits ``--delay`` seconds, binds ``--listen`` if given, then appends
``start NAME PID TIME`` to RECORD, ``term NAME PID TIME`` on SIGTERM (then exits 0 unless
``--ignore-term``), and exits with ``--exit`` after ``--after`` seconds if given.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import time


def record(path: str, event: str, name: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(f"{event} {name} {os.getpid()} {time.time():.6f}\n")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("record")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--exit", type=int, default=None)
    parser.add_argument("--after", type=float, default=0.0)
    parser.add_argument("--listen", type=int, default=None)
    parser.add_argument("--ignore-term", action="store_true")
    args = parser.parse_args()

    def on_term(signum: int, frame: object) -> None:
        record(args.record, "term", args.name)
        if not args.ignore_term:
            sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    time.sleep(args.delay)
    server = None
    if args.listen is not None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", args.listen))
        server.listen()
    record(args.record, "start", args.name)
    if args.exit is not None:
        time.sleep(args.after)
        return args.exit
    while True:
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
