"""Core commands: models, detect, embed, verify."""

from __future__ import annotations

from pathlib import Path

from vultus.cli.common import (
    add_engine_options,
    add_json_option,
    annotation_target,
    engine_from_args,
    error_entry,
    in_chunks,
    print_json,
    print_table,
    report_failure,
    run_images,
)
from vultus.errors import VultusError
from vultus.textsafe import safe_text


def add_commands(sub) -> None:
    p = sub.add_parser("models", help="list the model registry and verify every file's checksum")
    p.add_argument("--verify", action="store_true",
                   help="hash every file again instead of trusting the digests remembered in the cache dir")
    add_json_option(p)
    p.set_defaults(func=cmd_models)
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    pull = msub.add_parser("pull", help="download a URL model into the cache and verify its sha256")
    pull.add_argument("name")
    pull.set_defaults(func=cmd_models_pull)

    p = sub.add_parser("detect", help="find faces: boxes, scores, 5 landmarks")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    add_engine_options(p, embedder=False)
    p.add_argument("--landmarks68", action="store_true", help="also compute dlib's 68 landmarks")
    p.add_argument("--annotate", metavar="PATH",
                   help="write an annotated copy (for several images: a folder)")
    add_json_option(p)
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("embed", help="write one embedding per face to a .npy file")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--out", required=True, metavar="FILE.npy", help="where to write the (N, dim) float32 array")
    add_engine_options(p)
    add_json_option(p)
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("verify", help="are the faces in two images the same person?")
    p.add_argument("image_a")
    p.add_argument("image_b")
    add_engine_options(p)
    p.add_argument("--fmr", type=float, default=None,
                   help="target false-match rate for the threshold (default: the calibration's, 1e-3)")
    p.add_argument("--largest", action="store_true", help="use the largest face when an image shows several")
    p.add_argument("--collection", metavar="NAME",
                   help="use this gallery collection's embedder and threshold (e.g. one set by `vultus calibrate`)")
    p.add_argument("--gallery", metavar="PATH", help="gallery file for --collection (default: the user's gallery)")
    add_json_option(p)
    p.set_defaults(func=cmd_verify)


def cmd_models(args) -> int:
    from vultus.models.registry import check, effective_license, registry

    rows, out = [], []
    for spec in registry().values():
        ok, msg = check(spec, rehash=args.verify)
        eff = effective_license(spec)
        out.append({"name": spec.name, "task": spec.task, "license": spec.license,
                    "effective_license": {"license": eff.license, "terms": eff.terms, "models": list(eff.models)},
                    "components": list(spec.components), "source": spec.source,
                    "version": spec.version, "verified": ok, "status": msg,
                    "files": [{"file": f.filename, "sha256": f.sha256} for f in spec.files],
                    "input": {"size": spec.input.size, "colour": spec.input.colour,
                              "normalisation": spec.input.normalisation, "alignment": spec.input.alignment},
                    "published": spec.published})
        rows.append((spec.name, spec.task, eff.short(spec.name), eff.terms, spec.source.split(" (")[0],
                     "yes" if ok else "NO: " + msg))
    if args.json:
        print_json(out)
    else:
        # The licence shown is the most restrictive over the model and every model it loads.
        print_table(["name", "task", "license (with what it loads)", "use", "source", "verified"], rows)
    missing = [o for o in out if not o["verified"] and "not downloaded" not in o["status"]]
    return 1 if missing else 0


def cmd_models_pull(args) -> int:
    from vultus.models.registry import get_spec, resolve_file

    spec = get_spec(args.name)
    for f in spec.files:
        path = resolve_file(f, fetch=True)
        print(f"{spec.name}: {f.filename} verified ({f.sha256[:12]}...) at {path}")
    return 0


def _images_arg(paths: list[str]) -> list[Path]:
    from vultus.cli.common import image_paths

    return image_paths(paths)


