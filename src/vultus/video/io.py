"""PyAV-backed video reading and writing (see the package docstring for the API)."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from vultus.errors import VultusError


class VideoError(VultusError):
    """A video is missing, not a video, corrupt or truncated, or cannot be written.

    Codes: file_not_found, not_a_regular_file, empty_file, unreadable_file,
    not_a_video, corrupt_video (data: file, last_frame, last_time_s; last_frame
    is None when not one frame decoded), output_not_writable, bad_video."""

    code = "bad_video"


#: Suffixes treated as video by folder scans and by `vultus anonymize` (anything
#: FFmpeg reads can still be opened with open_video whatever its name).
_VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts",
                             ".m2ts", ".wmv", ".flv", ".3gp", ".ogv"})

# Audio codecs the MP4 muxer takes as they are; anything else (vorbis from WebM, pcm) is re-encoded to AAC.
_MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"})


def video_suffixes() -> frozenset[str]:
    """File-name suffixes (lower case, with the dot) taken for video files."""
    return _VIDEO_SUFFIXES


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame.

    index: position in decoding order (0, 1, 2, ...), after any unreadable frames were skipped by the decoder.
    time_s: presentation time in seconds from the start of the file (what a player's clock shows); taken from
        the frame's own timestamp, so variable frame rates are exact.
    rgb: (height, width, 3) uint8, the container's rotation applied (height and width are the displayed ones).
    """

    index: int
    time_s: float
    rgb: np.ndarray


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """What the container says about its video stream (and whether it has audio).

    width, height: as displayed, after rotation. fps: the stream's average frame rate (a variable-rate file's
    mean). frame_count: from the container header, None when the container does not state it (WebM); count
    the frames read for an exact figure. duration_s: the container's duration, None when unknown.
    rotation: counter-clockwise degrees (0, 90, 180, 270) applied to every frame.
    """

    path: str
    container: str
    codec: str
    width: int
    height: int
    fps: float
    frame_count: int | None
    duration_s: float | None
    rotation: int
    has_audio: bool
    audio_codec: str | None


def _stat_error(name: str, exc: OSError) -> VideoError:
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return VideoError(f"{name}: no such file", code="file_not_found", file=name)
    return VideoError(f"{name}: cannot read ({exc.strerror or exc})", code="unreadable_file", file=name,
                      reason=exc.strerror or str(exc))


