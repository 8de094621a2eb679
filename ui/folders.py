"""Where file dialogs open: the folder the operator last used (any dialog), else the home
folder, never the program's working directory (the repository, when run from a checkout)."""
from __future__ import annotations

from pathlib import Path

_last: str | None = None


def start_in(name: str = "") -> str:
    """The folder to open a dialog in, joined with a suggested file `name` if given."""
    folder = _last if _last and Path(_last).is_dir() else str(Path.home())
    return str(Path(folder) / name) if name else folder


def remember(path: str | Path | None) -> None:
    """Note where the operator went: the folder of a chosen file, or a chosen folder."""
    global _last
    if not path:
        return
    p = Path(path)
    _last = str(p if p.is_dir() else p.parent)
