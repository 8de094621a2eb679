"""Every error that crosses a layer, in one module that every layer may import (engines, app, ui,
the commands): what the user is told in one line, and why an engine cannot run."""


class UserError(Exception):
    """Bad input or an impossible request; the message says what and what to do. The command
    line prints it as one line and exits non-zero."""

    exit_code = 2


class Terminated(KeyboardInterrupt):
    """SIGTERM: unwinds like Ctrl-C, so partial outputs are removed the same way."""


class EngineUnavailable(RuntimeError):
    """This engine or backend cannot run on this machine (missing package, no GPU, ...)."""


class EngineNotCached(EngineUnavailable):
    """The backend can run here but needs a long build first (a TensorRT engine not cached yet)."""
