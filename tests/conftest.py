"""Test-wide setup: private data/cache folders, offscreen Qt, the shared data location."""
import os
import tempfile
from pathlib import Path

import pytest

from tests.support.paths import REPO, SHARED_DATA  # noqa: F401  (REPO: for test modules that import it from here)

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="unisight-tests-"))
# Never touch the user's real gallery or cache from tests.
os.environ["UNISIGHT_DATA"] = str(_SESSION_DIR / "data")
os.environ["UNISIGHT_CACHE"] = str(_SESSION_DIR / "cache")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip the test when it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    return Path(os.environ["UNISIGHT_CACHE"])


@pytest.fixture(scope="session")
def mtcnn_dlib():
    """The MTCNN + dlib engine (the earlier teachers), or skip when dlib or its files are missing."""
    pytest.importorskip("torch")
    pytest.importorskip("dlib")
    from engines.errors import EngineUnavailable
    from engines.teachers.mtcnn_dlib import MtcnnDlibEngine

    try:
        return MtcnnDlibEngine()
    except EngineUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def cascade():
    """The YuNet + SFace engine (the accurate engine and the teachers), or skip when its files are missing."""
    from engines.errors import EngineUnavailable
    from engines.cascade import CascadeEngine

    try:
        return CascadeEngine()
    except EngineUnavailable as exc:
        pytest.skip(str(exc))
