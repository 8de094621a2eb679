"""A fake `FaceEngine` for pipeline tests: deterministic faces, a configurable delay.

It is a real `FaceEngine` subclass (the pipeline cannot tell it from a backend); it only
replaces the network. Faces depend only on the image size (`FakeEngine.faces_for`).
"""
from __future__ import annotations

import threading
import time
from typing import Sequence

import numpy as np

from engines.engine import EngineInfo, FaceEngine
from engines.faces import EMBEDDING_DIM, Faces


class FakeEngine(FaceEngine):
    """`faces_per_image` faces in a row across the upper half of every image.

    delay: seconds slept per `infer` call (a slow network).
    per_image_delay: extra seconds per image in the batch.
    fail_after: raise RuntimeError on the call after this many successful calls.
    Records every call's batch size in `calls` and the calling threads in `threads`.
    """

    def __init__(self, faces_per_image: int = 1, delay: float = 0.0, per_image_delay: float = 0.0,
                 fail_after: int | None = None):
        self.info = EngineInfo(engine="fake", backend="numpy", device="cpu", model_id="fake-1")
        self.faces_per_image = faces_per_image
        self.delay = delay
        self.per_image_delay = per_image_delay
        self.fail_after = fail_after
        self.calls: list[int] = []
        self.threads: set[str] = set()
        self.closed = False
        self._lock = threading.Lock()

    def infer(self, images: Sequence[np.ndarray], score_threshold: float | None = None,
              max_faces: int | None = None) -> list[Faces]:
        with self._lock:
            if self.fail_after is not None and len(self.calls) >= self.fail_after:
                raise RuntimeError("fake engine failure")
            self.calls.append(len(images))
            self.threads.add(threading.current_thread().name)
        wait = self.delay + self.per_image_delay * len(images)
        if wait:
            time.sleep(wait)
        n = self.faces_per_image if max_faces is None else min(max_faces, self.faces_per_image)
        return [self.faces_for(image.shape[1], image.shape[0], n) for image in images]

    @staticmethod
    def faces_for(width: int, height: int, n: int) -> Faces:
        """The faces this engine reports for an image of this size."""
        if n == 0:
            return Faces.empty()
        side = max(4.0, min(width / (n + 1), height / 2) * 0.8)
        xs = (np.arange(n, dtype=np.float32) + 0.5) * (width / n) - side / 2
        y = height * 0.25 - side / 2
        boxes = np.stack([xs, np.full(n, y), xs + side, np.full(n, y + side)], axis=1).astype(np.float32)
        rel = np.array([[0.3, 0.4], [0.7, 0.4], [0.5, 0.58], [0.35, 0.78], [0.65, 0.78]], np.float32)
        landmarks = boxes[:, None, :2] + rel[None] * side
        scores = np.linspace(0.99, 0.86, n, dtype=np.float32)  # all sure faces (the tracker starts tracks at 0.85)
        emb = np.zeros((n, EMBEDDING_DIM), np.float32)
        emb[np.arange(n), np.arange(n) % EMBEDDING_DIM] = 1.0
        return Faces(boxes=boxes, scores=scores, landmarks=landmarks, embeddings=emb)

    def close(self) -> None:
        self.closed = True


