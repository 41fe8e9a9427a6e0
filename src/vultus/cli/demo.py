"""`vultus demo`: the main job end to end on real photos, for a first run."""

from __future__ import annotations

import itertools
from pathlib import Path

from vultus.cli.common import add_engine_options, add_json_option, engine_from_args, print_json, print_table, progress
from vultus.errors import VultusError


def add_commands(sub) -> None:
    p = sub.add_parser("demo", help="verify every pair of faces in a folder of people (default: the sample photos)")
    p.add_argument("path", nargs="?", help="folder with one sub-folder of photos per person "
                                           "(default: face_recognition's sample people under ../shared/data)")
    add_engine_options(p)
    add_json_option(p)
    p.set_defaults(func=cmd_demo)


def default_demo_folder() -> Path:
    from vultus.data import data_root

    root = data_root()
    folder = root / "face_recognition/examples/knn_examples/train" if root else None
    if folder is None or not folder.is_dir():
        raise VultusError("no sample photos found (../shared/data or $VULTUS_DATA); name a folder: vultus demo PATH")
    return folder


def cmd_demo(args) -> int:
    from vultus.imageio import list_images, load_image

    folder = Path(args.path) if args.path else default_demo_folder()
    paths = list_images(folder)
    if len(paths) < 2:
        raise VultusError(f"{folder}: need at least two images")
    engine = engine_from_args(args)
    point = engine.operating_point()
    faces, skipped = {}, []
    for path in progress(paths, desc="embed", unit="img"):
        try:
            found = engine.embed(load_image(path))
        except VultusError as exc:
            skipped.append((path, str(exc)))
            continue
        if not found:
            skipped.append((path, "no face found"))
            continue
        faces[path] = max(found, key=lambda f: f.box.area)  # the main subject of each photo
    rows, correct, labelled = [], 0, 0
    for a, b in itertools.combinations(faces, 2):
        sim = faces[a].embedding.similarity(faces[b].embedding)
        same = sim >= point.threshold
        expected = (a.parent == b.parent) if a.parent != folder or b.parent != folder else None
        if expected is not None:
            labelled += 1
            correct += same == expected
        rows.append((str(a.relative_to(folder)), str(b.relative_to(folder)), sim, "same" if same else "different",
                     "" if expected is None else ("ok" if same == expected else "WRONG")))
    if args.json:
        print_json({"folder": str(folder), "model": engine.embedder_name, "threshold": point.threshold,
                    "false_match_rate": point.fmr,
                    "pairs": [dict(zip(["a", "b", "similarity", "decision", "check"], r, strict=True)) for r in rows],
                    "skipped": [{"image": str(p), "reason": r} for p, r in skipped]})
        return 0
    print(f"{len(faces)} faces from {folder} ({engine.detector_spec.name} + {engine.embedder_name}); "
          f"{point.describe()}\n")
    print_table(["image a", "image b", "similarity", "decision", "vs folders"], rows)
    if labelled:
        print(f"\n{correct} of {labelled} decisions agree with the folder names")
    for p, reason in skipped:
        print(f"skipped {p}: {reason}")
    return 0
