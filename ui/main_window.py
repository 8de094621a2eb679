"""The operator's window: live views of up to four sources with faces drawn over them,
player controls, sources, gallery, unknown people, event log, settings, recording.

The GUI thread only shows and steers. Frames arrive through `FramePump` (a timer reading
the session's latest-frame slot); engines, enrolment, gallery and file work run on
`TaskRunner` threads; the pipeline is rebuilt by the session's control thread.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Sequence

from PyQt5.QtCore import Qt, QTimer, pyqtSignal
from PyQt5.QtGui import QKeySequence
from PyQt5.QtWidgets import (QAction, QDialog, QDialogButtonBox, QFileDialog, QLabel, QMainWindow, QSplitter,
                             QTabWidget, QVBoxLayout, QWidget)

from engines.errors import UserError
from app.live.entries import SessionEvent
from app.live.session import LiveSession
from app.paths import user_data_dir
from app.settings import Settings, engine_namespace, save_settings
from app.sources import FILE_SUFFIXES, SourceState
from app.live.stats import LatencyWindow, RateMeter
from app.types import FrameResult
from app.offline.unknowns import UnknownGroup
from engines.engine import FaceEngine
from ui import folders
from ui.banner import Banner
from ui.enrol_dialog import Candidate, EnrolDialog
from ui.event_log import EventLog
from ui.frame_bridge import FramePump
from ui.gallery_panel import GalleryPanel
from ui.selection import SourceSelection
from ui.settings_dialog import SettingsDialog
from ui.source_panel import SourcePanel
from ui.status_bar import DisplayStats, status_text
from ui.tasks import TaskRunner
from ui.transport import TransportBar
from ui.unknowns_panel import UnknownsPanel
from ui.video_grid import VideoGrid

log = logging.getLogger("unisight.ui")

SourceSpec = str | tuple[str, bool]  # a spec, or (spec, loop)

# (keys, what they do): the window's shortcuts, also listed by Help -> Shortcuts
SHORTCUTS: tuple[tuple[str, str], ...] = (
    ("Space", "play / pause the selected source"),
    ("Right", "next frame (pauses)"),
    ("Left", "previous frame (pauses)"),
    ("Ctrl+O", "open video files"),
    ("Ctrl+E", "enrol the largest tracked face of the selected source (else: from photos)"),
    ("Delete", "remove the selected source (Undo in the banner)"),
    ("F11", "full screen on / off"),
    ("F1", "this list"),
)


class MainWindow(QMainWindow):
    """See the module doc.

    settings: what to run with (`app.settings`); saved to `settings_file` when the operator
        accepts the settings dialog, if `persist`.
    sources: opened once the engine is ready.
    engine: an engine to use instead of creating one from the settings (tests, commands
        that made one already); the window owns it from then on.
    """

    ready = pyqtSignal()  # engine and gallery loaded, sources opened
    reconfigured = pyqtSignal()  # a new engine or gallery from the settings is in use

    def __init__(self, settings: Settings, *, sources: Sequence[SourceSpec] = (), engine: FaceEngine | None = None,
                 settings_file: str | Path | None = None, persist: bool = True, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Unisight")
        self.settings = settings
        self.settings_file = Path(settings_file) if settings_file is not None else None
        self.persist = persist
        self.session: LiveSession | None = None
        self._initial_sources = [(s, False) if isinstance(s, str) else (str(s[0]), bool(s[1])) for s in sources]
        self._given_engine = engine
        self._closing = False
        self._clustering = False
        self._appearance_count = -1
        self._dialogs: list[QWidget] = []
        self._display_meters: dict[str, RateMeter] = {}  # frames painted per source
        self._display_rate = RateMeter(window=3.0)  # frames painted, all sources
        self._latency = LatencyWindow(120)
        self._states: dict[str, SourceState] = {}
        self._settings_before: Settings | None = None  # what to go back to if a new engine fails

        self.tasks = TaskRunner(self, on_error=lambda exc: self.notify(str(exc), "error"))
        self.selection = SourceSelection(self)
        self.grid = VideoGrid(self)
        self.transport = TransportBar(self)
        self.sources_panel = SourcePanel(self)
        self.gallery_panel = GalleryPanel(lambda: self.session.gallery if self.session else None, self.tasks,
                                          self.notify, self)
        self.unknowns_panel = UnknownsPanel(self)
        self.event_log = EventLog(self)
        self.tabs = QTabWidget(self)
        self.tabs.addTab(self.sources_panel, "Sources")
        self.tabs.addTab(self.gallery_panel, "Gallery")
        self.tabs.addTab(self.unknowns_panel, "Unknowns")
        self.tabs.addTab(self.event_log, "Events")
        self.status_label = QLabel("starting…", self)
        self.statusBar().addWidget(self.status_label, 1)

        left = QWidget(self)
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.grid, 1)
        left_layout.addWidget(self.transport)
        splitter = QSplitter(Qt.Horizontal, self)
        splitter.addWidget(left)
        splitter.addWidget(self.tabs)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        splitter.setChildrenCollapsible(False)
        self.tabs.setMinimumWidth(250)  # the video and the player keep their room at 1024 x 600
        self.splitter = splitter
        self._sized = False
        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter, 1)
        self.setCentralWidget(central)
        self.banner = Banner(central)  # floats over the top: never pushes the layout down
        self._build_toolbar()
        self.resize(1280, 760)

        self.pump = FramePump(self._take_latest, parent=self)
        self.pump.frames.connect(self._show_frames)
        self.housekeeping = QTimer(self)
        self.housekeeping.setInterval(250)
        self.housekeeping.timeout.connect(self._housekeeping)
        self._house_ticks = 0

        self.grid.faceClicked.connect(self.enrol_track)
        # one selection: the tiles and the list both set it and both follow it
        self.grid.selected.connect(self.selection.set)
        self.sources_panel.selected.connect(self.selection.set)
        self.selection.changed.connect(self.grid.select)
        self.selection.changed.connect(self.sources_panel.select)
        self.sources_panel.addRequested.connect(self.add_source)
        self.sources_panel.removeRequested.connect(self.remove_source)
        self.sources_panel.refreshCameras.connect(self.find_cameras)
        self.transport.playPause.connect(self._play_pause)
        self.transport.step.connect(lambda: self._on_current(lambda s, sid: s.step(sid)))
        self.transport.stepBack.connect(lambda: self._on_current(lambda s, sid: s.step_back(sid)))
        self.transport.seek.connect(lambda t: self._on_current(lambda s, sid: s.seek(sid, t)))
        self.transport.loopChanged.connect(lambda on: self._on_current(lambda s, sid: s.set_loop(sid, on)))
        self.transport.startStop.connect(self._start_stop)
        self.transport.record.connect(self.toggle_recording)
        self.gallery_panel.changed.connect(self._gallery_changed)
        self.gallery_panel.enrolPhotosRequested.connect(self.ask_enrol_photos)
        self.unknowns_panel.enrolRequested.connect(self.enrol_group)
        self.event_log.seekRequested.connect(self.seek_to_event)
        self.event_log.exportRequested.connect(self.ask_export_events)

    def _build_toolbar(self) -> None:
        bar = self.addToolBar("main")
        bar.setMovable(False)
        actions = [
            ("Open video…", self.sources_panel._open_file),
            ("Enrol from photos…", self.ask_enrol_photos),
            ("Export events…", self.ask_export_events),
            ("Settings…", self.open_settings),
        ]
        for text, slot in actions:
            action = QAction(text, self)
            action.triggered.connect(slot)
            bar.addAction(action)
            if text == "Open video…":
                self.open_action = action
        keys = {
            "Space": self._play_pause,
            "Right": lambda: self._on_current(lambda s, sid: s.step(sid)),
            "Left": lambda: self._on_current(lambda s, sid: s.step_back(sid)),
            "Ctrl+O": self.sources_panel._open_file,
            "Ctrl+E": self.enrol_selected,
            "Delete": self.remove_selected,
            "F11": self.toggle_full_screen,
            "F1": self.show_shortcuts,
        }
        self.shortcut_actions: dict[str, QAction] = {}
        for key, slot in keys.items():
            action = QAction(key, self)
            action.setShortcut(QKeySequence(key))
            action.setShortcutContext(Qt.WindowShortcut)
            action.triggered.connect(slot)
            self.addAction(action)
            self.shortcut_actions[key] = action
        help_menu = self.menuBar().addMenu("&Help")
        shortcuts = help_menu.addAction("Shortcuts…")
        shortcuts.triggered.connect(self.show_shortcuts)

    def show_shortcuts(self) -> QDialog:
        """Help -> Shortcuts: the keys and what they do (non-modal)."""
        dialog = QDialog(self)
        dialog.setWindowTitle("Shortcuts")
        rows = "".join(f"<tr><td><b>{k}</b>&nbsp;&nbsp;</td><td>{what}</td></tr>" for k, what in SHORTCUTS)
        label = QLabel(f"<table>{rows}</table>", dialog)
        buttons = QDialogButtonBox(QDialogButtonBox.Close, dialog)
        buttons.rejected.connect(dialog.reject)
        layout = QVBoxLayout(dialog)
        layout.addWidget(label)
        layout.addWidget(buttons)
        dialog.finished.connect(lambda _: self._dialogs.remove(dialog) if dialog in self._dialogs else None)
        self._dialogs.append(dialog)
        dialog.show()
        return dialog

    def toggle_full_screen(self) -> None:
        self.showNormal() if self.isFullScreen() else self.showFullScreen()

    def enrol_selected(self) -> None:
        """Ctrl+E: the largest tracked face of the selected source, else enrol from photos."""
        view = self.grid.views.get(self.selection.current or "")
        faces = view.result.faces if view is not None and view.result is not None else None
        if faces is not None and faces.track_ids is not None and len(faces):
            tracked = [i for i in range(len(faces)) if faces.track_ids[i] >= 0]
            if tracked:
                i = max(tracked, key=lambda k: float(faces.widths[k] * faces.heights[k]))
                self.enrol_track(view.source_id, int(faces.track_ids[i]))
                return
        self.ask_enrol_photos()

    def remove_selected(self) -> None:
        """Delete: remove the selected source (the banner offers Undo)."""
        if self.selection.current is not None:
            self.remove_source(self.selection.current)

    # -- start and stop --------------------------------------------------------------------
    def start(self) -> None:
        """Load the engine and gallery (worker), then open the sources; `ready` when done."""
        self.pump.start()
        self.housekeeping.start()
        engine, self._given_engine = self._given_engine, None
        settings = self.settings
        self.notify(f"loading the {settings.engine} engine…", "info", timeout_ms=4000)
        self.tasks.submit(lambda: _prepare(settings, engine), self._prepared, self._prepare_failed, name="engine")
        self.find_cameras()

    def _prepared(self, value) -> None:
        engine, gallery, gallery_error = value
        if self._closing:
            engine.close()
            if gallery is not None:
                gallery.close()
            return
        if gallery_error is not None:
            self.notify(f"gallery not opened: {gallery_error}", "error")
        if self.session is None:
            self.session = LiveSession(engine, gallery, threshold=self.settings.threshold,
                                       min_face=self.settings.min_face)
            for spec, loop in self._initial_sources:
                self.add_source(spec, loop)
            if self.banner.level == "info":  # the "loading" note goes; an error about a source stays
                self.banner.hide()
            if engine.info.random_weights:
                self.notify(f"{engine.info.model_id}: RANDOM WEIGHTS (no trained model yet): boxes and names are "
                            "meaningless; choose the cascade engine in Settings", "warning", timeout_ms=15000)
            self.gallery_panel.refresh()
            self.ready.emit()
        else:
            self.session.reconfigure(engine, gallery)
            self.gallery_panel.refresh()
            self.notify(f"now running {engine.info.engine}/{engine.info.backend}", "info")
            self.reconfigured.emit()

    def _prepare_failed(self, exc: BaseException) -> None:
        previous, self._settings_before = self._settings_before, None
        if previous is not None and self.session is not None:  # the old engine runs on: show its settings
            self.settings = previous
            if self.persist:
                self.tasks.submit(lambda: save_settings(previous, self.settings_file), name="save-settings")
            info = self.session.engine.info
            self.notify(f"engine not started: {exc}; still running {info.engine}/{info.backend}", "error")
            return
        self.notify(f"engine not started: {exc} (choose another engine or backend in Settings)", "error")

    def find_cameras(self) -> None:
        from app.sources.cameras import find_cameras

        self.tasks.submit(find_cameras, self.sources_panel.set_cameras, lambda exc: self.sources_panel.set_cameras([]),
                          name="cameras")

    def shutdown(self) -> bool:
        """Stop every thread this window started; True when all ended."""
        if self._closing:
            return True
        self._closing = True
        self.pump.stop()
        self.housekeeping.stop()
        for dialog in self._dialogs:
            dialog.close()
        ok = True
        if self.session is not None:
            ok = self.session.close()
        return self.tasks.wait(10.0) and ok

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._sized:  # the side panel gets about 30% of the first width, the video the rest
            self._sized = True
            side = max(320, min(420, self.width() * 3 // 10))
            self.splitter.setSizes([self.width() - side, side])

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._sized and event.oldSize().width() > 0:
            side = self.splitter.sizes()[1]
            self.splitter.setSizes([max(200, self.width() - side), side])

    def closeEvent(self, event) -> None:
        self.shutdown()
        event.accept()

    # -- sources ---------------------------------------------------------------------------
    def add_source(self, spec: str, loop: bool = False) -> str | None:
        """Open a source in a new view; errors go to the banner. Returns its id."""
        if self.session is None:
            self._initial_sources.append((spec, loop))
            return None
        try:
            sid = self.session.add_source(spec, loop=loop)
        except UserError as exc:
            self.notify(str(exc), "error")
            return None
        self.grid.add_view(sid).show_landmarks = self.settings.show_landmarks
        self._display_meters[sid] = RateMeter(window=3.0)
        self.selection.set(sid)
        self._refresh_sources()
        return sid

    def remove_source(self, source_id: str, undo: bool = True) -> None:
        """Close one source; the banner names it and offers Undo (reopen it where it was)."""
        entry = self.session.entry(source_id) if self.session is not None else None
        if self.session is not None:
            self.session.remove_source(source_id)
        self.grid.remove_view(source_id)
        self._display_meters.pop(source_id, None)
        self._refresh_sources()
        if entry is not None and undo:
            spec, loop = entry.spec, entry.loop
            position = entry.current_position if entry.seekable else None

            def reopen():
                sid = self.add_source(spec, loop)
                if sid is not None and position:
                    self.session.seek(sid, position)
            self.notify(f"removed {source_id}", "info", action=("Undo", reopen), timeout_ms=10000)

    def _on_current(self, fn) -> None:
        sid = self.selection.current
        if self.session is not None and sid is not None:
            fn(self.session, sid)

    def _play_pause(self) -> None:
        entry = self.session.entry(self.selection.current) if self.session and self.selection.current else None
        if entry is None:
            return
        if entry.is_paused:
            self.session.resume(entry.source_id)
        else:
            self.session.pause(entry.source_id)

    def _start_stop(self) -> None:
        if self.session is None:
            return
        if self.session.playing:
            self.session.stop()
        else:
            self.session.start()

    def seek_to_event(self, source_id: str, seconds: float) -> None:
        """Show the moment of an event: seek its file (live sources cannot go back)."""
        entry = self.session.entry(source_id) if self.session else None
        if entry is None:
            self.notify(f"source {source_id} is no longer open", "info")
            return
        if not entry.seekable:
            self.notify(f"{source_id} is live: it cannot go back to {seconds:.1f} s", "info")
            return
        self.selection.set(source_id)
        self.session.seek(source_id, seconds)

    # -- frames ----------------------------------------------------------------------------
    def _take_latest(self) -> dict[str, FrameResult]:
        return self.session.take_latest() if self.session is not None else {}

    def _show_frames(self, results: dict[str, FrameResult]) -> None:
        now = time.monotonic()
        for sid, result in results.items():
            view = self.grid.views.get(sid)
            if view is None:
                continue
            view.set_result(result)
            self._display_rate.tick(now=now)
            meter = self._display_meters.get(sid)
            if meter is not None:
                meter.tick(now=now)
            self._latency.add(now - result.frame.capture_time)

    # -- periodic --------------------------------------------------------------------------
    def _housekeeping(self) -> None:
        self._house_ticks += 1
        session = self.session
        if session is None:
            self._update_status()
            return
        for event in session.drain_events():
            self._handle_event(event)
        self._refresh_sources()
        self._update_transport()
        if self._house_ticks % 2 == 0:
            self._update_status()
        if self._house_ticks % 4 == 0:
            self.refresh_events()

    def _handle_event(self, event: SessionEvent) -> None:
        if event.kind == "state" and event.source_id is not None:
            view = self.grid.views.get(event.source_id)
            if view is not None:
                view.set_state(event.state, event.message if event.state != SourceState.LIVE else "")
            previous = self._states.get(event.source_id)
            self._states[event.source_id] = event.state
            if event.state == SourceState.RECONNECTING and previous != SourceState.RECONNECTING:
                self.notify(f"{event.source_id}: connection lost, reconnecting… ({event.message})", "warning")
            elif event.state == SourceState.LIVE and previous == SourceState.RECONNECTING:
                self.notify(f"{event.source_id}: reconnected", "info", timeout_ms=4000)
        elif event.kind == "error":
            self.notify(event.message, "error")
        else:
            self.notify(event.message, "info")

    def _refresh_sources(self) -> None:
        if self.session is None:
            return
        entries = self.session.entries
        self.sources_panel.set_sources([(e.source_id, e.kind, e.state, e.message) for e in entries])
        self.open_action.setEnabled(self.sources_panel.open_file.isEnabled())  # greyed at 4 of 4
        for e in entries:
            view = self.grid.views.get(e.source_id)
            if view is not None:
                view.set_flags(paused=e.is_paused, recording=self.session.recording(e.source_id))

    def _update_transport(self) -> None:
        entry = self.session.entry(self.selection.current) if self.session and self.selection.current else None
        self.transport.update_state(
            playing=self.session.playing if self.session else False,
            paused=entry.is_paused if entry else False,
            seekable=entry.seekable if entry else False,
            position=entry.current_position if entry else None,
            duration=entry.duration if entry else None,
            loop=entry.loop if entry else False,
            recording=self.session.recording(entry.source_id) if entry else False,
            has_source=entry is not None)

    def _update_status(self) -> None:
        stats = self.session.stats() if self.session else None
        shown = DisplayStats(display_fps=self._display_rate.rate(),
                             capture_fps=stats.fps("capture") if stats else None,
                             inference_fps=stats.fps("inference") if stats else None,
                             latency_ms=self._latency.percentile_ms(50),
                             display_dropped=self.session.display_dropped() if self.session else 0,
                             max_gap_ms=self.pump.meter.recent_max_ms())
        self.status_label.setText(status_text(stats, shown, self.session.engine.info if self.session else None))

    def refresh_events(self) -> None:
        """Update the event log now, and the unknown groups (clustered on a worker)."""
        if self.session is None:
            return
        appearances = self.session.appearances()
        self.event_log.set_appearances(appearances)
        model = self.session.engine.info.model_id
        key = (len(appearances), sum(a.observations for a in appearances))
        if self._clustering or key == self._appearance_count:
            return
        self._appearance_count = key
        self._clustering = True
        current = [a for a in appearances if a.model_id in (None, model)]
        gallery = self.session.gallery

        def cluster():
            from app.offline.unknowns import cluster_unknowns

            return cluster_unknowns(_still_unknown(current, gallery, model), min_observations=3)

        def done(groups):
            self._clustering = False
            self.unknowns_panel.set_groups(groups)

        def failed(exc):
            self._clustering = False
            log.warning("clustering the unknown faces failed: %s", exc)
        self.tasks.submit(cluster, done, failed, name="unknowns")

    # -- enrolment -------------------------------------------------------------------------
    def enrol_track(self, source_id: str, track_id: int) -> EnrolDialog | None:
        """Open the enrolment dialog on the best crops of a live track."""
        if self.session is None:
            return None
        if track_id < 0:
            self.notify("this face is not tracked yet (seen in too few frames): click it again in a moment", "info")
            return None
        crops = self.session.track_crops(source_id, track_id)
        if not crops:
            self.notify(f"no face collected for track {track_id} yet", "info")
            return None
        candidates = [Candidate(payload=c.image, image=c.image, problems=c.problems, label=c.label, reason=c.reason,
                                caption=_crop_caption(c)) for c in crops]
        suggested = next((c.name for c in crops if c.name), "")
        return self._open_enrol(f"Enrol track #{track_id} of {source_id}", candidates, suggested,
                                lambda name, payloads, labels, confirm=True:
                                self.session.enrol_crops(name, payloads, labels, confirm=confirm))

    def enrol_group(self, group: UnknownGroup) -> EnrolDialog | None:
        """Open the enrolment dialog on the faces of one unknown group."""
        if self.session is None:
            return None
        candidates = []
        for a in group.appearances:
            crops = self.session.track_crops(a.source_id, a.track_id)
            for c in crops[:3]:
                candidates.append(Candidate(payload=c.image, image=c.image, problems=c.problems, label=c.label,
                                            reason=c.reason, caption=f"#{a.track_id} frame {c.frame_index}"))
            if not crops and a.best_crop is not None:
                candidates.append(Candidate(payload=a.best_crop, image=a.best_crop, label=f"{a.source_id} track "
                                            f"{a.track_id}", caption=f"#{a.track_id} best"))
        if not candidates:
            self.notify("no face crop was kept for this group", "info")
            return None
        return self._open_enrol("Enrol an unknown person", candidates[:12], "",
                                lambda name, payloads, labels, confirm=True:
                                self.session.enrol_crops(name, payloads, labels, confirm=confirm))

    def ask_enrol_photos(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Photos of one person", folders.start_in(),
                                                "Images (*.jpg *.jpeg *.png *.bmp *.webp);;All files (*)")
        if paths:
            folders.remember(paths[0])
            self.enrol_photos(paths)

    def enrol_photos(self, paths: Sequence[str | Path]) -> None:
        """Read thumbnails of the photos (worker), then open the enrolment dialog on them."""
        paths = [str(p) for p in paths]

        session = self.session

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
                             self.session.enrol_images(name, payloads, confirm=confirm))
        self.tasks.submit(thumbs, show, name="photos")

    def _open_enrol(self, title, candidates, suggested, enrol) -> EnrolDialog:
        names = self.gallery_panel.names()
        dialog = EnrolDialog(title, candidates, names, enrol, self.tasks, self, suggested=suggested)
        dialog.enrolled.connect(self._enrolled)
        dialog.finished.connect(lambda _: self._dialogs.remove(dialog) if dialog in self._dialogs else None)
        self._dialogs.append(dialog)
        dialog.show()
        return dialog

    def _enrolled(self, name: str) -> None:
        self.notify(f"enrolled {name}", "info")
        self._appearance_count = -1  # group the unknowns again: the person just enrolled leaves the list
        self.refresh_events()
        self.gallery_panel.refresh()

    def _gallery_changed(self) -> None:
        if self.session is not None:
            self.session.refresh_names()

    # -- events export ---------------------------------------------------------------------
    def ask_export_events(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the event log", folders.start_in("events.csv"),
                                              "CSV (*.csv);;JSON lines (*.jsonl)")
        folders.remember(path)
        if path:
            self.export_events(path)

    def export_events(self, path: str | Path) -> None:
        """Write the appearances so far (worker thread); the banner says where."""
        from app.offline.events import write_events

        appearances = self.session.appearances() if self.session else []
        self.tasks.submit(lambda: write_events(path, appearances),
                          lambda records: self.notify(f"{len(records)} events written to {path}", "info"),
                          name="export-events")

    # -- recording -------------------------------------------------------------------------
    def toggle_recording(self) -> None:
        sid = self.selection.current
        if self.session is None or sid is None:
            return
        if self.session.recording(sid):
            recorder = self.session.stop_recording(sid)
            self.tasks.submit(recorder.stop, lambda p: self.notify(f"recording saved: {p}", "info"),
                              name="record-stop")
            return
        path = recording_path(sid)
        folder = path.parent

        def start():
            folder.mkdir(parents=True, exist_ok=True)
            return self.session.start_recording(sid, path)
        self.tasks.submit(start, lambda r: self.notify(f"recording {sid} to {r.path}", "info"), name="record")

    # -- settings --------------------------------------------------------------------------
    def open_settings(self) -> SettingsDialog:
        dialog = SettingsDialog(self.settings, self)
        dialog.thresholdChanged.connect(self.set_threshold)
        dialog.minFaceChanged.connect(self.set_min_face)
        dialog.applied.connect(self.apply_settings)
        dialog.finished.connect(lambda _: self._dialogs.remove(dialog) if dialog in self._dialogs else None)
        self._dialogs.append(dialog)
        dialog.show()
        return dialog

    def set_threshold(self, value: float | None) -> None:
        if self.session is not None:
            self.session.set_threshold(value)

    def set_min_face(self, pixels: int) -> None:
        if self.session is not None:
            self.session.set_min_face(pixels)

    def apply_settings(self, new: Settings) -> None:
        """Use `new` (threshold and sizes at once; a new engine or gallery loads in the
        background) and save it."""
        old = self.settings
        if new.engine != old.engine and new.threshold == old.threshold:
            # a threshold is a cosine of one engine's embeddings: another engine starts at its own
            new = dataclasses.replace(new, threshold=None)
        self.settings = new
        self.set_threshold(new.threshold)
        self.set_min_face(new.min_face)
        for view in self.grid.views.values():
            view.show_landmarks = new.show_landmarks
            view.update()
        if self.session is not None and (new.engine_changed(old) or new.gallery_dir != old.gallery_dir):
            engine = None if new.engine_changed(old) else self.session.engine
            self._settings_before = old
            self.notify("loading the new engine / gallery…", "info")
            self.tasks.submit(lambda: _prepare(new, engine), self._prepared,
                              self._prepare_failed, name="engine")
        if self.persist:
            self.tasks.submit(lambda: save_settings(new, self.settings_file), name="save-settings")

    # -- banner and measurements ------------------------------------------------------------
    def notify(self, text: str, level: str = "error", action=None, timeout_ms: int | None = None) -> None:
        """Show a message in the banner (never a modal box)."""
        if level == "error":
            log.warning("%s", text)
        self.banner.show_message(text, level, action=action, timeout_ms=timeout_ms)

    def metrics(self) -> dict:
        """What the window measured: GUI tick gaps and, per source, display vs source rate."""
        meter = self.pump.meter
        stats = self.session.stats() if self.session else None
        per_source = {}
        for sid, m in self._display_meters.items():
            entry = self.session.entry(sid) if self.session else None
            src = stats.sources.get(sid) if stats else None
            per_source[sid] = {
                "source_fps": round(entry.fps, 2) if entry and entry.fps else None,
                "capture_fps": round(src.capture_fps, 2) if src else None,
                "display_fps": round(m.rate(), 2),
                "captured": src.captured if src else None,
                "processed": src.processed if src else None,
                "dropped": src.dropped if src else None,
                "shown": self.grid.views[sid].frames_shown if sid in self.grid.views else 0,
                "state": entry.state.value if entry else None,
            }
        return {
            "max_tick_gap_ms": round(meter.max_gap_ms, 1),
            "p99_tick_gap_ms": round(meter.percentile_ms(99), 1),
            "median_tick_gap_ms": round(meter.percentile_ms(50), 1),
            "ticks": meter.ticks,
            "display_fps": round(self._display_rate.rate(), 2),
            "inference_fps": round(stats.fps("inference"), 2) if stats else None,
            "latency_p50_ms": None if self._latency.percentile_ms(50) is None else round(
                self._latency.percentile_ms(50), 1),
            "sources": per_source,
            "engine": None if self.session is None else {
                "engine": self.session.engine.info.engine, "backend": self.session.engine.info.backend,
                "model_id": self.session.engine.info.model_id,
                "random_weights": self.session.engine.info.random_weights},
        }


def _prepare(settings: Settings, engine: FaceEngine | None = None):
    """(engine, gallery or None, why the gallery is None): the slow part of starting, for a
    worker thread. `engine` given: use it instead of creating one from the settings."""
    from app.engine_process import make_engine_for_gui
    from app.gallery.store import open_gallery

    made = engine is None
    if made:
        engine = make_engine_for_gui(engine_namespace(settings))
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


def _still_unknown(appearances, gallery, model_id):
    """The unknown appearances that the gallery does not name now (someone enrolled since)."""
    unknown = [a for a in appearances if a.name is None]
    if gallery is None or not model_id:
        return unknown
    with_embedding = [a for a in unknown if a.embedding is not None]
    if not with_embedding:
        return unknown
    import numpy as np

    names = gallery.match(np.stack([a.embedding for a in with_embedding]), model_id, allow_missing=True).names
    named = {id(a) for a, n in zip(with_embedding, names) if n is not None}
    return [a for a in unknown if id(a) not in named]


def recording_path(source_id: str, when: float | None = None) -> Path:
    """`<data>/recordings/clip-20261206-193000.mp4` for source `clip.mp4` (no `.mp4-` inside)."""
    stem = Path(source_id).stem if Path(source_id).suffix.lower() in FILE_SUFFIXES else source_id
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem)[-40:]
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    return user_data_dir() / "recordings" / f"{safe}-{stamp}.mp4"
