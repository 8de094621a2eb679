"""CLI subcommands. Each module exposes `register(subparsers)`; its parser sets `func=run`,
where `run(args) -> int` returns the exit code. `app.cli` discovers the modules here."""
