"""Offline processing of a recorded video: an annotated copy and an appearance event log.

Three threads overlap (the pipeline's): decode (PyAV), inference (engine + recognizer),
output (draw + H.264 encode). Files are lossless: every frame is processed, in order, and
written with its own timestamp, so the output has the input's frame count and frame rate.
A damaged input is processed up to the damage: the output so far is kept and the summary
says `truncated`.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from engines.errors import UserError
from app.offline.events import event_format, write_events
from app.live.pipeline import Analyzer, Pipeline
from app.render import FrameAnnotator
from app.sources import FileSource, mask_url
from app.storage import classify_os_error, probe_folder, probe_output
from app.types import Frame, FrameResult
from app.video_writer import CONTAINER_SUFFIXES, DEFAULT_CRF, DEFAULT_PRESET, VideoWriter
from engines.engine import FaceEngine

log = logging.getLogger("unisight.process")


@dataclass(slots=True)
class ProcessSummary:
    """What `process` did; `to_dict()` is the `--json` output."""

    input: str
    output: str | None
    events: str | None
    frames: int  # frames processed (and written)
    expected_frames: int | None  # as the input's header says
    faces: int  # face detections over all frames
    tracks: int  # appearances (confirmed tracks)
    identities: list[str]  # distinct names recognised
    fps: float  # frames processed per second of wall time
    video_fps: float | None  # the input's own frame rate
    realtime_factor: float | None  # fps / video_fps
    seconds: float  # wall time
    truncated: bool  # the input is damaged; frames up to the damage were processed
    error: str | None  # why the input ended early
    audio: bool  # audio stream copied into the output
    engine: dict = field(default_factory=dict)
    stage_ms: dict[str, float] = field(default_factory=dict)  # mean ms per frame: decode, inference, draw, encode
    crops: str | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("fps", "video_fps", "realtime_factor", "seconds"):
            if d[key] is not None:
                d[key] = round(d[key], 3)
        d["stage_ms"] = {k: round(v, 2) for k, v in self.stage_ms.items()}
        return d


def default_output(input_path: str | Path) -> Path:
    """`clip.mp4` -> `./clip.annotated.mp4` (the current folder: the input's may be read-only);
    a URL is named after the last part of its path."""
    text = str(input_path)
    if "://" in text:
        from urllib.parse import urlsplit

        return Path.cwd() / f"{Path(urlsplit(text).path).stem or 'stream'}.annotated.mp4"
    return Path.cwd() / f"{Path(text).stem}.annotated.mp4"


def process_video(
    input_path: str | Path,
    engine: FaceEngine,
    *,
    output: str | Path | None = None,
    events: str | Path | None = None,
    crops_dir: str | Path | None = None,
    recognizer=None,
    analyzers: Sequence[Analyzer] = (),
    draw: bool = True,
    crf: int = DEFAULT_CRF,
    preset: str = DEFAULT_PRESET,
    threads: int = 0,
    score_threshold: float | None = None,
    max_faces: int | None = None,
    progress: bool = True,
    queue_size: int = 8,
) -> ProcessSummary:
    """Run `engine` (then `analyzers`, then `recognizer`) on every frame of `input_path`; write
    the annotated video to `output` and one event per appearance to `events` (either may be
    None). `recognizer` None: a gallery-less `app.live.recognition.Recognizer` (tracks only).
    Raises `UserError` for bad paths, unreadable input and full disks."""
    spec = str(input_path)  # a URL stays as given (Path would fold its "//")
    input_path = Path(input_path)
    output = Path(output) if output is not None else None
    events = Path(events) if events is not None else None
    check_outputs(input_path, output, events, crops_dir)
    if recognizer is None:
        from app.live.recognition import Recognizer

        recognizer = Recognizer(None, engine=engine)

    source = FileSource(spec, source_id=mask_url(spec) if "://" in spec else input_path.name)
    source.open()  # a SourceError (UserError) here: nothing was written
    info = source.info
    writer: VideoWriter | None = None
    bar = None
    try:
        bar = _progress_bar(progress, info.frame_count, input_path.name)
        annotator = FrameAnnotator()
        counters = _OutputCounters()
        tb = float(info.time_base) if info.time_base else None

        def on_result(result: FrameResult) -> None:
            nonlocal writer
            image = result.frame.image
            t0 = time.perf_counter()
            if draw:
                annotator.annotate(image, result.faces)  # the decoded image is ours to draw on
            t1 = time.perf_counter()
            if output is not None:
                if writer is None:  # sized by the first frame: upright, as the source turned it
                    writer = VideoWriter(output, width=image.shape[1], height=image.shape[0],
                                         fps=info.rate or info.fps or 30, time_base=info.time_base, crf=crf,
                                         preset=preset, threads=threads,
                                         audio_from=None if "://" in spec else input_path)
                writer.write(image, _pts(result.frame, tb))
            t2 = time.perf_counter()
            counters.add(len(result.faces), t1 - t0, t2 - t1)
            if bar is not None:
                bar.update(1)

        pipeline = Pipeline([source], engine, analyzers=[*analyzers, recognizer], on_result=on_result,
                            lossless=True, queue_size=queue_size, score_threshold=score_threshold,
                            max_faces=max_faces)
        started = time.monotonic()
        pipeline.start()
        try:
            pipeline.wait()
        except BaseException:
            pipeline.stop()
            raise
        fatal = [e for e in pipeline.errors if e.fatal]
        if fatal:
            raise fatal[0].error
        if counters.frames == 0:
            raise UserError(f"no video frame could be decoded from {input_path}: "
                            f"{source.error or 'the video stream is empty'}")
        if writer is not None:
            writer.close(last_duration=_last_duration(source))
        seconds = time.monotonic() - started
        stats = pipeline.stats()
        recognizer.finish()
        appearances = recognizer.events()
        if events is not None:
            write_events(events, appearances, crops_dir)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        source.close()
        if bar is not None:
            bar.close()

    frames = counters.frames
    fps = frames / seconds if seconds > 0 else 0.0
    return ProcessSummary(
        input=mask_url(spec),
        output=str(output) if output is not None else None,
        events=str(events) if events is not None else None,
        frames=frames,
        expected_frames=info.frame_count,
        faces=counters.faces,
        tracks=len(appearances),
        identities=sorted({a.name for a in appearances if a.name is not None}),
        fps=fps,
        video_fps=info.fps,
        realtime_factor=fps / info.fps if info.fps else None,
        seconds=seconds,
        truncated=source.truncated,
        error=source.error,
        audio=bool(writer is not None and writer.audio_copied),
        engine={"engine": engine.info.engine, "backend": engine.info.backend, "device": engine.info.device,
                "model_id": engine.info.model_id, "random_weights": engine.info.random_weights},
        stage_ms={
            "decode": stats.stages["capture"].mean_busy_ms,
            "inference": stats.stages["inference"].mean_busy_ms,
            "draw": counters.draw_ms,
            "encode": counters.encode_ms,
        },
        crops=str(crops_dir) if crops_dir is not None and events is not None else None,
    )


class _OutputCounters:
    """Totals of the output thread (one writer; read after the pipeline has ended)."""

    def __init__(self):
        self.frames = self.faces = 0
        self._draw = self._encode = 0.0
        self._lock = threading.Lock()

    def add(self, faces: int, draw: float, encode: float) -> None:
        with self._lock:
            self.frames += 1
            self.faces += faces
            self._draw += draw
            self._encode += encode

    @property
    def draw_ms(self) -> float:
        return 1000.0 * self._draw / self.frames if self.frames else 0.0

    @property
    def encode_ms(self) -> float:
        return 1000.0 * self._encode / self.frames if self.frames else 0.0


def _pts(frame: Frame, time_base: float | None) -> int | None:
    """The frame's original timestamp: media time is pts x time base, so this is exact."""
    if time_base is None or frame.media_time is None:
        return None
    return round(frame.media_time / time_base)


def _last_duration(source: FileSource) -> int | None:
    """How long the last frame shows, in time-base units: what the stream header leaves
    after it when the file is whole, else the decoder's own figure."""
    if source.last_pts is None:
        return None
    if not source.truncated and source.start_pts is not None and source.duration_pts:
        rest = source.start_pts + source.duration_pts - source.last_pts
        if rest > 0:
            return rest
    return source.last_duration or None


def check_outputs(input_path: Path, output: Path | None, events: Path | None, crops_dir) -> None:
    """Refuse impossible requests and unwritable outputs (full disk, read-only, no permission)
    before anything is decoded: each output's folder is probed with a real write."""
    input_path = Path(input_path)  # only compared with the outputs: a URL never matches one
    output = Path(output) if output is not None else None
    events = Path(events) if events is not None else None
    if output is None and events is None:
        raise UserError("nothing to write: give --out for the annotated video and/or --events for the log")
    if output is not None:
        if output.suffix.lower() not in CONTAINER_SUFFIXES and not (output.exists() and not output.is_file()):
            raise UserError(f"cannot write video {output}: use a name ending in {', '.join(CONTAINER_SUFFIXES)}")
        if input_path.exists() and output.exists() and os.path.samefile(input_path, output):
            raise UserError(f"--out {output} is the input video itself: choose another name")
        if not output.parent.is_dir():
            raise UserError(f"output folder {output.parent} does not exist: create it or choose another --out")
    if events is not None:
        event_format(events)
        if events.exists() and input_path.exists() and os.path.samefile(events, input_path):
            raise UserError(f"--events {events} is the input video itself: choose another name")
    if crops_dir is not None and events is None:
        raise UserError("--crops needs --events: the crops are referenced from the event log")
    if output is not None:
        probe_output(output, "annotated video")
    if events is not None:
        if not events.parent.is_dir():
            raise UserError(f"folder {events.parent} for the event log does not exist: create it first")
        probe_output(events, "event log")
    if crops_dir is not None:
        crops = Path(crops_dir)
        try:
            crops.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise classify_os_error(exc, crops) from exc
        probe_folder(crops, "face crops")


def _progress_bar(enabled: bool, total: int | None, name: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", desc=name, file=sys.stderr, dynamic_ncols=True, mininterval=0.5,
                smoothing=0.1, leave=True)
