"""`vultus analyze`: age, gender, emotion, head pose, quality and liveness of every face."""

from __future__ import annotations

from vultus.cli.common import add_engine_options, add_json_option, annotation_target, engine_from_args, run_images


def add_commands(sub) -> None:
    p = sub.add_parser("analyze", help="age, gender, emotion, head pose and quality of each face")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders")
    add_engine_options(p)
    p.add_argument("--only", metavar="LIST", default=None,
                   help="comma-separated subset of age,gender,emotion,pose,quality,liveness (default: all)")
    p.add_argument("--fast-quality", action="store_true",
                   help="skip the embedding-stability part of quality (two embeddings per face)")
    p.add_argument("--annotate", metavar="PATH",
                   help="write a copy with each face's box and attributes drawn (for several images: a folder)")
    add_json_option(p)
    p.set_defaults(func=cmd_analyze)


def cmd_analyze(args) -> int:
    from vultus.attributes.analyze import check_actions
    from vultus.cli.core import _images_arg

    actions = check_actions(None if not args.only else [a.strip() for a in args.only.split(",") if a.strip()])
    paths = _images_arg(args.images)
    target = annotation_target(args.annotate, len(paths))
    engine = engine_from_args(args)

    def analyze(arrays):  # one call of each model per chunk
        return engine.analyze_batch(arrays, actions=actions, stability=not args.fast_quality)

    def rows(item):
        analyses = item.result.value
        if not analyses:
            return [(item.path.name, "-", "no face", "", "", "", "", "", "")]
        return [_row(item.path.name, i, a) for i, a in enumerate(analyses)]

    draw = target and (target, lambda item: draw_analyses(item.image, item.result.value), "_analyzed")
    failures = run_images(paths, analyze, desc="analyze", as_json=args.json, rows=rows, annotate=draw,
                          headers=["image", "face", "box x1,y1,x2,y2", "age", "gender", "emotion", "yaw pitch roll",
                                   "quality", "liveness"])
    return 2 if failures else 0


def _row(name: str, i: int, a) -> tuple:
    b = a.box
    return (
        name, i, f"{b.x1:.0f},{b.y1:.0f},{b.x2:.0f},{b.y2:.0f}",
        "" if a.age is None else f"{a.age.years:.0f}",
        "" if a.gender is None else f"{a.gender.label} {a.gender.probability:.2f}",
        "" if a.emotion is None else f"{a.emotion.label} {a.emotion.confidence:.2f}"
        + (f" ({a.emotion.top}?)" if a.emotion.label == "uncertain" else ""),
        "" if a.pose is None else f"{a.pose.yaw:+.0f} {a.pose.pitch:+.0f} {a.pose.roll:+.0f}",
        "" if a.quality is None else f"{a.quality.score:.2f}",
        "" if a.liveness is None else f"{'live' if a.liveness.live else 'SPOOF'} {a.liveness.score:.2f}",
    )


def draw_analyses(img, analyses):
    """The image with each face's box and landmarks, and its attributes in a
    caption under the box, in type large enough to read on a big photo."""
    from PIL import ImageDraw, ImageFont

    from vultus.draw import annotate

    out = annotate(img, [a.face for a in analyses], [""] * len(analyses))
    draw = ImageDraw.Draw(out)
    size = max(12, round(max(img.shape[:2]) / 60))
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size default font
        font = ImageFont.load_default()
    for i, a in enumerate(analyses):
        text = f"{i}: {a.label()}"
        y = min(a.box.y2 + 2, img.shape[0] - size - 4)
        width = draw.textlength(text, font=font)
        x = max(0.0, min(a.box.x1, img.shape[1] - width - 2))  # keep captions of edge faces inside the image
        left, top, right, bottom = draw.textbbox((x, y), text, font=font)
        draw.rectangle((left - 2, top - 2, right + 2, bottom + 2), fill=(0, 0, 0))
        draw.text((x, y), text, fill=(255, 255, 255), font=font)
    return out
