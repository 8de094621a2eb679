"""The window's own controls, one controller a job: the player (play, step, seek, the transport
bar), the toolbar and keys (`SHORTCUTS`), and the session's activity shown (events in the banner,
the event log, the unknown groups, the measurements). `MainWindow` makes them."""
from __future__ import annotations

import logging

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QKeySequence
from PyQt5.QtWidgets import QAction, QDialog, QDialogButtonBox, QLabel, QVBoxLayout

from app.live.entries import SessionEvent
from app.sources import SourceState

log = logging.getLogger("unisight.ui")

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


class PlayerController:
    """The player: play/pause, step, seek and loop on the selected source, start/stop all, and the
    transport bar kept in step with the selected source."""

    def __init__(self, window):
        self.w = window

    def on_current(self, fn) -> None:
        sid = self.w.selection.current
        if self.w.session is not None and sid is not None:
            fn(self.w.session, sid)

    def play_pause(self) -> None:
        entry = self.w.session.entry(self.w.selection.current) if self.w.session and self.w.selection.current else None
        if entry is None:
            return
        if entry.is_paused:
            self.w.session.resume(entry.source_id)
        else:
            self.w.session.pause(entry.source_id)

    def start_stop(self) -> None:
        if self.w.session is None:
            return
        if self.w.session.playing:
            self.w.session.stop()
        else:
            self.w.session.start()

    def seek_to_event(self, source_id: str, seconds: float) -> None:
        """Show the moment of an event: seek its file (live sources cannot go back)."""
        entry = self.w.session.entry(source_id) if self.w.session else None
        if entry is None:
            self.w.notify(f"source {source_id} is no longer open", "info")
            return
        if not entry.seekable:
            self.w.notify(f"{source_id} is live: it cannot go back to {seconds:.1f} s", "info")
            return
        self.w.selection.set(source_id)
        self.w.session.seek(source_id, seconds)

    def update_transport(self) -> None:
        entry = self.w.session.entry(self.w.selection.current) if self.w.session and self.w.selection.current else None
        self.w.transport.update_state(
            playing=self.w.session.playing if self.w.session else False,
            paused=entry.is_paused if entry else False,
            seekable=entry.seekable if entry else False,
            position=entry.current_position if entry else None,
            duration=entry.duration if entry else None,
            loop=entry.loop if entry else False,
            recording=self.w.session.recording(entry.source_id) if entry else False,
            has_source=entry is not None)


class ToolbarController:
    """The toolbar, the window's keys (`SHORTCUTS`) and Help -> Shortcuts."""

    def __init__(self, window):
        self.w = window

    def build(self) -> None:
        bar = self.w.addToolBar("main")
        bar.setMovable(False)
        actions = [
            ("Open video…", self.w.sources_panel._open_file),
            ("Enrol from photos…", self.w.enrolment.ask_enrol_photos),
            ("Export events…", self.w.event_export.ask_export_events),
            ("Settings…", self.w.preferences.open_settings),
        ]
        for text, slot in actions:
            action = QAction(text, self.w)
            action.triggered.connect(slot)
            bar.addAction(action)
            if text == "Open video…":
                self.w.open_action = action
        keys = {
            "Space": self.w.player.play_pause,
            "Right": lambda: self.w.player.on_current(lambda s, sid: s.step(sid)),
            "Left": lambda: self.w.player.on_current(lambda s, sid: s.step_back(sid)),
            "Ctrl+O": self.w.sources_panel._open_file,
            "Ctrl+E": self.w.enrolment.enrol_selected,
            "Delete": self.w.remove_selected,
            "F11": self.toggle_full_screen,
            "F1": self.show_shortcuts,
        }
        self.w.shortcut_actions: dict[str, QAction] = {}
        for key, slot in keys.items():
            action = QAction(key, self.w)
            action.setShortcut(QKeySequence(key))
            action.setShortcutContext(Qt.WindowShortcut)
            action.triggered.connect(slot)
            self.w.addAction(action)
            self.w.shortcut_actions[key] = action
        help_menu = self.w.menuBar().addMenu("&Help")
        shortcuts = help_menu.addAction("Shortcuts…")
        shortcuts.triggered.connect(self.show_shortcuts)

    def show_shortcuts(self) -> QDialog:
        """Help -> Shortcuts: the keys and what they do (non-modal)."""
        dialog = QDialog(self.w)
        dialog.setWindowTitle("Shortcuts")
        rows = "".join(f"<tr><td><b>{k}</b>&nbsp;&nbsp;</td><td>{what}</td></tr>" for k, what in SHORTCUTS)
        label = QLabel(f"<table>{rows}</table>", dialog)
        buttons = QDialogButtonBox(QDialogButtonBox.Close, dialog)
        buttons.rejected.connect(dialog.reject)
        layout = QVBoxLayout(dialog)
        layout.addWidget(label)
        layout.addWidget(buttons)
        dialog.finished.connect(lambda _: self.w._dialogs.remove(dialog) if dialog in self.w._dialogs else None)
        self.w._dialogs.append(dialog)
        dialog.show()
        return dialog

    def toggle_full_screen(self) -> None:
        self.w.showNormal() if self.w.isFullScreen() else self.w.showFullScreen()


