"""scripts/ship_check.py's rule for shipping a checkpoint (issue 24): better on LFW and on every WIDER
level at 640x480, with no detection check lost."""
from __future__ import annotations

import importlib.util

from tests.support.paths import REPO

_spec = importlib.util.spec_from_file_location("ship_check", REPO / "scripts" / "ship_check.py")
ship_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ship_check)

SHIPPED = {"lfw": 0.9197, "lfw_no_face_share": 0.0, "wider_640x480": [0.59, 0.37, 0.08],
           "wider_1024x768": [0.63, 0.43, 0.15], "clip_found": 0.84, "clip_unconfirmed_large_per_100": 11.3,
           "group_video_found": 0.34, "group_video_unconfirmed_large_per_100": 2.9, "astronaut_ok": True,
           "cat_faces": 1}
BETTER = {**SHIPPED, "lfw": 0.95, "wider_640x480": [0.7, 0.5, 0.2], "clip_found": 0.83,
          "clip_unconfirmed_large_per_100": 12.0, "cat_faces": 0}


def test_a_candidate_better_everywhere_within_the_slack_ships():
    assert ship_check.shortfalls(BETTER, SHIPPED) == []


def test_each_lost_check_is_named():
    cases = {
        "LFW 91.00%": {"lfw": 0.91},
        "no face in 0.60% of LFW images": {"lfw_no_face_share": 0.006},
        "WIDER 640x480 hard AP 0.080": {"wider_640x480": [0.7, 0.5, 0.08]},
        "clip: finds 81.0%": {"clip_found": 0.81},
        "group_video: 4.0 unconfirmed large": {"group_video_unconfirmed_large_per_100": 4.0},
        "the astronaut is not found": {"astronaut_ok": False},
        "2 faces on the cat": {"cat_faces": 2},
    }
    for expected, change in cases.items():
        why = ship_check.shortfalls({**BETTER, **change}, SHIPPED)
        assert len(why) == 1 and why[0].startswith(expected), (expected, why)
    # the figures at 1024x768 are reported, not part of the rule
    assert ship_check.shortfalls({**BETTER, "wider_1024x768": [0.1, 0.1, 0.1]}, SHIPPED) == []


def test_the_astronaut_must_be_one_face_on_the_teachers_box_with_her_landmarks_in_order():
    teacher = [{"box": [180, 60, 270, 174], "landmarks": []}]
    face = {"box": [179.7, 59.8, 269.4, 173.9],
            "landmarks": [[205.9, 101.4], [248.0, 105.3], [225.5, 129.1], [202.0, 139.7], [244.4, 143.2]]}
    assert ship_check.astronaut_found([face], teacher)
    assert not ship_check.astronaut_found([face, face], teacher)  # a second box
    assert not ship_check.astronaut_found([{**face, "box": [230, 110, 320, 224]}], teacher)  # beside her
    swapped = [face["landmarks"][1], face["landmarks"][0], *face["landmarks"][2:]]
    assert not ship_check.astronaut_found([{**face, "landmarks": swapped}], teacher)  # eyes swapped
