"""Head pose: sign conventions on a synthetic projection, frontal and profile photos, mirror symmetry."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import need_data
from vultus import load_image
from vultus.attributes.pose import _IDX_68, _PTS_5, _PTS_68, estimate_pose, pose_from_5, pose_from_68

DEEPFACE = ("deepface", "tests", "unit", "dataset")


def project(points: np.ndarray, yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Image points of the generic face turned by the given angles (the module's conventions:
    yaw toward the image's right, pitch up, roll clockwise), seen from 600 mm."""
    y, p, r = np.radians([yaw, pitch, roll])
    # The model's z points away from the camera and y down, so turning the nose toward +x (image
    # right) is a rotation about y by -yaw, tilting it up (-y) a rotation about x by -pitch; roll
    # turns the face about its own axis first (so yaw and pitch stay the direction of the nose).
    ry = np.array([[np.cos(-y), 0, np.sin(-y)], [0, 1, 0], [-np.sin(-y), 0, np.cos(-y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(-p), -np.sin(-p)], [0, np.sin(-p), np.cos(-p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    rot = ry @ rx @ rz
    cam = np.array([[1000.0, 0, 320], [0, 1000.0, 240], [0, 0, 1]])
    centred = points - points.mean(axis=0)
    img, _ = cv2.projectPoints(centred, cv2.Rodrigues(rot)[0], np.array([0.0, 0.0, 600.0]), cam, None)
    return img.reshape(-1, 2)


@pytest.mark.parametrize("angles", [(0, 0, 0), (30, 0, 0), (-45, 0, 0), (0, 20, 0), (0, -15, 0), (0, 0, 25),
                                    (25, -10, 8), (60, 0, 0)])
def test_recovers_angles_of_a_projected_generic_face(angles):
    pts68 = np.zeros((68, 2))
    pts68[_IDX_68] = project(_PTS_68, *angles)
    pose = pose_from_68(pts68)
    assert pose.method == "68-point"
    assert np.allclose([pose.yaw, pose.pitch, pose.roll], angles, atol=1.5), pose
    five = pose_from_5(project(_PTS_5, *angles))
    assert np.allclose([five.yaw, five.pitch, five.roll], angles, atol=1.5), five


def test_signs_follow_the_nose_on_the_projection():
    # Turned toward the image's right, the nose tip moves right of the eyes' midpoint; tilted up,
    # it moves up toward the eyes.
    pts = project(_PTS_5, 30, 0, 0)
    assert pts[2, 0] > (pts[0, 0] + pts[1, 0]) / 2
    assert pose_from_5(pts).yaw > 20
    level, up = project(_PTS_5, 0, 0, 0), project(_PTS_5, 0, 25, 0)
    assert up[2, 1] - up[0, 1] < level[2, 1] - level[0, 1]
    assert pose_from_5(up).pitch > 20


def faces_with_68(engine, image):
    return engine.landmarks68(image)


@pytest.mark.parametrize("parts", [
    ("face_recognition", "tests", "test_images", "obama.jpg"),
    ("face_recognition", "tests", "test_images", "biden.jpg"),
    DEEPFACE + ("img1.jpg",),
    DEEPFACE + ("img2.jpg",),
])
def test_frontal_photos_read_frontal(engine, parts):
    image = load_image(need_data(*parts))
    face = max(faces_with_68(engine, image), key=lambda f: f.box.area)
    pose = estimate_pose(face)
    assert abs(pose.yaw) < 20 and abs(pose.roll) < 15, pose
    assert pose.off_frontal < 30


def test_profile_photo_reads_profile_and_its_mirror_turns_the_other_way(engine):
    # img59.jpg: on the left edge, a man in glasses turned toward the image's right.
    image = load_image(need_data(*DEEPFACE, "img59.jpg"))
    face = min(faces_with_68(engine, image), key=lambda f: f.box.x1)
    assert face.box.x2 < 300
    pose = estimate_pose(face)
    assert pose.yaw > 45, pose
    assert pose_from_5(face.landmarks).yaw > 45
    mirror = np.ascontiguousarray(image[:, ::-1])
    face_m = max(faces_with_68(engine, mirror), key=lambda f: f.box.x2)
    assert estimate_pose(face_m).yaw < -45


def test_mirror_image_negates_yaw_and_roll_keeps_pitch(engine):
    image = load_image(need_data(*DEEPFACE, "couple.jpg"))
    mirror = np.ascontiguousarray(image[:, ::-1])
    a = sorted(faces_with_68(engine, image), key=lambda f: f.box.x1)
    b = sorted(faces_with_68(engine, mirror), key=lambda f: -f.box.x2)
    assert len(a) == len(b) == 2
    for fa, fb in zip(a, b, strict=True):
        pa, pb = estimate_pose(fa), estimate_pose(fb)
        assert abs(pa.yaw + pb.yaw) < 4 and abs(pa.roll + pb.roll) < 4 and abs(pa.pitch - pb.pitch) < 4
        assert abs(pa.yaw) > 10  # both faces of the couple are turned: the test is not 0 == -0


def test_without_68_points_the_5_point_pose_is_used(engine):
    image = load_image(need_data("face_recognition", "tests", "test_images", "obama.jpg"))
    face = engine.detect(image)[0]
    assert face.landmarks68 is None
    pose = estimate_pose(face)
    assert pose.method == "5-point" and abs(pose.yaw) < 15
