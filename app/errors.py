"""Errors meant for the user: the CLI prints them as one line and exits non-zero."""


class UserError(Exception):
    """Bad input or an impossible request; the message says what and what to do."""

    exit_code = 2


class Terminated(KeyboardInterrupt):
    """SIGTERM: unwinds like Ctrl-C, so partial outputs are removed the same way."""