def make_video(path, frames: int = 30, fps: int = 30, size: tuple[int, int] = (320, 240), *,
               audio: bool = False, gaps: Sequence[int] | None = None, faststart: bool = False,
               fmt: str | None = None, codec: str = "libx264", gop: int | None = None,
               rotation: int = 0) -> list[int]:
    """Write a small test video with PyAV and return its frame pts (in 1/1000 s when `gaps`
    is given: variable frame rate with those gaps in ms, cycled; else in 1/fps).

    Each frame is a flat colour that changes with the frame number, with a white square moving
    back and forth along the top; `audio` adds a silent AAC track covering the same duration; `gop` sets the
    keyframe interval (a live stream joined mid-way needs a keyframe soon); `rotation` stores a
    display rotation (counter-clockwise degrees), as phones do.
    """
    import fractions

    import av

    w, h = size
    options = {"movflags": "+faststart"} if faststart else {}
    container = av.open(str(path), "w", format=fmt, options=options)
    video = container.add_stream(codec, rate=fps)
    video.width, video.height, video.pix_fmt = w, h, "yuv420p"
    video.options = {"preset": "ultrafast"} if codec == "libx264" else {}
    if gop:
        video.options = {**video.options, "g": str(gop)}
    if rotation:
        video.set_display_rotation(rotation)
    tb = fractions.Fraction(1, 1000) if gaps else fractions.Fraction(1, fps)
    video.codec_context.time_base = tb
    astream = None
    if audio:
        astream = container.add_stream("aac", rate=44100)
        astream.layout = "mono"
    pts_list, t, audio_pts = [], 0, 0
    for i in range(frames):
        image = np.full((h, w, 3), ((i * 7) % 256, (i * 13) % 256, (i * 29) % 256), np.uint8)
        span = max(1, w - 16)
        x = (i * 5) % (2 * span)
        x = 2 * span - x if x > span else x  # back and forth: no jump a shot-change detector takes for a cut
        image[4:20, x:x + 16] = 255
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts, frame.time_base = (t if gaps else i), tb
        pts_list.append(frame.pts)
        if gaps:
            t += gaps[i % len(gaps)]
        for packet in video.encode(frame):
            container.mux(packet)
        if astream is not None:
            end = float((t if gaps else i + 1) * tb) * 44100
            while audio_pts < end:
                af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
                af.sample_rate, af.pts = 44100, audio_pts
                audio_pts += 1024
                for packet in astream.encode(af):
                    container.mux(packet)
    for packet in video.encode(None):
        container.mux(packet)
    if astream is not None:
        for packet in astream.encode(None):
            container.mux(packet)
    container.close()
    return pts_list


def probe(path) -> dict:
    """Frame count, rates, pts and streams of a video file, read back with PyAV."""
    import av

    with av.open(str(path)) as c:
        v = c.streams.video[0]
        out = {
            "streams": [s.type for s in c.streams],
            "frames_header": v.frames,
            "average_rate": v.average_rate,
            "time_base": v.time_base,
            "duration": v.duration,
            "audio_codec": c.streams.audio[0].codec_context.name if c.streams.audio else None,
            "audio_packets": sum(1 for p in c.demux(c.streams.audio[0]) if p.dts is not None) if c.streams.audio else 0,
        }
        c.seek(0)
        out["pts"] = [f.pts for f in c.decode(c.streams.video[0])]
        out["frames"] = len(out["pts"])
    return out


def flaky_source(sessions: Sequence[int | None] = (5, None), failed_connects: int = 2, *,
                 size: tuple[int, int] = (64, 48), interval: float = 0.0, source_id: str = "flaky",
                 max_reconnects: int | None = None, refuse_first: int = 0):
    """A live source that drops its connection: session k delivers `sessions[k]` frames
    (None = endless) then its reads fail; each outage starts with `failed_connects` refused
    reconnection attempts, and the very first connection `refuse_first` ones. Backoff is 10 ms
    so tests stay fast. `interval`: seconds per frame."""
    from app.sources import Backoff, ReconnectingSource, SourceInfo

    class _Flaky(ReconnectingSource):
        def __init__(self):
            super().__init__(source_id, SourceInfo(name=source_id, kind="camera", realtime=True, fps=30.0),
                             Backoff(initial=0.01, maximum=0.04), max_reconnects)
            self.sessions = list(sessions)
            self.session = -1
            self.served = 0
            self.connect_calls = 0
            self._refuse = refuse_first

        def _connect(self):
            self.connect_calls += 1
            if self._refuse > 0:
                self._refuse -= 1
                raise ConnectionRefusedError("connection refused")
            self.session += 1
            self.served = 0

        def _grab(self):
            limit = self.sessions[min(self.session, len(self.sessions) - 1)]
            if limit is not None and self.served >= limit:
                raise OSError("connection lost")
            if interval:
                self._interrupted.wait(interval)
            self.served += 1
            image = np.full((size[1], size[0], 3), self.frames_read % 256, np.uint8)
            return image, float(self.frames_read)

        def _disconnect(self):
            self._refuse = failed_connects

    return _Flaky()
