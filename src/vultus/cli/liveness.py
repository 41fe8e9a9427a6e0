"""`vultus liveness`: is each face a live person or a print / screen held up to the camera?"""

from __future__ import annotations

from pathlib import Path

from vultus.cli.common import add_engine_options, add_json_option, engine_from_args, print_json, print_table, run_images

POINTS = ("door", "check-in")


def add_commands(sub) -> None:
    p = sub.add_parser("liveness", help="passive liveness of each face: live person, or a printed photo or screen",
                       description="Passive liveness (presentation attack detection) of every face. "
                                   "Measured rates: bench/results/liveness.md; what it does not cover: "
                                   "docs/liveness.md. `vultus liveness challenge` issues an active challenge; "
                                   "`vultus liveness challenge --answer TOKEN FRAME...` checks the frames "
                                   "recorded for it.")
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="image files or folders, or video files (judged per face over sampled frames)")
    add_engine_options(p, embedder=False)
    p.add_argument("--point", choices=POINTS, default=None,
                   help="operating point: door (strict; the default for images) or check-in (fewer live faces "
                        "refused; the default for videos)")
    p.add_argument("--every", type=int, default=3, metavar="N", help="video: sample every N-th frame (default 3)")
    p.add_argument("--clip", type=int, default=8, metavar="K", help="video: sampled frames per clip (default 8)")
    p.add_argument("--answer", nargs="+", metavar="ARG",
                   help="challenge: the token, then the frames recorded for it in order (images)")
    p.add_argument("--actions", metavar="LIST", help="challenge: these actions instead of 2-4 random ones "
                                                      "(blink,turn_left,turn_right,look_up,smile)")
    p.add_argument("--ttl", type=float, default=30.0, metavar="S", help="challenge: seconds to answer (default 30)")
    p.add_argument("--fps", type=float, default=5.0, help="challenge: frames per second of the frames given (5)")
    p.add_argument("--model", default=None, metavar="NAME",
                   help="liveness model: minifasnet (shipped default) or vultus-liveness (not adopted; see the bench)")
    add_json_option(p)
    p.set_defaults(func=cmd_liveness)


def cmd_liveness(args) -> int:
    from vultus.cli.core import _images_arg
    from vultus.video import video_suffixes

    if args.images[0] == "challenge":
        return _challenge(args, args.images[1:])
    engine = engine_from_args(args)
    videos = [a for a in args.images if Path(a).suffix.lower() in video_suffixes() and Path(a).is_file()]
    if videos:
        return _videos(engine, args, videos, [a for a in args.images if a not in videos])
    paths = _images_arg(args.images)

    def judge(arrays):  # one detector and liveness call per chunk
        return engine.liveness_batch(arrays, point=args.point, model=args.model)

    def rows(item):
        found = item.result.value
        if not found:
            return [(item.path.name, "-", "no face", "", "", "", "")]
        return [(item.path.name, i, f"{r.face.box.x1:.0f},{r.face.box.y1:.0f},{r.face.box.x2:.0f},{r.face.box.y2:.0f}",
                 "live" if r.live else "SPOOF", f"{r.score:.3f}",
                 f"{r.point.name} >= {r.threshold:.3f} (APCER {100 * r.apcer:.1f}%, BPCER {100 * r.bpcer:.1f}%)",
                 "face fills the image: unreliable, give the whole frame" if r.warning else "")
                for i, r in enumerate(found)]

    failures = run_images(paths, judge, desc="liveness", as_json=args.json, rows=rows,
                          entry=lambda item: {"image": str(item.path),
                                              "faces": [r.to_dict() for r in item.result.value]},
                          headers=["image", "face", "box x1,y1,x2,y2", "decision", "score", "threshold", "note"])
    return 2 if failures else 0


def _videos(engine, args, videos: list[str], others: list[str]) -> int:
    from vultus.errors import VultusError
    from vultus.liveness.video import liveness_of_video

    if others:
        raise VultusError("give either images or videos, not both", code="mixed_inputs")
    out = []
    for v in videos:
        out.append((v, liveness_of_video(engine, v, every=args.every, clip_len=args.clip, point=args.point,
                                          model=args.model)))
    if args.json:
        print_json([{"video": v} | r.to_dict() for v, r in out])
        return 0
    from vultus.textsafe import safe_text

    rows = []
    for v, r in out:
        name = safe_text(Path(v).name)
        if not r.faces:
            rows.append((name, "-", "no face followed", "", "", ""))
        for f in r.faces:
            rows.append((name, f.track_id, f"{f.first_frame}-{f.last_frame}", "live" if f.live else "SPOOF",
                         f"{f.confidence:.2f} of {len(f.clips)} clips", f.reason))
    print_table(["video", "face", "frames", "decision", "confidence", "why"], rows)
    return 0


def _challenge(args, extra: list[str]) -> int:
    from vultus.errors import VultusError
    from vultus.liveness.challenge import install_issuer

    issuer = install_issuer(ttl_s=args.ttl)
    if args.answer is None:
        if extra:
            raise VultusError("frames are checked against a challenge: pass its token", code="challenge_token")
        actions = None if not args.actions else [a.strip() for a in args.actions.split(",") if a.strip()]
        c = issuer.issue(actions)
        if args.json:
            print_json(c.to_dict())
        else:
            print(f"do, in this order, within {args.ttl:g} s: {', '.join(c.actions)}")
            print(f"token: {c.token}")
        return 0
    from vultus.cli.core import _images_arg

    token, frames = args.answer[0], args.answer[1:] + extra
    paths = _images_arg(frames) if frames else []
    result = issuer.verify(engine_from_args(args), token, [(i / args.fps, p) for i, p in enumerate(paths)])
    if args.json:
        print_json(result.to_dict())
    else:
        print("PASSED" if result.passed else f"FAILED: {result.reason}")
    return 0 if result.passed else 1
