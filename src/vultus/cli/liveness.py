"""`vultus liveness`: is each face a live person or a print / screen held up to the camera?"""

from __future__ import annotations

from vultus.cli.common import add_engine_options, add_json_option, engine_from_args, per_image, print_json, print_table

POINTS = ("door", "check-in")


def add_commands(sub) -> None:
    p = sub.add_parser("liveness", help="passive liveness of each face: live person, or a printed photo or screen",
                       description="Passive liveness (presentation attack detection) of every face. "
                                   "Measured rates: bench/results/liveness.md; what it does not cover: "
                                   "docs/liveness.md.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders")
    add_engine_options(p, embedder=False)
    p.add_argument("--point", choices=POINTS, default=None,
                   help="operating point: door (strict, the default) or check-in (fewer live faces refused)")
    p.add_argument("--model", default=None, metavar="NAME",
                   help="liveness model: minifasnet (shipped default) or vultus-liveness (not adopted; see the bench)")
    add_json_option(p)
    p.set_defaults(func=cmd_liveness)


def cmd_liveness(args) -> int:
    from vultus.cli.core import _images_arg

    engine = engine_from_args(args)
    paths = _images_arg(args.images)
    results, failures = per_image(paths, "liveness",
                                  lambda img: engine.liveness(img, point=args.point, model=args.model))
    if args.json:
        print_json([{"image": str(p), "faces": [r.to_dict() for r in found]} for p, _, found in results])
    else:
        rows = []
        for p, _, found in results:
            if not found:
                rows.append((p.name, "-", "no face", "", "", ""))
            for i, r in enumerate(found):
                b = r.face.box
                rows.append((p.name, i, f"{b.x1:.0f},{b.y1:.0f},{b.x2:.0f},{b.y2:.0f}",
                             "live" if r.live else "SPOOF", f"{r.score:.3f}",
                             f"{r.point.name} >= {r.threshold:.3f} (APCER {100 * r.apcer:.1f}%, "
                             f"BPCER {100 * r.bpcer:.1f}%)"))
        print_table(["image", "face", "box x1,y1,x2,y2", "decision", "score", "threshold"], rows)
    return 2 if failures else 0
