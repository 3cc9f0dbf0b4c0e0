"""`nas` command line: argument parsing and printing only; every command is a thin shell over the Python API.

Each module of this package that defines `add_parser(subparsers)` contributes one command. A `NasError`
(a user mistake), an argument argparse refuses, or an OSError on a path the user named prints one
`nas: error:` line and exits 2; with `--json`, stdout carries exactly one JSON document.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import sys
from typing import Any, NoReturn

from nas.errors import NasError

# Order of the commands in `nas --help`; modules not named here follow alphabetically.
ORDER = ["search", "netadapt", "train", "export", "latency", "space", "zoo"]


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


class _Parser(argparse.ArgumentParser):
    """argparse with the package's error format: one `nas: error:` line and exit 2, not a usage block."""

    def error(self, message: str) -> NoReturn:
        if "expected one argument" in message:
            message += " (a value that starts with '-' is written --option=VALUE)"
        self.exit(2, f"nas: error: {message}; see `{self.prog} --help`\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="nas",
        description="Platform-aware neural architecture search for mobile CNNs.",
        epilog="Run `nas COMMAND --help` for the options of a command.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    names = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    for name in sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n)):
        module = importlib.import_module(f"nas.cli.{name}")
        if hasattr(module, "add_parser"):
            module.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if not getattr(args, "func", None):
        p.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except NasError as err:
        print(f"nas: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`nas zoo show … | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as err:  # a path the user named that the system refuses (too long, a directory, read-only)
        where = f": {err.filename}" if err.filename else ""
        print(f"nas: error: {err.strerror or err}{where}", file=sys.stderr)
        return 2
