"""The face tracker: association, carried boxes through detection dropouts, ByteTrack's second pass."""

from __future__ import annotations

import numpy as np

from vultus.types import Box, Face
from vultus.video.track import FaceTracker


def face(x: float, y: float, size: float = 40.0, score: float = 0.9) -> Face:
    return Face(box=Box(x, y, x + size, y + size), score=score, landmarks=np.zeros((5, 2), np.float32),
                detector="test")


def test_two_faces_keep_their_ids_while_moving():
    tr = FaceTracker(fps=30)
    ids = []
    for f in range(10):
        out = tr.update(f, [face(10 + 3 * f, 10), face(200 - 3 * f, 50)])
        ids.append([(t.track_id, round(t.box.x1)) for t in out])
    assert ids[0] == [(1, 10), (2, 200)]
    assert ids[-1] == [(1, 37), (2, 173)]
    assert all(len(row) == 2 for row in ids)


def test_dropout_is_bridged_by_a_carried_box_and_the_id_comes_back():
    tr = FaceTracker(fps=30)
    for f in range(5):
        tr.update(f, [face(10 + 4 * f, 10)])
    # the detector misses the face for three frames: the track is carried at its velocity
    for f in range(5, 8):
        (t,) = tr.update(f, [])
        assert not t.detected and t.track_id == 1 and t.lost == f - 4
        assert abs(t.box.x1 - (10 + 4 * f)) < 1e-6
    (t,) = tr.update(8, [face(42, 10)])
    assert t.detected and t.track_id == 1 and t.lost == 0


def test_frames_without_detection_carry_every_track():
    tr = FaceTracker(fps=30)
    tr.update(0, [face(0, 0)])
    tr.update(1, [face(2, 0)])
    (t,) = tr.update(2, None)  # --every 2: detection did not run on this frame
    assert not t.detected and abs(t.box.x1 - 4) < 1e-6


def test_track_ends_after_max_lost():
    tr = FaceTracker(fps=30, max_lost=3)
    tr.update(0, [face(0, 0)])
    assert [t.track_id for t in tr.update(3, [])] == [1]
    assert tr.update(4, []) == []
    (t,) = tr.update(5, [face(0, 0)])
    assert t.track_id == 2  # too long gone: a new track


def test_weak_detection_extends_a_track_but_does_not_start_one():
    tr = FaceTracker(fps=30, high_score=0.6, low_score=0.3)
    tr.update(0, [face(0, 0)])
    (t,) = tr.update(1, [face(1, 0, score=0.4)])  # blurred frame: low score, still the same face
    assert t.detected and t.track_id == 1
    out = tr.update(2, [face(1, 0), face(300, 300, score=0.4)])
    assert [x.track_id for x in out] == [1]  # the weak lone box elsewhere is not a new track


def test_scene_cuts_in_the_hamilton_clip_and_none_in_a_handheld_webm():
    from conftest import need_data
    from vultus.video import open_video
    from vultus.video.track import SceneCutDetector

    def cuts(path):
        detector = SceneCutDetector()
        with open_video(path) as video:
            return [f.index for f in video if detector(f.rgb)]

    assert cuts(need_data("face_recognition", "examples", "short_hamilton_clip.mp4")) == [20, 82, 211]
    # the phone swung across the view in the replay clip is motion, not a cut
    assert cuts(need_data("antispoof", "videos", "spoof_fake.webm")) == []
