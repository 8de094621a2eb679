"""What the operator's window asks of others, one controller a job: enrolment, the event log's
export, recording and settings. Each holds the window (`w`) and acts through its session, task
runner, banner and panels; `MainWindow` makes them and connects its signals to them."""
from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Sequence

from PyQt5.QtWidgets import QFileDialog

from engines.errors import UserError
from app.paths import user_data_dir
from app.settings import Settings, save_settings
from app.sources import FILE_SUFFIXES
from app.offline.unknowns import UnknownGroup
from engines.engine import FaceEngine
from ui import folders
from ui.enrol_dialog import Candidate, EnrolDialog
from ui.settings_dialog import SettingsDialog

log = logging.getLogger("unisight.ui")


class EnrolmentController:
    """Enrolment from the window: a live track's best crops, an unknown group's faces, or photos, in an
    `EnrolDialog`; the gallery panel and the unknowns list follow."""

    def __init__(self, window):
        self.w = window

    def enrol_selected(self) -> None:
        """Ctrl+E: the largest tracked face of the selected source, else enrol from photos."""
        view = self.w.grid.views.get(self.w.selection.current or "")
        faces = view.result.faces if view is not None and view.result is not None else None
        if faces is not None and faces.track_ids is not None and len(faces):
            tracked = [i for i in range(len(faces)) if faces.track_ids[i] >= 0]
            if tracked:
                i = max(tracked, key=lambda k: float(faces.widths[k] * faces.heights[k]))
                self.enrol_track(view.source_id, int(faces.track_ids[i]))
                return
        self.ask_enrol_photos()

    def enrol_track(self, source_id: str, track_id: int) -> EnrolDialog | None:
        """Open the enrolment dialog on the best crops of a live track."""
        if self.w.session is None:
            return None
        if track_id < 0:
            self.w.notify("this face is not tracked yet (seen in too few frames): click it again in a moment", "info")
            return None
        crops = self.w.session.track_crops(source_id, track_id)
        if not crops:
            self.w.notify(f"no face collected for track {track_id} yet", "info")
            return None
        candidates = [Candidate(payload=c.image, image=c.image, problems=c.problems, label=c.label, reason=c.reason,
                                caption=_crop_caption(c)) for c in crops]
        suggested = next((c.name for c in crops if c.name), "")
        return self._open_enrol(f"Enrol track #{track_id} of {source_id}", candidates, suggested,
                                lambda name, payloads, labels, confirm=True:
                                self.w.session.enrol_crops(name, payloads, labels, confirm=confirm))

    def enrol_group(self, group: UnknownGroup) -> EnrolDialog | None:
        """Open the enrolment dialog on the faces of one unknown group."""
        if self.w.session is None:
            return None
        candidates = []
        for a in group.appearances:
            crops = self.w.session.track_crops(a.source_id, a.track_id)
            for c in crops[:3]:
                candidates.append(Candidate(payload=c.image, image=c.image, problems=c.problems, label=c.label,
                                            reason=c.reason, caption=f"#{a.track_id} frame {c.frame_index}"))
            if not crops and a.best_crop is not None:
                candidates.append(Candidate(payload=a.best_crop, image=a.best_crop, label=f"{a.source_id} track "
                                            f"{a.track_id}", caption=f"#{a.track_id} best"))
        if not candidates:
            self.w.notify("no face crop was kept for this group", "info")
            return None
        return self._open_enrol("Enrol an unknown person", candidates[:12], "",
                                lambda name, payloads, labels, confirm=True:
                                self.w.session.enrol_crops(name, payloads, labels, confirm=confirm))

    def ask_enrol_photos(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self.w, "Photos of one person", folders.start_in(),
                                                "Images (*.jpg *.jpeg *.png *.bmp *.webp);;All files (*)")
        if paths:
            folders.remember(paths[0])
            self.enrol_photos(paths)

    def enrol_photos(self, paths: Sequence[str | Path]) -> None:
        """Read thumbnails of the photos (worker), then open the enrolment dialog on them."""
        paths = [str(p) for p in paths]

        session = self.w.session

        def thumbs():
            from app.gallery.enrollment import photo_problems
            from app.gallery.face_crop import thumbnail
            from app.imageio import load_image

            out = []
            for p in paths:
                try:
                    image = load_image(p)
                    h, w = image.shape[:2]
                    problems = photo_problems(session.engine, image) if session is not None else None
                    out.append((thumbnail(image, [0, 0, w, h], size=160, context=1.0), problems))
                except Exception as exc:  # unreadable: shown refused, with the reason
                    out.append((None, [str(exc)]))
            return out

        def show(checked):
            candidates = [Candidate(payload=p, image=img, label=p, caption=Path(p).name, problems=problems)
                          for p, (img, problems) in zip(paths, checked)]
            self._open_enrol(f"Enrol from {len(paths)} photo(s)", candidates, "",
                             lambda name, payloads, labels, confirm=True:
                             self.w.session.enrol_images(name, payloads, confirm=confirm))
        self.w.tasks.submit(thumbs, show, name="photos")

    def _open_enrol(self, title, candidates, suggested, enrol) -> EnrolDialog:
        names = self.w.gallery_panel.names()
        dialog = EnrolDialog(title, candidates, names, enrol, self.w.tasks, self.w, suggested=suggested)
        dialog.enrolled.connect(self._enrolled)
        dialog.finished.connect(lambda _: self.w._dialogs.remove(dialog) if dialog in self.w._dialogs else None)
        self.w._dialogs.append(dialog)
        dialog.show()
        return dialog

    def _enrolled(self, name: str) -> None:
        self.w.notify(f"enrolled {name}", "info")
        self.w._appearance_count = -1  # group the unknowns again: the person just enrolled leaves the list
        self.w.activity.refresh_events()
        self.w.gallery_panel.refresh()

    def _gallery_changed(self) -> None:
        if self.w.session is not None:
            self.w.session.refresh_names()


