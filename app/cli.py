"""The `main.py` command line: one parser, subcommands discovered in `app.commands`."""
from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import signal
import sys
import threading

from app.errors import Terminated, UserError

log = logging.getLogger("unisight")


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="main.py",
        description="Unisight: real-time face detection and recognition.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import app.commands as commands_pkg

    for mod in sorted(pkgutil.iter_modules(commands_pkg.__path__), key=lambda m: m.name):
        try:
            module = importlib.import_module(f"app.commands.{mod.name}")
        except ImportError as exc:  # one command missing a dependency must not break the others
            log.warning("command %r unavailable: %s", mod.name, exc)
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse `argv`, run the subcommand and turn errors into one line and an exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "func", None):
        if args.command is None:
            return _default_job(parser)
        parser.print_help()
        return 2
    if args.command != "gui":  # Qt has its own loop; a raise inside a slot would not unwind it
        _terminate_like_interrupt()
    try:
        return int(args.func(args) or 0)
    except Terminated:
        print("terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except UserError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        if args.debug:
            raise
        print(f"error: {type(exc).__name__}: {exc} (run with --debug for details)", file=sys.stderr)
        return 1


def _terminate_like_interrupt() -> None:
    """Make SIGTERM unwind the main thread like Ctrl-C does (partial files removed, sources
    closed) instead of ending the process on the spot."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, handler)


def _default_job(parser: argparse.ArgumentParser) -> int:
    """`python main.py` with no arguments: the GUI when it exists, else identify the sample."""
    try:
        gui = importlib.import_module("app.commands.gui")
    except ModuleNotFoundError:
        gui = None
    if gui is not None:
        return main(["gui"])
    from app.paths import SAMPLE_IMAGE

    return main(["identify", str(SAMPLE_IMAGE)])
