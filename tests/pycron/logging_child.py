"""A job that logs as a service does (``trader.logsetup``): the job-logging tests' child.

    logging_child.py LOGS_DIR MODE [GO_FILE MARKER]

Prints a line before logging is set up, logs one line per level, then by MODE:
``exit`` exits 0, ``crash`` raises (an uncaught traceback), ``orphan`` waits for
GO_FILE, then prints and logs errors (its pipe's reader is gone by then) and
writes MARKER once all of them returned.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from trader.logsetup import setup_logging, supervised_stderr


def main() -> int:
    logs, mode = Path(sys.argv[1]), sys.argv[2]
    print("printed before logging", flush=True)
    setup_logging("logchild", logs, "INFO", stderr=supervised_stderr())
    log = logging.getLogger("logchild")
    log.info("an info line")
    log.warning("a warning line")
    log.error("an error line")
    if mode == "crash":
        raise RuntimeError("boom at exit")
    if mode == "orphan":
        go, marker = Path(sys.argv[3]), Path(sys.argv[4])
        print("ready", flush=True)
        while not go.exists():
            time.sleep(0.02)
        for n in range(200):
            print(f"a stray print {n}", flush=True)
            log.error("an error line %d", n)
            sys.stderr.write("a stray stderr write\n")
        marker.write_text("survived")
    return 0


if __name__ == "__main__":
    sys.exit(main())
