"""Finding the local cameras: which indices open and deliver a frame.

Opening a camera can take a second or more, so call `find_cameras` from a worker thread.
"""
from __future__ import annotations

import glob
import logging
import sys
from dataclasses import dataclass

import cv2

log = logging.getLogger(__name__)


@dataclass(slots=True)
class CameraInfo:
    index: int
    name: str  # "camera 0 (/dev/video0, 640x480)"
    width: int | None = None
    height: int | None = None


def candidate_indices(limit: int = 8) -> list[int]:
    """Indices worth probing: the /dev/video* devices on Linux, else 0..limit-1."""
    if sys.platform.startswith("linux"):
        found = []
        for dev in sorted(glob.glob("/dev/video*")):
            tail = dev[len("/dev/video"):]
            if tail.isdigit():
                found.append(int(tail))
        return sorted(found)[:limit]
    return list(range(limit))


def find_cameras(limit: int = 8) -> list[CameraInfo]:
    """The cameras that open and deliver a frame now (none on a machine without any)."""
    out = []
    for index in candidate_indices(limit):
        cap = cv2.VideoCapture(index)
        try:
            if not cap.isOpened():
                continue
            ok, image = cap.read()
            if not ok or image is None:
                continue
            h, w = image.shape[:2]
            out.append(CameraInfo(index, f"camera {index} ({w}x{h})", w, h))
        except cv2.error as exc:  # a device node that is not a capture device
            log.debug("camera %d: %s", index, exc)
        finally:
            cap.release()
    return out
