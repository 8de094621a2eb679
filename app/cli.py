"""The command-line runner: a parser built from a table of commands, the chosen command run, and
errors turned into one line and an exit code.

`main.py` (the composition root) gives it every layer's table; without one it runs the headless
commands of `app.commands` (what the window's no-display fallback needs). Commands load lazily:
only the chosen one is imported, and one whose import fails says why when it is called.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
from typing import Sequence

from engines.errors import Terminated, UserError

log = logging.getLogger("unisight")

Commands = dict[str, tuple[str, str]]  # "name" or "name action" -> (module, one-line help)


def headless_commands() -> Commands:
    from app.commands import COMMANDS

    return COMMANDS


def build_parser(commands: Commands | None = None, argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of `commands` (default: the headless ones). With `argv`, only the command it
    names is loaded (the others are listed by name and help); without, every command is."""
    commands = headless_commands() if commands is None else commands
    parser = argparse.ArgumentParser(
        prog="main.py",
        description="Unisight: real-time face detection and recognition.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, list[tuple[str, str, str]]] = {}
    for name, (module, summary) in sorted(commands.items()):
        word, _, action = name.partition(" ")
        groups.setdefault(word, []).append((action, module, summary))
    chosen = None if argv is None else next((a for a in argv if not a.startswith("-")), None)
    for word, entries in groups.items():
        summary = "; ".join(f"{action}: {text}" if action else text for action, _, text in entries)
        if argv is not None and word != chosen:
            sub.add_parser(word, help=summary)  # listed in --help; its options load when it is chosen
        elif len(entries) == 1 and not entries[0][0]:
            _load(sub, word, entries[0][1], summary)
        else:  # one command whose actions come from different layers (`export onnx|weights`)
            actions = sub.add_parser(word, help=summary).add_subparsers(dest="format", metavar="FORMAT",
                                                                        required=True)
            for action, module, text in entries:
                _load(actions, action, module, text)
    return parser


class _WithHelp:
    """The subparsers a command registers into, giving its parser the one-line help of the table."""

    def __init__(self, sub, summary: str):
        self._sub, self._summary = sub, summary

    def add_parser(self, name: str, **kw) -> argparse.ArgumentParser:
        kw.setdefault("help", self._summary)
        return self._sub.add_parser(name, **kw)


def _load(sub, name: str, module_name: str, summary: str) -> None:
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:  # one command missing a dependency must not break the others
        log.debug("command %r unavailable: %s", name, exc)
        p = sub.add_parser(name, help=f"{summary} (unavailable here)", add_help=False)
        p.set_defaults(func=_unavailable(name, exc), unavailable=True)
        return
    module.register(_WithHelp(sub, summary))


def _unavailable(name: str, exc: ImportError):
    def run(args) -> int:
        raise UserError(f"command {name!r} is unavailable: {exc}")

    return run


def main(argv: Sequence[str] | None = None, commands: Commands | None = None) -> int:
    """Parse `argv`, run the subcommand and turn errors into one line and an exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = headless_commands() if commands is None else commands
    parser = build_parser(commands, argv)
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "unavailable", False):  # an unavailable command takes any arguments
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "func", None):
        if args.command is None:
            return _default_job(commands)
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


def _default_job(commands: Commands) -> int:
    """`python main.py` with no arguments: the GUI when it exists, else identify the sample."""
    if "gui" in commands:
        try:
            importlib.import_module(commands["gui"][0])
        except ImportError:
            pass
        else:
            return main(["gui"], commands)
    from app.paths import SAMPLE_IMAGE

    return main(["identify", str(SAMPLE_IMAGE)], commands)
