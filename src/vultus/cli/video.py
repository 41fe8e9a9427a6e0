"""`vultus video`: who appears when in a video."""

from __future__ import annotations

import sys
from pathlib import Path

from vultus.cli.common import add_json_option, print_json, print_table, progress
from vultus.textsafe import safe_text


def add_commands(sub) -> None:
    p = sub.add_parser("video", help="who appears when in a video: face tracks, each identified with a gallery")
    p.add_argument("clip", metavar="CLIP", help="a video file (MP4, MOV, MKV, WebM, ...)")
    p.add_argument("--gallery", metavar="PATH", default=None,
                   help="gallery file to identify tracks in (default: the user's gallery when --collection is given)")
    p.add_argument("--collection", metavar="NAME", default=None, help="gallery collection to identify tracks in")
    p.add_argument("--every", type=int, default=1, metavar="N",
                   help="run detection on every N-th frame; tracks carry the boxes between (default 1)")
    p.add_argument("--detector", default="yunet", help="detector model (default yunet, or the collection's)")
    p.add_argument("--threads", type=int, default=None, help="threads per model and for video decoding")
    p.add_argument("--annotate", metavar="OUT.mp4", help="write a copy with every track's box and label (audio kept)")
    p.add_argument("--thumbnails", metavar="DIR", help="write each track's best face as DIR/track-N.jpg")
    add_json_option(p)
    p.set_defaults(func=cmd_video)


def rate_line(what: str, frames: int, seconds: float) -> str:
    fps = frames / seconds if seconds > 0 else 0.0
    return f"{what}: {frames} frames in {seconds:.1f} s ({fps:.1f} frames/s)"


def cmd_video(args) -> int:
    from vultus.video import probe_video
    from vultus.video.analyze import analyze_video, write_annotated

    info = probe_video(args.clip)
    gallery = None
    if args.gallery or args.collection:
        from vultus.gallery import Gallery

        gallery = Gallery(args.gallery, create=False)
    try:
        bar = progress(total=info.frame_count, desc="video", unit="frame")
        analysis = analyze_video(args.clip, detector=args.detector, every=args.every, gallery=gallery,
                                 collection=args.collection, threads=args.threads, progress=bar.update)
        bar.close()
    finally:
        if gallery is not None:
            gallery.close()
    print(rate_line(safe_text(Path(args.clip).name), analysis.frames, analysis.seconds), file=sys.stderr)
    thumbs = {}
    if args.thumbnails:
        from PIL import Image

        folder = Path(args.thumbnails)
        folder.mkdir(parents=True, exist_ok=True)
        for t in analysis.tracks:
            thumbs[t.track_id] = str(folder / f"track-{t.track_id}.jpg")
            Image.fromarray(t.thumbnail).save(thumbs[t.track_id], quality=92)
    if args.annotate:
        bar = progress(total=analysis.frames, desc="annotate", unit="frame")
        write_annotated(analysis, args.annotate, progress=bar.update, threads=args.threads)
        bar.close()
        print(f"wrote {safe_text(args.annotate)}", file=sys.stderr)
    if args.json:
        out = analysis.to_dict()
        for t in out["tracks"]:
            t["thumbnail"] = thumbs.get(t["track"])
        print_json(out)
        return 0
    rows = []
    for t in analysis.tracks:
        who = t.label if t.similarity is not None else "-"
        closest = f"closest {t.closest}" if t.similarity is not None and t.person is None and t.closest else ""
        rows.append((t.track_id, f"{t.start_s:.2f}", f"{t.end_s:.2f}", t.detections, who,
                     "" if t.similarity is None else f"{t.similarity:.3f}", closest,
                     thumbs.get(t.track_id, f"frame {t.best_frame}")))
    print_table(["track", "start s", "end s", "detections", "person", "similarity", "", "best face"], rows)
    if analysis.decision is not None:
        d = analysis.decision
        print(f"decision: similarity >= {d.threshold:.3f} (false-match rate {d.fmr:g} per comparison, measured on "
              f"{safe_text(d.source)}); each track's embeddings averaged over its best frames")
    return 0
