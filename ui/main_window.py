"""The operator's window: live views of up to four sources with faces drawn over them,
player controls, sources, gallery, unknown people, event log, settings, recording.

The GUI thread only shows and steers. Frames arrive through `FramePump` (a timer reading
the session's latest-frame slot); engines, enrolment, gallery and file work run on
`TaskRunner` threads; the pipeline is rebuilt by the session's control thread.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Sequence

from PyQt5.QtCore import Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import QLabel, QMainWindow, QSplitter, QTabWidget, QVBoxLayout, QWidget

from engines.errors import UserError
from app.live.session import LiveSession
from app.settings import Settings, save_settings
from app.sources import SourceState
from app.live.stats import LatencyWindow, RateMeter
from app.types import FrameResult
from engines.engine import FaceEngine
from ui.banner import Banner
from ui.controllers import EnrolmentController, EventExportController, RecordingController, SettingsController, prepare
from ui.window_controls import ActivityController, PlayerController, ToolbarController
from ui.event_log import EventLog
from ui.frame_bridge import FramePump
from ui.gallery_panel import GalleryPanel
from ui.selection import SourceSelection
from ui.source_panel import SourcePanel
from ui.status_bar import DisplayStats, status_text
from ui.tasks import TaskRunner
from ui.transport import TransportBar
from ui.unknowns_panel import UnknownsPanel
from ui.video_grid import VideoGrid

log = logging.getLogger("unisight.ui")

SourceSpec = str | tuple[str, bool]  # a spec, or (spec, loop)


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
        # one controller a job (ui/controllers.py)
        self.enrolment = EnrolmentController(self)
        self.event_export = EventExportController(self)
        self.recording = RecordingController(self)
        self.preferences = SettingsController(self)
        self.player = PlayerController(self)
        self.toolbar = ToolbarController(self)
        self.activity = ActivityController(self)
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
        self.toolbar.build()
        self.resize(1280, 760)

        self.pump = FramePump(self._take_latest, parent=self)
        self.pump.frames.connect(self._show_frames)
        self.housekeeping = QTimer(self)
        self.housekeeping.setInterval(250)
        self.housekeeping.timeout.connect(self._housekeeping)
        self._house_ticks = 0

        self.grid.faceClicked.connect(self.enrolment.enrol_track)
        # one selection: the tiles and the list both set it and both follow it
        self.grid.selected.connect(self.selection.set)
        self.sources_panel.selected.connect(self.selection.set)
        self.selection.changed.connect(self.grid.select)
        self.selection.changed.connect(self.sources_panel.select)
        self.sources_panel.addRequested.connect(self.add_source)
        self.sources_panel.removeRequested.connect(self.remove_source)
        self.sources_panel.refreshCameras.connect(self.find_cameras)
        self.transport.playPause.connect(self.player.play_pause)
        self.transport.step.connect(lambda: self.player.on_current(lambda s, sid: s.step(sid)))
        self.transport.stepBack.connect(lambda: self.player.on_current(lambda s, sid: s.step_back(sid)))
        self.transport.seek.connect(lambda t: self.player.on_current(lambda s, sid: s.seek(sid, t)))
        self.transport.loopChanged.connect(lambda on: self.player.on_current(lambda s, sid: s.set_loop(sid, on)))
        self.transport.startStop.connect(self.player.start_stop)
        self.transport.record.connect(self.recording.toggle_recording)
        self.gallery_panel.changed.connect(self.enrolment._gallery_changed)
        self.gallery_panel.enrolPhotosRequested.connect(self.enrolment.ask_enrol_photos)
        self.unknowns_panel.enrolRequested.connect(self.enrolment.enrol_group)
        self.event_log.seekRequested.connect(self.player.seek_to_event)
        self.event_log.exportRequested.connect(self.event_export.ask_export_events)

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
        self.tasks.submit(lambda: prepare(settings, engine), self._prepared, self._prepare_failed, name="engine")
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
            self.activity.handle_event(event)
        self._refresh_sources()
        self.player.update_transport()
        if self._house_ticks % 2 == 0:
            self._update_status()
        if self._house_ticks % 4 == 0:
            self.activity.refresh_events()

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

    def _update_status(self) -> None:
        stats = self.session.stats() if self.session else None
        shown = DisplayStats(display_fps=self._display_rate.rate(),
                             capture_fps=stats.fps("capture") if stats else None,
                             inference_fps=stats.fps("inference") if stats else None,
                             latency_ms=self._latency.percentile_ms(50),
                             display_dropped=self.session.display_dropped() if self.session else 0,
                             max_gap_ms=self.pump.meter.recent_max_ms())
        self.status_label.setText(status_text(stats, shown, self.session.engine.info if self.session else None))

    # -- banner and measurements ------------------------------------------------------------
    def notify(self, text: str, level: str = "error", action=None, timeout_ms: int | None = None) -> None:
        """Show a message in the banner (never a modal box)."""
        if level == "error":
            log.warning("%s", text)
        self.banner.show_message(text, level, action=action, timeout_ms=timeout_ms)