class ActivityController:
    """What the session reports, shown: source events in the banner, the event log and the unknown
    groups (clustered on a worker), and the window's measurements."""

    def __init__(self, window):
        self.w = window

    def handle_event(self, event: SessionEvent) -> None:
        if event.kind == "state" and event.source_id is not None:
            view = self.w.grid.views.get(event.source_id)
            if view is not None:
                view.set_state(event.state, event.message if event.state != SourceState.LIVE else "")
            previous = self.w._states.get(event.source_id)
            self.w._states[event.source_id] = event.state
            if event.state == SourceState.RECONNECTING and previous != SourceState.RECONNECTING:
                self.w.notify(f"{event.source_id}: connection lost, reconnecting… ({event.message})", "warning")
            elif event.state == SourceState.LIVE and previous == SourceState.RECONNECTING:
                self.w.notify(f"{event.source_id}: reconnected", "info", timeout_ms=4000)
        elif event.kind == "error":
            self.w.notify(event.message, "error")
        else:
            self.w.notify(event.message, "info")

    def refresh_events(self) -> None:
        """Update the event log now, and the unknown groups (clustered on a worker)."""
        if self.w.session is None:
            return
        appearances = self.w.session.appearances()
        self.w.event_log.set_appearances(appearances)
        model = self.w.session.engine.info.model_id
        key = (len(appearances), sum(a.observations for a in appearances))
        if self.w._clustering or key == self.w._appearance_count:
            return
        self.w._appearance_count = key
        self.w._clustering = True
        current = [a for a in appearances if a.model_id in (None, model)]
        gallery = self.w.session.gallery

        def cluster():
            from app.offline.unknowns import cluster_unknowns

            return cluster_unknowns(_still_unknown(current, gallery, model), min_observations=3)

        def done(groups):
            self.w._clustering = False
            self.w.unknowns_panel.set_groups(groups)

        def failed(exc):
            self.w._clustering = False
            log.warning("clustering the unknown faces failed: %s", exc)
        self.w.tasks.submit(cluster, done, failed, name="unknowns")

    def metrics(self) -> dict:
        """What the window measured: GUI tick gaps and, per source, display vs source rate."""
        meter = self.w.pump.meter
        stats = self.w.session.stats() if self.w.session else None
        per_source = {}
        for sid, m in self.w._display_meters.items():
            entry = self.w.session.entry(sid) if self.w.session else None
            src = stats.sources.get(sid) if stats else None
            per_source[sid] = {
                "source_fps": round(entry.fps, 2) if entry and entry.fps else None,
                "capture_fps": round(src.capture_fps, 2) if src else None,
                "display_fps": round(m.rate(), 2),
                "captured": src.captured if src else None,
                "processed": src.processed if src else None,
                "dropped": src.dropped if src else None,
                "shown": self.w.grid.views[sid].frames_shown if sid in self.w.grid.views else 0,
                "state": entry.state.value if entry else None,
            }
        return {
            "max_tick_gap_ms": round(meter.max_gap_ms, 1),
            "p99_tick_gap_ms": round(meter.percentile_ms(99), 1),
            "median_tick_gap_ms": round(meter.percentile_ms(50), 1),
            "ticks": meter.ticks,
            "display_fps": round(self.w._display_rate.rate(), 2),
            "inference_fps": round(stats.fps("inference"), 2) if stats else None,
            "latency_p50_ms": None if self.w._latency.percentile_ms(50) is None else round(
                self.w._latency.percentile_ms(50), 1),
            "sources": per_source,
            "engine": None if self.w.session is None else {
                "engine": self.w.session.engine.info.engine, "backend": self.w.session.engine.info.backend,
                "model_id": self.w.session.engine.info.model_id,
                "random_weights": self.w.session.engine.info.random_weights},
        }


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
