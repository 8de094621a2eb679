"""The window's commands: `gui` (the operator's window) and `screenshot` (the window offscreen,
measured). Same table shape as `app.commands.COMMANDS`; `main.py` composes them."""

COMMANDS: dict[str, tuple[str, str]] = {
    "gui": ("ui.commands.gui", "open the live window (cameras, videos, streams; enrolment; gallery)"),
    "screenshot": ("ui.commands.screenshot", "run the window offscreen on a source and save a screenshot"),
}
