"""vultus.video: reading real clips (MP4/H.264+AAC, WebM/VP8+Vorbis), rotation, writing with audio, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import need_data

av = pytest.importorskip("av")

from vultus.video import VideoError, VideoWriter, open_video, probe_video  # noqa: E402

HAMILTON = ("face_recognition", "examples", "short_hamilton_clip.mp4")
WEBM = ("antispoof", "videos", "live_real.webm")


def test_hamilton_frames_times_and_info():
    path = need_data(*HAMILTON)
    with open_video(path) as video:
        info = video.info
        frames = [(f.index, f.time_s, f.rgb.shape) for f in video]
    assert (info.width, info.height, info.codec, info.has_audio, info.audio_codec) == (640, 360, "h264", True, "aac")
    assert info.frame_count == 275 and len(frames) == 275
    assert abs(info.fps - 29.97) < 0.01
    assert [i for i, _, _ in frames] == list(range(275))
    times = np.array([t for _, t, _ in frames])
    assert np.all(np.diff(times) > 0)
    assert np.allclose(np.diff(times), 1001 / 30000, atol=1e-4)  # 29.97 fps from the frames' own timestamps
    assert all(shape == (360, 640, 3) for _, _, shape in frames)


def test_webm_variable_timestamps_are_kept():
    path = need_data(*WEBM)
    with open_video(path) as video:
        assert video.info.frame_count is None  # WebM does not state it
        times = np.array([f.time_s for f in video])
        n = video.frames_read
    assert n == len(times) == 199
    steps = np.diff(times)
    # the phone recording's frame spacing varies (64 and 68 ms): each frame keeps its own time
    assert steps.min() < steps.max() - 0.003
    assert abs(times[-1] - 13.212) < 1e-6


def _write_rotated(path, degrees):
    out = av.open(str(path), "w")
    s = out.add_stream("libx264", rate=10)
    s.width, s.height, s.pix_fmt = 64, 32, "yuv420p"
    s.set_display_rotation(degrees)
    for _ in range(3):
        a = np.zeros((32, 64, 3), np.uint8)
        a[:8, :8] = 255  # a white mark in the stored picture's top-left corner
        for p in s.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
            out.mux(p)
    for p in s.encode():
        out.mux(p)
    out.close()


@pytest.mark.parametrize("degrees,corner", [(0, (0, 0)), (90, (1, 0)), (180, (1, 1)), (270, (0, 1))])
def test_rotation_metadata_is_applied(tmp_path, degrees, corner):
    path = tmp_path / f"rot{degrees}.mp4"
    _write_rotated(path, degrees)
    with open_video(path) as video:
        rgb = next(iter(video)).rgb
        assert video.info.rotation == degrees
    h, w = rgb.shape[:2]
    assert (w, h) == ((64, 32) if degrees in (0, 180) else (32, 64))
    cy, cx = np.argwhere(rgb[..., 0] > 128).mean(0)
    # counter-clockwise display rotation moves the top-left mark to the bottom-left (90), bottom-right (180) ...
    assert (cy > h / 2, cx > w / 2) == (bool(corner[0]), bool(corner[1]))


def copy_video(src, out):
    """Decode every frame and write it again, with the source's audio."""
    with open_video(src) as video, VideoWriter(out, fps=video.info.fps, width=video.info.width,
                                               height=video.info.height, audio_from=src) as writer:
        for f in video:
            writer.write(f.rgb, f.time_s)


@pytest.mark.slow
def test_write_mp4_keeps_audio_and_timing(tmp_path):
    src = need_data(*HAMILTON)
    out = tmp_path / "copy.mp4"
    copy_video(src, out)
    a, b = probe_video(src), probe_video(out)
    assert b.codec == "h264" and b.has_audio and b.audio_codec == "aac"
    assert b.frame_count == a.frame_count == 275
    assert abs(b.duration_s - a.duration_s) < 0.05
    with av.open(str(src)) as s, av.open(str(out)) as o:
        assert o.streams.audio[0].frames == s.streams.audio[0].frames  # every audio packet copied


@pytest.mark.slow
def test_webm_audio_is_reencoded_into_mp4(tmp_path):
    src = need_data(*WEBM)
    out = tmp_path / "webm.mp4"
    copy_video(src, out)
    b = probe_video(out)
    assert b.has_audio and b.audio_codec == "aac" and b.frame_count == 199
    assert abs(b.duration_s - 13.28) < 0.1


def test_truncated_webm_names_file_and_last_good_frame(tmp_path):
    data = need_data(*WEBM).read_bytes()
    cut = tmp_path / "cut.webm"
    cut.write_bytes(data[: len(data) // 2])
    n = 0
    with pytest.raises(VideoError) as err, open_video(cut) as video:
        for _ in video:
            n += 1
    e = err.value
    assert e.code == "corrupt_video" and e.data["file"] == str(cut)
    assert e.data["last_frame"] == n - 1 and n > 10
    assert str(cut) in str(e) and f"frame {n - 1}" in str(e)


def test_truncated_mp4_without_index_is_corrupt_not_unknown(tmp_path):
    data = need_data(*HAMILTON).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError) as err:
        open_video(cut)
    assert err.value.code == "corrupt_video" and err.value.data["last_frame"] is None


def test_non_video_files_are_refused(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 50)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    photo = need_data("face_recognition", "examples", "obama.jpg")
    for path, code in [(text, "not_a_video"), (empty, "empty_file"), (photo, "not_a_video"),
                       (tmp_path, "not_a_regular_file"), (tmp_path / "missing.mp4", "file_not_found")]:
        with pytest.raises(VideoError) as err:
            open_video(path)
        assert err.value.code == code, path
        assert str(path) in str(err.value)
