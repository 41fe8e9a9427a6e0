"""`vultus anonymize`: cover every face in photos and videos before they are shared; `vultus cloak`: protect
photos from face recognition while they still look the same."""

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
    add_cloak_command(sub)


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


def add_cloak_command(sub) -> None:
    from vultus.privacy.cloak import SEARCH_EMBEDDERS, STRENGTHS

    p = sub.add_parser("cloak", help="protect your own photos from face recognition (adversarial cloak; needs torch)",
                       description="Adds a small, hard-to-see change to every face so that face recognisers stop "
                                   "matching it to the person. Measured protection and its limits: "
                                   "docs/privacy.md. Needs the privacy extra: pip install 'vultus[privacy]'.")
    p.add_argument("inputs", nargs="+", metavar="IMAGE", help="images, or folders of them")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the cloaked copies (same names and formats)")
    p.add_argument("--strength", choices=tuple(STRENGTHS), default="medium",
                   help="perturbation budget: " + "; ".join(f"{k}: max change {s.epsilon:g}/255, SSIM >= "
                                                            f"{s.ssim_floor}" for k, s in STRENGTHS.items()))
    decoy = p.add_mutually_exclusive_group()
    decoy.add_argument("--decoy", nargs="+", metavar="IMAGE", default=None,
                       help="photos of other faces to pull each face toward (the farthest of them), instead of "
                            "vultus's synthetic decoy identities (the default)")
    decoy.add_argument("--no-decoy", action="store_true",
                       help="only push each face away from itself; pull it toward no decoy")
    p.add_argument("--embedders", default=",".join(SEARCH_EMBEDDERS),
                   help=f"networks the search attacks, comma-separated (default {','.join(SEARCH_EMBEDDERS)})")
    p.add_argument("--seed", type=int, default=0, help="random seed of the search (default 0)")
    p.add_argument("--threads", type=int, default=None, help="torch and onnxruntime threads (default 1)")
    add_json_option(p)
    p.set_defaults(func=cmd_cloak)


def cmd_cloak(args) -> int:
    from vultus.privacy.cloak import CloakOptions, cloak_paths

    options = CloakOptions(strength=args.strength, seed=args.seed, threads=args.threads,
                           decoy="none" if args.no_decoy else "synthetic",
                           embedders=tuple(e.strip() for e in args.embedders.split(",") if e.strip()))
    bar = progress(desc="cloak", unit="face")
    try:
        report = cloak_paths(args.inputs, args.out, options, decoys=args.decoy, progress=bar.update)
    finally:
        bar.close()
    if args.json:
        print_json([r.to_dict() for r in report])
    else:
        rows = []
        for r in report:
            if r.error:
                rows.append((safe_text(r.source), "-", 0, "-", "-", "-", r.error))
                continue
            worst = min(r.faces, key=lambda f: f.ssim) if r.faces else None
            rows.append((safe_text(r.source), safe_text(r.output or "-"), len(r.faces),
                         f"{worst.ssim:.3f}" if worst else "-", f"{worst.psnr:.1f}" if worst else "-",
                         f"{r.seconds / len(r.faces):.1f}" if r.faces else "-", "; ".join(r.warnings)))
        print_table(["input", "output", "faces", "SSIM (worst face)", "PSNR dB", "s/face", "note"], rows)
    faces = sum(len(r.faces) for r in report)
    seconds = sum(r.seconds for r in report if r.faces)
    if faces:
        print(f"cloak: {faces} face{'s' if faces != 1 else ''} in {seconds:.1f} s ({seconds / faces:.1f} s per face)",
              file=sys.stderr)
    for r in report:
        for w in r.warnings:
            print(f"vultus: warning: {safe_text(r.source)}: {w}", file=sys.stderr)
    return 2 if any(r.error for r in report) else 0
