"""numpy BGR images as Qt images, without copying the pixels."""
from __future__ import annotations

import numpy as np
from PyQt5.QtGui import QImage, QPixmap


def to_qimage(image: np.ndarray) -> QImage:
    """A QImage viewing `image` (BGR uint8, h x w x 3, or grey h x w); it keeps the array
    alive, so the caller may drop its own reference."""
    array = np.ascontiguousarray(image)
    if array.ndim == 2:
        h, w = array.shape
        qimg = QImage(array.data, w, h, array.strides[0], QImage.Format_Grayscale8)
    elif array.ndim == 3 and array.shape[2] == 3:
        h, w = array.shape[:2]
        qimg = QImage(array.data, w, h, array.strides[0], QImage.Format_BGR888)
    else:
        raise ValueError(f"expected a BGR (h, w, 3) or grey (h, w) uint8 image, got shape {array.shape}")
    qimg.array = array  # the QImage reads this buffer: it must live as long as the image
    return qimg


def to_pixmap(image: np.ndarray, size: int | None = None) -> QPixmap:
    """A (copied) pixmap of a BGR image, scaled to fit `size` x `size` when given."""
    pixmap = QPixmap.fromImage(to_qimage(image))
    if size is not None:
        from PyQt5.QtCore import Qt

        pixmap = pixmap.scaled(size, size, Qt.KeepAspectRatio, Qt.SmoothTransformation)
    return pixmap