class EventExportController:
    """The event log written to CSV or JSON lines, on a worker thread."""

    def __init__(self, window):
        self.w = window

    def ask_export_events(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self.w, "Export the event log", folders.start_in("events.csv"),
                                              "CSV (*.csv);;JSON lines (*.jsonl)")
        folders.remember(path)
        if path:
            self.export_events(path)

    def export_events(self, path: str | Path) -> None:
        """Write the appearances so far (worker thread); the banner says where."""
        from app.offline.events import write_events

        appearances = self.w.session.appearances() if self.w.session else []
        self.w.tasks.submit(lambda: write_events(path, appearances),
                          lambda records: self.w.notify(f"{len(records)} events written to {path}", "info"),
                          name="export-events")


class RecordingController:
    """Recording the selected source's annotated view to `<data>/recordings/`."""

    def __init__(self, window):
        self.w = window

    def toggle_recording(self) -> None:
        sid = self.w.selection.current
        if self.w.session is None or sid is None:
            return
        if self.w.session.recording(sid):
            recorder = self.w.session.stop_recording(sid)
            self.w.tasks.submit(recorder.stop, lambda p: self.w.notify(f"recording saved: {p}", "info"),
                              name="record-stop")
            return
        path = recording_path(sid)
        folder = path.parent

        def start():
            folder.mkdir(parents=True, exist_ok=True)
            return self.w.session.start_recording(sid, path)
        self.w.tasks.submit(start, lambda r: self.w.notify(f"recording {sid} to {r.path}", "info"), name="record")


class SettingsController:
    """The settings dialog and what it changes: threshold and minimum face at once, a new engine or
    gallery in the background, the settings file."""

    def __init__(self, window):
        self.w = window

    def open_settings(self) -> SettingsDialog:
        dialog = SettingsDialog(self.w.settings, self.w)
        dialog.thresholdChanged.connect(self.set_threshold)
        dialog.minFaceChanged.connect(self.set_min_face)
        dialog.applied.connect(self.apply_settings)
        dialog.finished.connect(lambda _: self.w._dialogs.remove(dialog) if dialog in self.w._dialogs else None)
        self.w._dialogs.append(dialog)
        dialog.show()
        return dialog

    def set_threshold(self, value: float | None) -> None:
        if self.w.session is not None:
            self.w.session.set_threshold(value)

    def set_min_face(self, pixels: int) -> None:
        if self.w.session is not None:
            self.w.session.set_min_face(pixels)

    def apply_settings(self, new: Settings) -> None:
        """Use `new` (threshold and sizes at once; a new engine or gallery loads in the
        background) and save it."""
        old = self.w.settings
        if new.engine != old.engine and new.threshold == old.threshold:
            # a threshold is a cosine of one engine's embeddings: another engine starts at its own
            new = dataclasses.replace(new, threshold=None)
        self.w.settings = new
        self.set_threshold(new.threshold)
        self.set_min_face(new.min_face)
        for view in self.w.grid.views.values():
            view.show_landmarks = new.show_landmarks
            view.update()
        if self.w.session is not None and (new.engine_changed(old) or new.gallery_dir != old.gallery_dir):
            engine = None if new.engine_changed(old) else self.w.session.engine
            self.w._settings_before = old
            self.w.notify("loading the new engine / gallery…", "info")
            self.w.tasks.submit(lambda: prepare(new, engine), self.w._prepared,
                              self.w._prepare_failed, name="engine")
        if self.w.persist:
            self.w.tasks.submit(lambda: save_settings(new, self.w.settings_file), name="save-settings")


def prepare(settings: Settings, engine: FaceEngine | None = None):
    """(engine, gallery or None, why the gallery is None): the slow part of starting, for a
    worker thread. `engine` given: use it instead of creating one from the settings."""
    from app.engine_options import EngineRequest, make_engine_for_gui
    from app.gallery.store import open_gallery

    made = engine is None
    if made:
        engine = make_engine_for_gui(EngineRequest.from_settings(settings))
    try:
        gallery = open_gallery(settings.gallery_dir, engine, threshold=settings.threshold)
        return engine, gallery, None
    except UserError as exc:
        return engine, None, exc
    except BaseException:
        if made:
            engine.close()
        raise


def _crop_caption(crop) -> str:
    """Two short lines under a track crop: where it is from and why it passes or fails."""
    verdict = "✓ face, same person" if crop.usable else "✕ " + crop.problems[0].split(" (")[0]
    return f"frame {crop.frame_index} · q {crop.weight:.2f}\n{verdict}"


def recording_path(source_id: str, when: float | None = None) -> Path:
    """`<data>/recordings/clip-20261206-193000.mp4` for source `clip.mp4` (no `.mp4-` inside)."""
    stem = Path(source_id).stem if Path(source_id).suffix.lower() in FILE_SUFFIXES else source_id
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem)[-40:]
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    return user_data_dir() / "recordings" / f"{safe}-{stamp}.mp4"
