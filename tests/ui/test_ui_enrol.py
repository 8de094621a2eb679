"""Enrolment from the live feed and from photos, the gallery panel, the unknowns panel."""
import cv2
import numpy as np
import pytest
from PyQt5.QtCore import Qt

from app.gallery.store import Gallery, NewSample
from app.sources import SyntheticSource
from tests.support.ui_support import (  # noqa: F401  (no_threads_left_behind: an autouse fixture)
    SYNTHETIC, no_threads_left_behind, open_window, unit, view_of, wait_frames)

pytestmark = pytest.mark.timeout(120)



def _tracked(view):
    faces = view.result.faces if view.result is not None else None
    return faces is not None and len(faces) == 1 and faces.track_ids[0] >= 0


def test_click_a_face_enrol_it_through_the_dialog_and_it_is_recognised(qtbot, tmp_path):
    window = open_window(qtbot, tmp_path, [SYNTHETIC])
    view = view_of(window)
    qtbot.waitUntil(lambda: _tracked(view), timeout=10000)
    wait_frames(qtbot, view, 15)  # a few crops, some frames apart
    assert view.result.faces.names == [None]
    qtbot.mouseClick(view, Qt.LeftButton, pos=view.face_centre(0).toPoint())
    qtbot.waitUntil(lambda: len(window._dialogs) == 1, timeout=3000)
    dialog = window._dialogs[0]
    assert len(dialog.candidates) >= 2
    assert all(c.problems == [] for c in dialog.candidates)  # quality checked: these would pass
    assert dialog.items.item(0).checkState() == Qt.Checked
    dialog.name.setEditText("Alice")
    with qtbot.waitSignal(dialog.enrolled, timeout=10000) as signal:
        qtbot.mouseClick(dialog.buttons.button(dialog.buttons.Save), Qt.LeftButton)
    assert signal.args == ["Alice"]
    assert dialog.result.ok and len(dialog.result.added) == len(dialog.candidates)
    # the same person is named from the next frames on, and the gallery lists her
    qtbot.waitUntil(lambda: view.result.faces.names == ["Alice"], timeout=5000)
    assert view.result.faces.similarities[0] == pytest.approx(1.0)
    qtbot.waitUntil(lambda: window.gallery_panel.names() == ["Alice"], timeout=5000)
    assert window.gallery_panel.identities[0].sample_count == len(dialog.candidates)
    assert window.gallery_panel.identities[0].thumbnail is not None
    window.activity.refresh_events()
    assert any(a.name == "Alice" for a in window.event_log.model.rows)


def _photos(tmp_path, n=2):
    src = SyntheticSource(width=320, height=240, fps=30, count=1, realtime=False, seed=3)
    src.open()
    paths = []
    for i in range(n):
        for _ in range(7):
            frame = src.read()
        path = tmp_path / f"photo{i}.png"
        cv2.imwrite(str(path), frame.image)
        paths.append(path)
    return paths


def test_enrol_from_several_photos_with_the_look_alike_warning(qtbot, tmp_path):
    window = open_window(qtbot, tmp_path, [SYNTHETIC])
    photos = _photos(tmp_path)
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 128, np.uint8))  # a flat picture: no face
    window.enrolment.enrol_photos([*photos, blank])
    qtbot.waitUntil(lambda: len(window._dialogs) == 1, timeout=5000)
    dialog = window._dialogs[0]
    assert [c.caption for c in dialog.candidates] == ["photo0.png", "photo1.png", "blank.png"]
    # checked before Save: the refused photo starts unticked, its reason on hover
    assert [dialog.items.item(i).checkState() for i in range(3)] == [Qt.Checked, Qt.Checked, Qt.Unchecked]
    assert dialog.candidates[2].problems and dialog.items.item(2).toolTip() == "; ".join(dialog.candidates[2].problems)
    dialog.name.setEditText("Bob")
    with qtbot.waitSignal(dialog.enrolled, timeout=10000):
        dialog.save()
    assert [a.source for a in dialog.result.added] == [str(p) for p in photos] and dialog.result.refused == []
    gallery = window.session.gallery
    assert len(gallery.samples("Bob")) == 2
    # Save again: the saved faces are unticked and locked, nothing is sent twice
    assert all(dialog.items.item(i).checkState() == Qt.Unchecked for i in range(3))
    dialog.save()
    assert dialog.report.toPlainText() == "Tick at least one face." and len(gallery.samples("Bob")) == 2
    # and the same photos sent again (another dialog, a script) are refused as duplicates
    again = window.session.enrol_images("Bob", photos)
    assert not again.ok and all("already enrolled" in r.reason for r in again.refused)
    assert len(gallery.samples("Bob")) == 2
    dialog.close()
    # the look-alike check runs before anything is written
    window.enrolment.enrol_photos(photos)
    qtbot.waitUntil(lambda: len(window._dialogs) == 1 and window._dialogs[0] is not dialog, timeout=5000)
    second = window._dialogs[0]
    second.name.setEditText("Carol")
    second.save()
    qtbot.waitUntil(lambda: second.result is not None, timeout=10000)
    assert second.result.needs_confirmation and not second.result.ok and "Carol" not in gallery
    assert "looks like 'Bob'" in second.report.toPlainText()
    save = second.buttons.button(second.buttons.Save)
    assert save.text() == "Save anyway"
    with qtbot.waitSignal(second.enrolled, timeout=10000):
        qtbot.mouseClick(save, Qt.LeftButton)
    assert second.result.ok and len(gallery.samples("Carol")) == 2
    assert any("looks like 'Bob'" in w for w in second.result.warnings)


