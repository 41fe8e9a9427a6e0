"""Reading and writing video: the one place vultus opens a video file.

Built on PyAV (``av``), whose wheels bundle FFmpeg, so any container and codec
FFmpeg decodes is read (MP4, MOV, MKV, WebM, AVI ...). Frames come out as RGB
uint8 arrays with the container's rotation (display matrix) applied, each with
its own presentation time, so variable frame rates are kept exactly::

    from vultus.video import open_video

    with open_video("clip.mp4") as video:
        print(video.info.fps, video.info.frame_count, video.info.rotation)
        for frame in video:              # Frame(index, time_s, rgb)
            ...

    with VideoWriter("out.mp4", like=video.info, audio_from="clip.mp4") as out:
        out.write(rgb, time_s)           # H.264 (libx264) in MP4; the source's audio is kept

Errors are ``VideoError`` (a VultusError) with codes: file_not_found,
not_a_regular_file, empty_file, not_a_video (no video stream, or not a media
file at all), corrupt_video (decoding failed or the file ends early; data:
file, last_frame, last_time_s), unreadable_file, output_not_writable.
"""

from vultus.video.io import (
    Frame,
    VideoError,
    VideoInfo,
    VideoReader,
    VideoWriter,
    open_video,
    probe_video,
    video_suffixes,
)

__all__ = [
    "Frame",
    "VideoError",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "open_video",
    "probe_video",
    "video_suffixes",
]
