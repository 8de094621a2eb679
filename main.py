#!/usr/bin/env python3
"""Unisight entry point and composition root: `python main.py --help` lists the commands.

Each layer registers its own commands: the headless ones (`app.commands`), the window's `gui`
and `screenshot` (`ui.commands`), and the training side's `label`, `label-views`, `train` and
`export weights` (`engines.train.commands`). Only this file sees all three; `app.cli` builds the
parser from the table and runs the chosen command.
"""
from __future__ import annotations

import sys
from typing import Sequence

import app.cli
from app.commands import COMMANDS as HEADLESS
from engines.train.commands import COMMANDS as TRAINING
from ui.commands import COMMANDS as WINDOW

COMMANDS = {**HEADLESS, **WINDOW, **TRAINING}


def build_parser(argv: Sequence[str] | None = None):
    """The parser of every command (with `argv`: only the command it names loaded)."""
    return app.cli.build_parser(COMMANDS, argv)


def main(argv: Sequence[str] | None = None) -> int:
    return app.cli.main(argv, COMMANDS)


if __name__ == "__main__":
    sys.exit(main())