def _check_file(path: str | Path) -> str:
    name = str(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _stat_error(name, exc) from exc
    if not stat.S_ISREG(st.st_mode):
        from vultus.imageio import file_kind

        kind = file_kind(st.st_mode)
        raise VideoError(f"{name}: is {kind}, not a video file", code="not_a_regular_file", file=name, kind=kind)
    if st.st_size == 0:
        raise VideoError(f"{name}: empty file", code="empty_file", file=name)
    return name


def _av():
    import av  # imported on use: reading images must not need PyAV

    return av


class VideoReader:
    """An open video file; iterate it for Frames (once). Use as a context manager or call close()."""

    def __init__(self, path: str | Path, *, threads: int | None = None):
        av = _av()
        self.path = _check_file(path)
        try:
            self._container = av.open(self.path, mode="r")
        except av.error.FFmpegError as exc:
            if _looks_like_video(self.path):  # a video's signature but no readable index: cut short or damaged
                raise VideoError(f"{self.path}: corrupt or truncated video, unreadable before its first frame "
                                 f"({_reason(exc)})", code="corrupt_video", file=self.path, last_frame=None,
                                 last_time_s=None, reason=_reason(exc)) from exc
            raise VideoError(f"{self.path}: not a video file ({_reason(exc)})", code="not_a_video",
                             file=self.path, reason=_reason(exc)) from exc
        streams = self._container.streams.video
        fmt = self._container.format.name
        if fmt == "image2" or fmt.endswith("_pipe"):  # FFmpeg reads a still image as a one-frame video
            self._container.close()
            raise VideoError(f"{self.path}: is an image, not a video", code="not_a_video", file=self.path,
                             format=fmt)
        if not streams:
            self._container.close()
            raise VideoError(f"{self.path}: has no video stream", code="not_a_video", file=self.path)
        self._stream = streams[0]
        cc = self._stream.codec_context
        if threads is not None:
            cc.thread_count = max(0, int(threads))
        cc.thread_type = "AUTO"
        w, h = int(cc.width or 0), int(cc.height or 0)
        if w <= 0 or h <= 0:
            self._container.close()
            raise VideoError(f"{self.path}: the video stream has no picture size", code="not_a_video",
                             file=self.path)
        self._origin = (self._container.start_time or 0) / 1_000_000  # av.time_base is microseconds
        rate = self._stream.average_rate or self._stream.guessed_rate or self._stream.base_rate
        duration = self._container.duration / 1_000_000 if self._container.duration else None
        if duration is None and self._stream.duration and self._stream.time_base:
            duration = float(self._stream.duration * self._stream.time_base)
        audio = self._container.streams.audio
        self.frames_read = 0
        self.last_time_s: float | None = None
        # The rotation lives in the display matrix that FFmpeg attaches to each decoded frame: peek at the first.
        self._decoded = self._container.decode(self._stream)
        self._first = self._next_frame()
        rot = int(self._first.rotation or 0) % 360 if self._first is not None else 0
        rot = (rot + 45) // 90 * 90 % 360
        self._rotation = rot
        if rot in (90, 270):
            w, h = h, w
        self.info = VideoInfo(path=self.path, container=self._container.format.name, codec=cc.name, width=w,
                              height=h, fps=float(rate) if rate else 0.0,
                              frame_count=int(self._stream.frames) or None, duration_s=duration, rotation=rot,
                              has_audio=bool(audio), audio_codec=audio[0].codec_context.name if audio else None)
        self._iterated = False

    # -- iteration --------------------------------------------------------------
    def __iter__(self) -> Iterator[Frame]:
        if self._iterated:
            raise VideoError(f"{self.path}: a VideoReader is read once; open the file again", code="bad_video",
                             file=self.path)
        self._iterated = True
        return self._frames()

    def _corrupt(self, why: str) -> VideoError:
        last = self.frames_read - 1 if self.frames_read else None
        where = (f"after frame {last} ({self.last_time_s:.3f} s), the last good one" if last is not None
                 else "before its first frame")
        return VideoError(f"{self.path}: corrupt or truncated video, decoding stopped {where} ({why})",
                          code="corrupt_video", file=self.path, last_frame=last, last_time_s=self.last_time_s)

    def _next_frame(self):
        av = _av()
        try:
            return next(self._decoded)
        except StopIteration:
            return None
        except av.error.FFmpegError as exc:
            if self.frames_read == 0 and not hasattr(self, "info"):
                self._container.close()
            raise self._corrupt(_reason(exc)) from exc

    def _frames(self) -> Iterator[Frame]:
        av = _av()
        fallback_step = 1.0 / self.info.fps if self.info.fps else 0.0
        while True:
            if self._first is not None:
                frame, self._first = self._first, None
            else:
                frame = self._next_frame()
            if frame is None:
                break
            if frame.time is not None:
                t = max(0.0, float(frame.time) - self._origin)
            else:  # no timestamp: step on from the last one at the average rate
                t = (self.last_time_s + fallback_step) if self.last_time_s is not None else 0.0
            try:
                rgb = frame.to_ndarray(format="rgb24")
            except (av.error.FFmpegError, ValueError) as exc:
                raise self._corrupt(_reason(exc)) from exc
            rot = self._rotation or 0
            if rot:
                rgb = np.ascontiguousarray(np.rot90(rgb, k=rot // 90))
            out = Frame(index=self.frames_read, time_s=t, rgb=rgb)
            self.frames_read += 1
            self.last_time_s = t
            yield out
        self._check_complete()

    def _check_complete(self) -> None:
        """A file whose decoding ended well before its stated length was cut short."""
        if self.frames_read == 0:
            raise self._corrupt("no frame could be decoded")
        expected = self.info.frame_count
        dur = self.info.duration_s
        step = 1.0 / self.info.fps if self.info.fps else 0.1
        if expected and self.frames_read < expected - 2:
            raise self._corrupt(f"{self.frames_read} of the {expected} frames its header announces")
        if dur and self.last_time_s is not None and self.last_time_s + step < dur - max(1.0, 5 * step):
            raise self._corrupt(f"frames end at {self.last_time_s:.2f} s of its {dur:.2f} s")

    # -- lifetime ---------------------------------------------------------------
    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _looks_like_video(path: str) -> bool:
    """Does the file start with the signature of a common video container (MP4/MOV, Matroska/WebM, AVI)?"""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return False
    return head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free") or head[:4] == b"\x1a\x45\xdf\xa3" or (
        head[:4] == b"RIFF" and head[8:12] == b"AVI ")


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or exc).strip() or type(exc).__name__


def open_video(path: str | Path, *, threads: int | None = None) -> VideoReader:
    """Open a video file for reading. Raises VideoError (see the module docstring for codes)."""
    return VideoReader(path, threads=threads)


def probe_video(path: str | Path) -> VideoInfo:
    """The VideoInfo of a file, without decoding frames."""
    with open_video(path) as reader:
        return reader.info


class VideoWriter:
    """Write RGB frames to a video file (H.264 in MP4 by default), optionally keeping another file's audio.

    fps is the nominal rate (also used for frames written without a time); width and height are the frames'
    size (odd sizes are padded by one pixel, as H.264 in 4:2:0 needs even ones). With ``audio_from``, that
    file's first audio stream is copied packet by packet when the output container takes its codec, or
    re-encoded to AAC otherwise (Vorbis from WebM into MP4), shifted by the same origin as the video so sync
    is kept. Times given to write() are seconds from the start of the file, as Frame.time_s.
    """

    def __init__(self, path: str | Path, *, fps: float, width: int, height: int, audio_from: str | Path | None = None,
                 codec: str = "libx264", crf: int = 18, threads: int | None = None):
        av = _av()
        self.path = str(path)
        self.width, self.height = int(width), int(height)
        self._enc_w, self._enc_h = self.width + self.width % 2, self.height + self.height % 2
        self.fps = float(fps) if fps and fps > 0 else 25.0
        try:
            self._out = av.open(self.path, mode="w")
        except (av.error.FFmpegError, OSError) as exc:
            raise VideoError(f"{self.path}: cannot write ({_reason(exc)})", code="output_not_writable",
                             file=self.path, reason=_reason(exc)) from exc
        self._time_base = Fraction(1, 90000)
        rate = Fraction(self.fps).limit_denominator(1001)
        self._video = self._out.add_stream(codec, rate=rate)
        self._video.width, self._video.height = self._enc_w, self._enc_h
        self._video.pix_fmt = "yuv420p"
        self._video.time_base = self._time_base
        self._video.codec_context.time_base = self._time_base
        if threads is not None:
            self._video.codec_context.thread_count = max(0, int(threads))
        if codec in ("libx264", "h264"):
            self._video.options = {"crf": str(crf), "preset": "veryfast"}
        self._last_pts = -1
        self.frames_written = 0
        self._audio_in = None
        self._audio_packets: Iterator | None = None
        self._pending = None
        self._audio_out = None
        self._transcode = None
        if audio_from is not None:
            self._open_audio(str(audio_from))

    def _open_audio(self, source: str) -> None:
        av = _av()
        try:
            src = av.open(source, mode="r")
        except av.error.FFmpegError as exc:
            raise VideoError(f"{source}: cannot read its audio ({_reason(exc)})", code="not_a_video", file=source,
                             reason=_reason(exc)) from exc
        if not src.streams.audio:
            src.close()
            return
        ain = src.streams.audio[0]
        self._audio_in = src
        self._audio_origin = (src.start_time or 0) / 1_000_000
        fmt = self._out.format.name
        if ain.codec_context.name in _MP4_AUDIO or "mp4" not in fmt:
            self._audio_out = self._out.add_stream_from_template(ain)
        else:
            cc = ain.codec_context
            self._audio_out = self._out.add_stream("aac", rate=cc.sample_rate or 48000)
            self._audio_out.layout = cc.layout.name if cc.layout else "stereo"
            self._transcode = av.AudioResampler(format="fltp", layout=self._audio_out.layout,
                                                rate=self._audio_out.rate)
        self._audio_src_stream = ain
        self._audio_packets = src.demux(ain)

    def _packet_time(self, packet) -> float | None:
        if packet.pts is None or packet.time_base is None:
            return None
        return float(packet.pts * packet.time_base) - self._audio_origin

    def _mux_audio_until(self, t: float | None) -> None:
        """Copy (or re-encode) the source's audio up to time t (all of it when t is None)."""
        if self._audio_packets is None:
            return
        av = _av()
        while True:
            if self._pending is None:
                try:
                    self._pending = next(self._audio_packets)
                except (StopIteration, av.error.FFmpegError):
                    self._audio_packets = None
                    break
            packet = self._pending
            pt = self._packet_time(packet)
            if t is not None and pt is not None and pt > t:
                return
            self._pending = None
            if packet.dts is None and packet.size == 0:
                continue  # the demuxer's end-of-stream marker
            if self._transcode is None:
                shift = round(self._audio_origin / packet.time_base) if packet.time_base else 0
                if packet.pts is not None:
                    packet.pts -= shift
                if packet.dts is not None:
                    packet.dts -= shift
                packet.stream = self._audio_out
                self._out.mux(packet)
            else:
                try:
                    frames = packet.decode()
                except av.error.FFmpegError:
                    continue
                for frame in frames:
                    frame.pts = None
                    for rs in self._transcode.resample(frame):
                        self._out.mux(self._audio_out.encode(rs))
        # end of the source's audio: flush the encoder when re-encoding
        if self._transcode is not None:
            for rs in self._transcode.resample(None):
                self._out.mux(self._audio_out.encode(rs))
            self._out.mux(self._audio_out.encode(None))
            self._transcode = None
            self._audio_out = None

    def write(self, rgb: np.ndarray, time_s: float | None = None) -> None:
        av = _av()
        if rgb.shape[:2] != (self.height, self.width):
            raise VideoError(f"{self.path}: frame of {rgb.shape[1]}x{rgb.shape[0]}, the video is "
                             f"{self.width}x{self.height}", code="bad_video", file=self.path)
        if (self._enc_w, self._enc_h) != (self.width, self.height):
            rgb = np.pad(rgb, ((0, self._enc_h - self.height), (0, self._enc_w - self.width), (0, 0)), mode="edge")
        if time_s is None:
            time_s = self.frames_written / self.fps
        pts = max(int(round(time_s / self._time_base)), self._last_pts + 1)
        self._last_pts = pts
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb, dtype=np.uint8), format="rgb24")
        frame.pts = pts
        frame.time_base = self._time_base
        self._mux_audio_until(time_s)
        try:
            for packet in self._video.encode(frame):
                self._out.mux(packet)
        except (av.error.FFmpegError, OSError) as exc:
            raise VideoError(f"{self.path}: cannot write ({_reason(exc)})", code="output_not_writable",
                             file=self.path, reason=_reason(exc)) from exc
        self.frames_written += 1

    def close(self) -> None:
        av = _av()
        if self._out is None:
            return
        try:
            for packet in self._video.encode(None):
                self._out.mux(packet)
            self._mux_audio_until(None)
            self._out.close()
        except (av.error.FFmpegError, OSError) as exc:
            raise VideoError(f"{self.path}: cannot write ({_reason(exc)})", code="output_not_writable",
                             file=self.path, reason=_reason(exc)) from exc
        finally:
            self._out = None
            if self._audio_in is not None:
                self._audio_in.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