def test_gallery_rename_delete_with_undo_and_remove_a_sample(qtbot, tmp_path):
    folder = tmp_path / "gallery"
    with Gallery(folder) as g:
        g.add_samples("Dora", [NewSample(embedding=unit(np.eye(128)[5] + 0.1 * k * np.eye(128)[6]),
                                         source=f"s{k}") for k in range(3)], "fake-1")
        g.add_samples("Eve", [NewSample(embedding=unit(np.eye(128)[7]))], "fake-1")
    window = open_window(qtbot, tmp_path, [SYNTHETIC])
    panel = window.gallery_panel
    qtbot.waitUntil(lambda: panel.names() == ["Dora", "Eve"], timeout=5000)
    panel.rename("Dora", "Dorothy")
    qtbot.waitUntil(lambda: panel.names() == ["Dorothy", "Eve"], timeout=5000)
    panel.delete("Dorothy")
    qtbot.waitUntil(lambda: panel.names() == ["Eve"], timeout=5000)
    assert "Deleted 'Dorothy' (3 samples)" in window.banner.text()
    qtbot.mouseClick(window.banner._action, Qt.LeftButton)  # Undo
    qtbot.waitUntil(lambda: panel.names() == ["Dorothy", "Eve"], timeout=5000)
    assert panel.identities[0].sample_count == 3
    panel.list.setCurrentRow(0)
    dialog = panel.show_samples("Dorothy")
    qtbot.waitUntil(lambda: dialog.list.count() == 3, timeout=5000)
    dialog.list.item(1).setSelected(True)
    with qtbot.waitSignal(panel.refreshed, timeout=5000):
        dialog._remove()
    qtbot.waitUntil(lambda: panel.identities[0].sample_count == 2, timeout=5000)
    panel.merge("Eve", "Dorothy")
    qtbot.waitUntil(lambda: panel.names() == ["Dorothy"], timeout=5000)
    qtbot.mouseClick(window.banner._action, Qt.LeftButton)  # undo the merge
    qtbot.waitUntil(lambda: panel.names() == ["Dorothy", "Eve"], timeout=5000)
    assert [i.sample_count for i in panel.identities] == [2, 1]
    export = tmp_path / "export.db"
    panel.export_to(export)
    qtbot.waitUntil(export.exists, timeout=5000)
    with Gallery(tmp_path / "other") as other:
        assert other.import_from(export).added == ["Dorothy", "Eve"]


def test_unknown_people_are_grouped_and_one_click_from_enrolment(qtbot, tmp_path):
    window = open_window(qtbot, tmp_path, [SYNTHETIC])
    view = view_of(window)
    qtbot.waitUntil(lambda: _tracked(view), timeout=10000)
    wait_frames(qtbot, view, 10)
    window.activity.refresh_events()
    panel = window.unknowns_panel
    qtbot.waitUntil(lambda: len(panel.groups) == 1, timeout=5000)
    assert "1" in panel.title.text() and panel.list.item(0).icon() is not None
    panel.list.setCurrentRow(0)
    qtbot.mouseClick(panel.enrol, Qt.LeftButton)
    qtbot.waitUntil(lambda: len(window._dialogs) == 1, timeout=3000)
    dialog = window._dialogs[0]
    assert dialog.candidates and all(c.image is not None for c in dialog.candidates)
    # enrolled from the group: the Unknowns list lets the person go
    dialog.name.setEditText("Dana")
    with qtbot.waitSignal(dialog.enrolled, timeout=10000):
        dialog.save()
    qtbot.waitUntil(lambda: panel.groups == [], timeout=5000)
