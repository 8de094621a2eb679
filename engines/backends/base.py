"""The engine interface's former home, kept for modules not yet moved to `engines.engine` and
`engines.errors` (engines/teachers/sface.py)."""
from engines.engine import EngineInfo, FaceEngine  # noqa: F401
from engines.errors import EngineNotCached, EngineUnavailable  # noqa: F401
