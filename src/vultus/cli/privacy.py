"""`vultus anonymize`: cover every face in photos and videos before they are shared."""

from __future__ import annotations

import sys
from pathlib import Path

from vultus.cli.common import add_json_option, print_json, print_table, progress
from vultus.cli.video import rate_line
from vultus.textsafe import safe_text


def add_commands(sub) -> None:
    from vultus.privacy.anonymize import MODES

    p = sub.add_parser("anonymize", help="cover every face in photos and videos (blur, pixelate, solid, mask)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="images, videos, or folders of them")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the anonymised copies (same file names)")
    p.add_argument("--mode", choices=MODES, default="blur", help="how a face is covered (default blur)")
    p.add_argument("--shape", choices=("ellipse", "box"), default="ellipse", help="cover shape (default ellipse)")
    p.add_argument("--margin", type=float, default=None,
                   help="grow each face's cover by this share of its size on every side (default 0.3)")
    p.add_argument("--keep", nargs="+", metavar="PERSON", default=None,
                   help="leave these enrolled people visible (needs a gallery); everyone else is covered")
    p.add_argument("--only", nargs="+", metavar="PERSON", default=None,
                   help="cover only these enrolled people (needs a gallery); everyone else stays visible")
    p.add_argument("--gallery", metavar="PATH", default=None, help="gallery for --keep/--only (default: the user's)")
    p.add_argument("--collection", metavar="NAME", default=None, help="gallery collection for --keep/--only")
    p.add_argument("--every", type=int, default=1, metavar="N", help="video: detect on every N-th frame (default 1)")
    p.add_argument("--keep-metadata", action="store_true",
                   help="keep EXIF/XMP/GPS and other metadata (stripped by default)")
    p.add_argument("--threads", type=int, default=None, help="threads per model")
    add_json_option(p)
    p.set_defaults(func=cmd_anonymize)


def cmd_anonymize(args) -> int:
    from vultus.privacy.anonymize import AnonymizeOptions, anonymize_paths

    options = AnonymizeOptions(mode=args.mode, shape=args.shape, every=args.every,
                               strip_metadata=not args.keep_metadata, threads=args.threads,
                               **({"margin": args.margin} if args.margin is not None else {}))
    gallery = None
    if args.keep or args.only:
        from vultus.gallery import Gallery

        gallery = Gallery(args.gallery, create=False)
    try:
        bar = progress(desc="anonymize", unit="frame")
        report = anonymize_paths(args.inputs, args.out, options, gallery=gallery, collection=args.collection,
                                 keep=args.keep, only=args.only, progress=bar.update)
        bar.close()
    finally:
        if gallery is not None:
            gallery.close()
    if args.json:
        print_json([r.to_dict() for r in report])
    else:
        rows = [(safe_text(r.source), safe_text(r.output or "-"), r.kind, r.frames, r.faces_covered,
                 r.faces_kept, r.error or "") for r in report]
        print_table(["input", "output", "kind", "frames", "covered", "kept visible", "error"], rows)
        for r in report:
            if r.kind == "video" and r.seconds:
                print(rate_line(safe_text(Path(r.source).name), r.frames, r.seconds), file=sys.stderr)
    return 2 if any(r.error for r in report) else 0
