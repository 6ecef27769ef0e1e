"""The ``spinemet`` command line: a thin layer over the package's functions.

Each subcommand lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (a callable taking
the parsed namespace and returning an exit code). User errors (``SpinemetError``)
print one line ``spinemet: error [CODE]: message`` and exit 2; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from pipeline import __version__
from pipeline.errors import SpinemetError

# Subcommand modules, in help order. Add a module here to add a subcommand.
SUBCOMMANDS: tuple[str, ...] = (
    "pipeline.cli.inspect_cmd",
    "pipeline.cli.segment_cmd",
    "pipeline.cli.train_cmd",
    "pipeline.cli.score_cmd",
    "pipeline.cli.run_cmd",
    "pipeline.cli.evaluate_cmd",
    "pipeline.cli.synth_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="spinemet",
        description="Imaging-assisted assessment of metastatic spine disease (research use).",
    )
    parser.add_argument("--version", action="version", version=f"spinemet {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``spinemet`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except SpinemetError as exc:
        if args.debug:
            raise
        print(f"spinemet: error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spinemet: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into e.g. `head`, which closed early: not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - last line of defence: one line, a code
        if args.debug:
            raise
        print(
            f"spinemet: error [INTERNAL]: {type(exc).__name__}: {exc} (rerun with --debug)",
            file=sys.stderr,
        )
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