def cmd_detect(args) -> int:
    from vultus.batching import with_value
    from vultus.draw import annotate

    paths = _images_arg(args.images)
    target = annotation_target(args.annotate, len(paths))  # an unwritable target fails before any work
    engine = engine_from_args(args)

    def detect(arrays):
        results = engine.detect_batch(arrays)  # one detector call per chunk
        if args.landmarks68:
            results = [with_value(r, engine.landmarks68(img, r.value)) if r.ok and r.value else r
                       for img, r in zip(arrays, results, strict=True)]
        return results

    def rows(item):
        faces = item.result.value
        out = [(item.path.name, "-", "no face", "", "")] if not faces else []
        for i, f in enumerate(faces):
            b = f.box
            out.append((item.path.name, i, f"{b.x1:.0f},{b.y1:.0f},{b.x2:.0f},{b.y2:.0f}", f"{f.score:.3f}",
                        " ".join(f"{x:.0f},{y:.0f}" for x, y in f.landmarks)))
        return out

    failures = run_images(paths, detect, desc="detect", as_json=args.json, rows=rows,
                          headers=["image", "face", "box x1,y1,x2,y2", "score", "landmarks (x,y)"],
                          annotate=target and (target, lambda item: annotate(item.image, item.result.value), "_faces"))
    return 2 if failures else 0


def cmd_embed(args) -> int:
    import json

    import numpy as np

    from vultus.batching import failed
    from vultus.errors import NoFaceError
    from vultus.outputs import check_writable

    out = check_writable(args.out, suffixes=[".npy"])  # before any image is read
    rows_file = check_writable(out.with_suffix(".json"), suffixes=[".json"])
    paths = _images_arg(args.images)
    engine = engine_from_args(args)
    vectors, index, errors = [], [], []
    for chunk in in_chunks(paths, engine.embed_batch, desc="embed"):  # one detector and embedder call per chunk
        for item in chunk:
            r = item.result
            if r.ok and not r.value:
                r = failed(r, NoFaceError(f"{item.path}: no face found", file=item.path))
            if not r.ok:
                report_failure(r)
                errors.append(error_entry(r))
                continue
            for i, f in enumerate(r.value):
                vectors.append(f.embedding.vector)
                index.append({"row": len(index), "image": str(item.path), "face": i, "box": f.to_dict()["box"]})
    if not vectors:  # every image failed: say so, and leave no empty file that looks like a result
        if args.json:
            print_json({"out": None, "model": engine.embedder_name, "shape": [0, engine.embedder_spec.dim],
                        "rows": [], "errors": errors})
        raise VultusError(f"{out}: no face embedded in any of the {len(paths)} images; nothing written",
                          code="nothing_embedded", file=out, images=len(paths), failures=len(errors))
    arr = np.stack(vectors)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, arr)
    rows_file.write_text(json.dumps({"model": engine.embedder_name, "rows": index}, indent=1))
    if args.json:
        print_json({"out": str(out), "model": engine.embedder_name, "shape": list(arr.shape), "rows": index,
                    "errors": errors})
    else:
        print(safe_text(f"{arr.shape[0]} embeddings ({engine.embedder_name}, {arr.shape[1]}-d) written to {out}; "
                        f"rows described in {rows_file}"))
    return 2 if errors else 0


def cmd_verify(args) -> int:
    point = None
    if args.collection:
        from vultus.engine import Engine
        from vultus.gallery import Gallery
        from vultus.types import OperatingPoint

        with Gallery(args.gallery, create=False) as gallery:
            coll = gallery.collection(args.collection)
            decision = gallery.decision(coll)
        if args.fmr is not None and coll.threshold_override is not None:
            raise VultusError(f"collection {coll.name!r} has a measured threshold; --fmr cannot change it "
                              "(use `vultus gallery threshold --reset` first)")
        point = None if args.fmr is not None else OperatingPoint(decision.threshold, decision.fmr, decision.source)
        engine = Engine(detector=coll.detector, embedder=coll.contract.name, threads=args.threads)
    else:
        engine = engine_from_args(args)
    outcome = engine.verify_batch([(args.image_a, args.image_b)], target_fmr=args.fmr, largest=args.largest,
                                  point=point)[0]
    if not outcome.ok:
        from vultus.cli.errors import exit_status

        report_failure(outcome)
        if args.json:
            print_json({"image_a": args.image_a, "image_b": args.image_b, "error": outcome.error_dict()})
        return exit_status(outcome.error)
    result = outcome.value
    if args.json:
        print_json(result.to_dict() | {"image_a": args.image_a, "image_b": args.image_b})
    else:
        verdict = "SAME person" if result.same else "DIFFERENT people"
        source = point.source if point else "LFW"
        print(safe_text(f"{verdict}: similarity {result.similarity:.3f} vs threshold {result.threshold:.3f} "
                        f"({result.model}, false-match rate {result.fmr:g} on {source})"))  # source: user text
    return 0


