"""`vultus gallery ...`: enroll the people you know, then ask who is in a photo."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vultus.cli.common import add_json_option, annotation_target, print_json, print_table, progress, run_images
from vultus.errors import VultusError
from vultus.textsafe import safe_text

ACTIONS = "create | enroll | identify | list | show | rename | merge | move | delete | forget | reindex | " \
          "reembed | threshold | calibrate | liveness | stats | audit | migrate"


def add_commands(sub) -> None:
    p = sub.add_parser("gallery", help="enroll known people and identify faces (" + ACTIONS + ")",
                       description="A gallery of known people: one SQLite file (default in the user data dir), or a "
                                   "PostgreSQL database shared by many hosts (--gallery postgresql://user@host/db).")
    gsub = p.add_subparsers(dest="gallery_command", metavar="ACTION")
    p.set_defaults(func=lambda args: _help(p))

    def action(name: str, help_text: str, func, *, collection: bool = True) -> argparse.ArgumentParser:
        a = gsub.add_parser(name, help=help_text, description=help_text)
        a.add_argument("--gallery", metavar="PATH|URL", default=None,
                       help="gallery file, or a PostgreSQL URL postgresql://user@host:port/db (default: "
                            "$VULTUS_GALLERY or gallery.db in the user data dir)")
        if collection:
            a.add_argument("--collection", "-c", default="default", help="collection name (default: default)")
        add_json_option(a)
        a.set_defaults(func=func)
        return a

    a = action("create", "create a collection pinned to one embedder", cmd_create)
    a.add_argument("--embedder", default="sface", help="embedder model (default sface)")
    a.add_argument("--detector", default="yunet", help="detector model (default yunet)")
    target = a.add_mutually_exclusive_group()
    target.add_argument("--fpir", type=float, default=None,
                        help="target false-positive identification rate: the chance a face of someone never "
                             "enrolled is named as somebody (default 0.01; the threshold follows the collection's "
                             "size)")
    target.add_argument("--fmr", type=float, default=None,
                        help="decide instead by a false-match rate per comparison (fixed threshold)")
    a.add_argument("--no-crops", action="store_true",
                   help="do not keep aligned face crops (privacy; reembed then needs the source images)")
    a.add_argument("--aggregation", choices=("max", "mean"), default="max",
                   help="a person's score over their faces: best match (default) or mean")

    a = action("enroll", "enroll one image (--person), a folder (one sub-folder per person) or a CSV (path,person)",
               cmd_enroll)
    a.add_argument("source", metavar="SOURCE", help="an image, a folder of per-person folders, or a .csv")
    a.add_argument("--person", help="who the single image shows")
    a.add_argument("--allow-outside", action="store_true",
                   help="a CSV may name images outside its own folder (refused by default)")
    a.add_argument("--embedder", default=None,
                   help="embedder for a new collection; an existing collection refuses any other")
    a.add_argument("--detector", default=None, help="detector (default: the collection's, yunet)")
    a.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: one per core for 64+ images on 4+ cores; 0 = this process)")
    a.add_argument("--no-crops", action="store_true", help="do not keep aligned crops (privacy)")
    a.add_argument("--subject", choices=("center_largest", "only", "largest", "central"), default=None,
                   help="which face of a photo with several is the person: center_largest (default: of the faces "
                        "at least 0.9x the largest's area, the one nearest the centre; refused when none is "
                        "clearly the subject), only (refuse photos with several faces of similar size), largest, "
                        "or central (nearest the centre)")
    a.add_argument("--pick", choices=("one", "largest", "central"), default=None,
                   help=argparse.SUPPRESS)  # the older name of --subject ("one" is "only")
    a.add_argument("--min-quality", type=float, default=None,
                   help="gate: least face quality score in [0, 1], as `vultus analyze` shows it (0.5)")
    a.add_argument("--min-face-px", type=float, default=None,
                   help="gate: smallest face size, square root of the box area, in pixels (40)")
    a.add_argument("--min-sharpness", type=float, default=None,
                   help="gate: least Laplacian variance of the aligned face (10)")
    a.add_argument("--max-yaw", type=float, default=None, help="gate: largest head turn in degrees (55)")
    a.add_argument("--min-score", type=float, default=None, help="gate: least detector score (0.6)")

    a = action("identify", "who is in these photos: top-k people and a decision for every face", cmd_identify)
    a.add_argument("images", nargs="+", metavar="IMAGE", help="images or folders of images")
    a.add_argument("--top-k", type=int, default=3, help="people listed per face (default 3)")
    a.add_argument("--detector", default=None, help="detector (default: the collection's)")
    a.add_argument("--threads", type=int, default=None, help="CPU threads per model")
    a.add_argument("--annotate", metavar="PATH", help="write a labelled copy (for several images: a folder)")
    a.add_argument("--search", choices=("auto", "exact", "graph"), default="auto",
                   help="candidates by a full scan (exact; auto does this up to 1M faces) or by the HNSW graph "
                        "(faster on big galleries, but misses some matches)")

    a = action("list", "list the people in a collection (or --collections)", cmd_list)
    a.add_argument("--collections", action="store_true", help="list the collections instead")

    a = action("show", "a person and their enrolled faces", cmd_show)
    a.add_argument("person")

    a = action("rename", "rename a person", cmd_rename)
    a.add_argument("old")
    a.add_argument("new")

    a = action("merge", "move every face of SOURCE to TARGET and remove SOURCE", cmd_merge)
    a.add_argument("source")
    a.add_argument("target")

    a = action("move", "move one face (by id, see `show`) to another person", cmd_move)
    a.add_argument("face_id", type=int)
    a.add_argument("person")

    a = action("delete", "delete one face (by id, see `show`)", cmd_delete)
    a.add_argument("face_id", type=int)

    a = action("forget", "erase a person: every row, embedding, crop and index entry; proves none match after",
               cmd_forget)
    a.add_argument("person")

    a = action("reindex", "rebuild the collection's ANN index from the database", cmd_reindex)
    a.add_argument("--check", action="store_true", help="only check it (and bring it up to date)")

    a = action("reembed", "migrate a collection to another embedder from its stored crops", cmd_reembed)
    a.add_argument("--embedder", required=True, help="the embedder to migrate to")
    a.add_argument("--threads", type=int, default=None, help="CPU threads for the model")

    a = action("threshold", "show or set how the collection decides: target identification rate, false-match rate "
                            "or a threshold", cmd_threshold)
    a.add_argument("--fpir", type=float,
                   help="target false-positive identification rate (chance a never-enrolled face is named as "
                        "somebody); the threshold is re-derived from the calibration as the collection grows")
    a.add_argument("--fmr", type=float, help="target false-match rate (resolved via the embedder's calibration); "
                                             "with --threshold: the rate that threshold was measured to give")
    a.add_argument("--threshold", type=float, help="a threshold measured on your own data (needs --fmr, --source)")
    a.add_argument("--source", help="where --threshold was measured")
    a.add_argument("--reset", action="store_true",
                   help="drop a --threshold override and a curve from `calibrate`; use the embedder's calibration")
    a.add_argument("--aggregation", choices=("max", "mean"), help="how a person's faces are combined")

    a = action("liveness", "require faces to pass the liveness check at enroll and identify (or stop requiring it)",
               cmd_liveness)
    a.add_argument("require", nargs="?", choices=("door", "check-in", "off"), default=None,
                   help="operating point to require (door: strict; check-in: fewer live faces refused), or off; "
                        "without it: show the current setting")

    a = action("calibrate", "refit the collection's threshold from its own impostor pairs (faces of different "
                            "enrolled people), when there are enough for its target", cmd_calibrate)
    a.add_argument("--dry-run", action="store_true", help="show what the refit gives without storing it")
    a.add_argument("--max-faces", type=int, default=None,
                   help="score every pair among at most this many faces (a random sample of people above it; "
                        "default 20000)")

    a = action("stats", "counts, index state, threshold and sizes; checks the stated rates against the "
                        "collection's own impostor pairs", cmd_stats)
    a.add_argument("--no-check", action="store_true", help="leave out the check against the collection's own pairs")

    action("migrate", "bring the gallery's schema up to this version of vultus (also done on every writable "
                      "open); says what was applied", cmd_migrate, collection=False)

    a = action("audit", "the audit log (who changed what, when; never biometric data)", cmd_audit)
    a.add_argument("--limit", type=int, default=50)
    a.add_argument("--all", action="store_true", help="every collection")


def _help(p) -> int:
    p.print_help()
    return 1


def _open(args, *, create: bool = False):
    from vultus.gallery import Gallery

    return Gallery(args.gallery, create=create)


def _say(text: str, file=None) -> None:
    """Print one human-readable line with every control character escaped: it
    may hold person, collection or file names from users and files."""
    print(safe_text(text), file=file or sys.stdout)


def _print_error(message: str) -> None:
    _say(f"vultus: error: {message}", file=sys.stderr)


# -- create / enroll -----------------------------------------------------------
def cmd_create(args) -> int:
    with _open(args, create=True) as g:
        coll = g.create_collection(args.collection, embedder=args.embedder, detector=args.detector,
                                   target_fmr=args.fmr, target_fpir=args.fpir, keep_crops=not args.no_crops,
                                   aggregation=args.aggregation)
        if args.json:
            print_json(coll.to_dict() | {"gallery": g.location})
        else:
            _say(f"created collection {coll.name!r} in {g.location}: {coll.contract.describe()}, detector "
                  f"{coll.detector}, {_target_text(coll)}, crops {'kept' if coll.keep_crops else 'not kept'}")
    return 0


def _gate(args):
    from dataclasses import replace

    from vultus.gallery import GateThresholds

    limits = GateThresholds()
    overrides = {"min_quality": args.min_quality, "min_face_px": args.min_face_px, "min_sharpness": args.min_sharpness,
                 "max_yaw_deg": args.max_yaw, "min_detector_score": args.min_score}
    return replace(limits, **{k: v for k, v in overrides.items() if v is not None})


def _enroll_source(args):
    import os

    from vultus.gallery import EnrollItem
    from vultus.gallery.api import EnrollSource, scan_enroll_csv, scan_enroll_folder
    from vultus.imageio import check_regular_file

    src = Path(args.source)
    if not os.path.lexists(src):
        raise VultusError(f"{src}: no such file or folder", code="file_not_found", file=str(src))
    if src.is_dir():
        if args.person:
            raise VultusError("--person is for one image; a folder takes its people from its sub-folders")
        return scan_enroll_folder(src)
    check_regular_file(src)  # a FIFO, a device or a symbolic link loop: one line, nothing opened
    if src.suffix.lower() == ".csv":
        if args.person:
            raise VultusError("--person is for one image; a CSV names the person on each row")
        return scan_enroll_csv(src, allow_outside=args.allow_outside)
    if not args.person:
        raise VultusError(f"{src}: say who this is with --person NAME (or enroll a folder or a CSV)")
    return EnrollSource([EnrollItem(src, args.person.strip())])


# Lines listing skipped folder entries; --json lists them all.
MAX_SKIPPED_LINES = 20


def _enroll_line(kind: str, text: str) -> None:
    from vultus.textsafe import safe_text

    print(f"vultus: {kind}: {safe_text(text)}", file=sys.stderr)


def cmd_enroll(args) -> int:
    """Exit 0 when every image was enrolled or was already there; 2 (bad input, as
    the README promises) when an image was refused or unreadable, or when an entry
    named like an image was skipped (a FIFO, a loop, a folder)."""
    from vultus.gallery import EnrollOptions

    source = _enroll_source(args)
    items = source.items
    if args.person is not None and not args.person.strip():
        raise VultusError("--person cannot be empty")
    if not args.json:
        for entry in source.skipped[:MAX_SKIPPED_LINES]:
            _enroll_line("skipped", entry.message())
        if len(source.skipped) > MAX_SKIPPED_LINES:
            _enroll_line("skipped", f"{len(source.skipped) - MAX_SKIPPED_LINES} more entries (--json lists them all)")
    if args.pick is not None and args.subject is not None:
        raise VultusError("--pick is the older name of --subject; give one of them", code="conflicting_options")
    subject = args.subject or {"one": "only"}.get(args.pick, args.pick) or "center_largest"
    options = EnrollOptions(gate=_gate(args), keep_crops=not args.no_crops, subject=subject)
    with _open(args, create=True) as g:
        bar = progress(total=len(items), desc="enroll", unit="img")
        try:
            report = g.enroll(items, args.collection, embedder=args.embedder, detector=args.detector,
                              options=options, workers=args.workers, progress=bar.update)
        finally:
            bar.close()
        if args.json:
            print_json(report.to_dict() | {"gallery": g.location,
                                           "skipped": [e.to_dict() for e in source.skipped]})
        else:
            chosen = [o for o in report.outcomes if o.subject is not None and o.subject.faces > 1]
            if chosen:  # one face of several was taken as the person: say which and why, to be checked
                print_table(["image", "person", "status", "face", "box x1,y1,x2,y2", "faces", "why this face"],
                            [(o.path, o.person, o.status, o.subject.index,
                              ",".join(f"{v:.0f}" for v in o.subject.box.as_tuple()), o.subject.faces,
                              o.subject.reason) for o in chosen])
            for o in report.outcomes:
                if o.status in ("refused", "error"):
                    _enroll_line(o.status, f"{o.path} ({o.person}): {o.reason}")
            for w in report.warnings:
                _enroll_line("warning", w.message())
            d = report.to_dict()
            skipped = f", {len(source.skipped)} skipped" if source.skipped else ""
            _say(f"{d['enrolled']} faces enrolled into {report.collection!r} ({g.location}); "
                 f"{d['duplicates']} already there, {d['refused']} refused, {d['errors']} unreadable{skipped}; "
                 f"{report.seconds:.1f} s")
    bad = report.count("refused") + report.count("error") + sum(e.named_like_image for e in source.skipped)
    return 2 if bad else 0


# -- identify ------------------------------------------------------------------
def _where(box, width: int, height: int) -> str:
    """Where a face sits in the photo, in words a person would use."""
    cx = (box.x1 + box.x2) / 2 / max(width, 1)
    cy = (box.y1 + box.y2) / 2 / max(height, 1)
    horiz = ("left", "centre-left", "centre", "centre-right", "right")[min(4, int(cx * 5))]
    vert = "top " if cy < 0.25 else "bottom " if cy > 0.75 else ""
    return vert + horiz


def cmd_identify(args) -> int:
    from dataclasses import replace

    from vultus.cli.core import _images_arg

    paths = _images_arg(args.images)
    target = annotation_target(args.annotate, len(paths))  # an unwritable target fails before any work
    with _open(args) as g:
        d = g.decision(g.collection(args.collection))  # a collection that cannot decide fails once, up front

        def identify(arrays):  # one detector, embedder and index call per chunk
            return list(g.identify_stream(arrays, args.collection, top_k=args.top_k, detector=args.detector,
                                          threads=args.threads, search=args.search, chunk_size=len(arrays)))

        def named(item):  # the identification of a chunk item, under the name the user gave
            return replace(item.result.value, image=str(item.path))

        # which search serves these faces: "exact" (every enrolled face scanned) or "graph" (HNSW)
        method = g.search_method(g.collection(args.collection), args.search)
        failures = run_images(paths, identify, desc="identify", as_json=args.json,
                              entry=lambda item: named(item).to_dict() | {"search": method},
                              rows=lambda item: _identify_rows(named(item)),
                              headers=["image", "face", "where", "box x1,y1,x2,y2", "person", "similarity",
                                       "next best"],
                              annotate=target and (target, lambda item: _annotated(item.image, named(item)), "_who"))
        if failures < len(paths) and not args.json:
            _say(f"decision: {_decision_text(d)}")
    return 2 if failures else 0


def _identify_rows(r) -> list[tuple]:
    name = Path(r.image).name
    rows = []
    if not r.faces:
        rows.append((name, "-", "", "", "no face", "", ""))
    # left to right, as a reader scans the photo; "face" keeps the detector's numbering
    for i, f in sorted(enumerate(r.faces), key=lambda t: t[1].face.box.x1):
        b = f.face.box
        runner = f.matches[1] if len(f.matches) > 1 else None
        nxt = f"{runner.person} {runner.similarity:.3f}" if runner else ""
        if f.unknown and f.matches:
            nxt = f"closest {f.matches[0].person} {f.similarity:.3f}"
        if f.refused:  # the collection requires liveness and this face failed it: say why
            nxt = f.refused
        rows.append((name, i, _where(b, r.width, r.height), f"{b.x1:.0f},{b.y1:.0f},{b.x2:.0f},{b.y2:.0f}",
                     f.label, f"{f.similarity:.3f}" if f.matches else "", nxt))
    return rows


def _annotated(image, r):
    """The photo with each face's box and who it is."""
    from vultus.draw import annotate

    return annotate(image, [f.face for f in r.faces], [f"{f.label} {f.similarity:.2f}" for f in r.faces])


# -- manage --------------------------------------------------------------------
def cmd_list(args) -> int:
    with _open(args) as g:
        if args.collections:
            colls = g.collections()
            if args.json:
                print_json([c.to_dict() | {"people": len(g.people(c.name))} for c in colls])
            else:
                print_table(["collection", "embedder", "version", "detector", "target fmr", "people", "crops"],
                            [(c.name, c.contract.name, c.contract.version, c.detector, f"{c.target_fmr:g}",
                              len(g.people(c.name)), "kept" if c.keep_crops else "no") for c in colls])
            return 0
        people = g.people(args.collection)
        if args.json:
            print_json([p.to_dict() for p in people])
        else:
            print_table(["person", "faces", "enrolled"], [(p.name, p.face_count, p.created_at[:19]) for p in people])
    return 0


def cmd_show(args) -> int:
    with _open(args) as g:
        person = g.person(args.person, args.collection)
        faces = g.faces(args.collection, args.person)
        if args.json:
            print_json(person.to_dict() | {"face_records": [f.to_dict() for f in faces]})
        else:
            _say(f"{person.name}: {person.face_count} faces, enrolled {person.created_at[:19]}"
                  + (f", metadata {person.metadata}" if person.metadata else ""))
            print_table(["face id", "image", "box", "quality", "size px", "sharpness", "yaw", "crop"],
                        [(f.id, f.image_path or f.image_sha256[:12], ",".join(f"{v:.0f}" for v in f.box.as_tuple()),
                          *(f.quality.get(k, "") for k in ("quality", "face_px", "sharpness", "yaw_deg")),
                          "yes" if f.has_crop else "no") for f in faces])
    return 0


def _done(args, payload: dict, text: str) -> int:
    if args.json:
        print_json(payload)
    else:
        _say(text)
    return 0


def cmd_rename(args) -> int:
    with _open(args) as g:
        p = g.rename(args.old, args.new, args.collection)
        return _done(args, {"renamed": args.old, "to": p.name}, f"renamed {args.old!r} to {p.name!r}")


def cmd_merge(args) -> int:
    with _open(args) as g:
        n = g.merge(args.source, args.target, args.collection)
        return _done(args, {"merged": args.source, "into": args.target, "faces_moved": n},
                     f"merged {args.source!r} into {args.target!r} ({n} faces moved)")


def cmd_move(args) -> int:
    with _open(args) as g:
        g.move_face(args.face_id, args.person, args.collection)
        return _done(args, {"face_id": args.face_id, "person": args.person},
                     f"face {args.face_id} now belongs to {args.person!r}")


def cmd_delete(args) -> int:
    with _open(args) as g:
        g.delete_face(args.face_id, args.collection)
        return _done(args, {"deleted_face": args.face_id}, f"face {args.face_id} deleted")


def cmd_forget(args) -> int:
    with _open(args) as g:
        r = g.forget(args.person, args.collection)
        p = r.proof
        if args.json:
            print_json(r.to_dict())
        else:
            _say(f"forgot {r.person!r}: {r.faces_removed} faces, {r.embeddings_removed} embeddings, "
                 f"{r.crops_removed} crops, {r.index_entries_removed} index entries removed")
            if r.verified:
                best = "" if p.best_remaining_similarity is None else \
                    f"; their best match among those left: {p.best_remaining_similarity:.3f}"
                _say(f"proof: no row of the database and no index entry refers to them, and their "
                     f"{p.checked_faces} faces, identified again before being dropped from memory, never return "
                     f"them{best}")
            else:
                what = [f"{n} {w}" for n, w in ((p.rows_remaining, "database rows"),
                                                (p.index_entries_remaining, "index entries"),
                                                (p.search_hits, "searches that still return them")) if n]
                if not p.index_file_clean:
                    what.append("the index file still holds their vectors' bytes")
                _say(f"vultus: error: forget did not complete: {', '.join(what)}; `vultus gallery reindex` "
                     "rebuilds the index from the database", file=sys.stderr)
            for x in p.lookalikes:
                _say(f"vultus: warning: {x.faces} of the forgotten faces still match {x.person!r} at "
                     f"{x.similarity:.3f} (strict threshold {p.strict_threshold:.3f}, false-match rate {p.fmr:g}): "
                     "the same person enrolled under another name?", file=sys.stderr)
    # A lookalike is a warning about someone else; only a failed erasure fails the command.
    return 0 if r.verified else 1


def cmd_reindex(args) -> int:
    with _open(args) as g:
        r = g.reindex(args.collection, check_only=args.check)
        return _done(args, r.to_dict(), f"index of {r.collection!r} ({r.embedder}): {r.indexed} entries for "
                                        f"{r.stored} stored embeddings; {r.action}: {r.reason}")


def cmd_reembed(args) -> int:
    with _open(args) as g:
        total = len(g.faces(args.collection))
        bar = progress(total=total, desc="reembed", unit="face")
        try:
            r = g.reembed(args.collection, args.embedder, threads=args.threads, progress=bar.update)
        finally:
            bar.close()
        return _done(args, r.to_dict(),
                     f"collection {r.collection!r} migrated from {r.old.describe()} to {r.new.describe()}: "
                     f"{r.faces} faces ({r.from_crops} from stored crops, {r.from_images} from source images), "
                     f"{r.seconds:.1f} s")


def _target_text(coll) -> str:
    if coll.target_fpir is not None:
        return f"target false-positive identification rate {coll.target_fpir:g}"
    return f"target false-match rate {coll.target_fmr:g} per comparison"


def _decision_text(d) -> str:
    """The threshold, what chose it, and the rates it gives in this collection."""
    if d.target == "fpir":
        chosen = (f"chosen for a false-positive identification rate of {d.target_rate:g} with {d.comparisons} "
                  f"enrolled {'faces' if d.comparisons != 1 else 'face'} to match")
    elif d.target == "fmr":
        chosen = f"chosen for a false-match rate of {d.target_rate:g} per comparison"
    else:
        chosen = "pinned"
    tail = " (extrapolated below the calibration's lowest measured rate)" if d.extrapolated else ""
    return (f"similarity >= {d.threshold:.4f}, {chosen}; false-match rate {d.fmr:.3g} per comparison{tail} "
            f"({d.source}); a face of someone never enrolled is named as somebody about "
            f"{100 * d.expected_fpir:.2g}% of the time")


def cmd_threshold(args) -> int:
    with _open(args) as g:
        if args.fpir is not None and (args.fmr is not None or args.threshold is not None):
            raise VultusError("--fpir sets the target alone; --fmr and --threshold set another kind of target",
                              code="conflicting_targets")
        if args.threshold is not None:
            if args.fmr is None or not args.source:
                raise VultusError("--threshold needs --fmr (the rate it was measured to give) and --source")
            g.set_threshold(args.collection, args.threshold, args.fmr, args.source)
        elif args.fmr is not None:
            g.set_target_fmr(args.collection, args.fmr)
        elif args.fpir is not None:
            g.set_target_fpir(args.collection, args.fpir)
        if args.reset:
            g.clear_threshold(args.collection)
        if args.aggregation:
            g.set_aggregation(args.collection, args.aggregation)
        coll = g.collection(args.collection)
        d = g.decision(coll)
        payload = coll.to_dict() | {"decision": d.to_dict()}
        text = f"{coll.name!r} decides at {_decision_text(d)}; aggregation {coll.aggregation}"
        return _done(args, payload, text)


def cmd_liveness(args) -> int:
    with _open(args) as g:
        if args.require is not None:
            g.set_liveness(args.collection, None if args.require == "off" else args.require)
        coll = g.collection(args.collection)
        if coll.liveness:
            from vultus.liveness.api import operating_point

            p = operating_point(coll.liveness)
            text = (f"{coll.name!r} requires liveness at {p.name!r}: score >= {p.threshold:.3f} (APCER "
                    f"{100 * p.apcer:.1f}%, BPCER {100 * p.bpcer:.1f}%, measured on {p.measured_on})")
        else:
            text = f"{coll.name!r} does not require liveness"
        return _done(args, coll.to_dict(), text)


def cmd_calibrate(args) -> int:
    with _open(args) as g:
        r = g.calibrate(args.collection, store=not args.dry_run, max_faces=args.max_faces)
        if args.json:
            print_json(r.to_dict() | {"gallery": g.location})
            return 0
        _say(f"measured on {r.check.pairs:,} impostor pairs among {r.check.faces:,} faces of {r.check.people:,} "
             f"people{' (a random sample)' if r.check.sampled else ''}; the target needs a false-match rate of "
             f"{r.target_rate:.2g} per comparison (at least {r.pairs_needed:,} pairs)")
        _say(f"before: {r.check.message}")
        c = r.calibration
        below = f", below it the shape of {c.tail}" if c.tail else ", below it an exponential"
        _say(f"refitted curve: measured down to a false-match rate of {c.measured_to:.2g} (10 pairs above it){below}; "
             f"the target's rate is {'measured directly' if r.direct else 'below the measured part'}")
        if r.before is not None:
            _say(f"threshold before: similarity >= {r.before.threshold:.4f} ({r.before.source})")
        _say(f"threshold {'now' if r.stored else 'it would be'}: {_decision_text(r.after)}")
        if r.replaced_threshold:
            _say(f"the pinned threshold {'was' if r.stored else 'would be'} replaced")
        if not (r.check.optimistic or r.check.conservative) and r.before is not None and r.before.target != "threshold":
            # on photos like the calibration's, the shipped curve (millions of pairs) is the better estimate
            _say("note: the calibration in use agreed with these photos; the refit rests on this collection's "
                 f"{r.check.pairs:,} pairs and is noisier than a curve measured on millions (`vultus gallery "
                 "threshold --reset` returns to it)")
        if not r.stored:
            _say("dry run: nothing stored")
    return 0


def cmd_stats(args) -> int:
    with _open(args) as g:
        s = g.stats(args.collection, check_calibration=not args.no_check)
        if args.json:
            print_json(s.to_dict() | {"gallery": g.location})
            return 0
        c = s.collection
        rows = [("gallery", g.location), ("collection", c.name), ("embedder", c.contract.describe()),
                ("detector", c.detector), ("people", s.people), ("faces", s.faces), ("images", s.images),
                ("embeddings", s.embeddings), ("crops kept", s.crops),
                ("index", f"{s.index.indexed} entries ({s.index.action}: {s.index.reason})"),
                ("database size", f"{s.db_bytes / 1e6:.1f} MB"), ("index size", f"{s.index_bytes / 1e6:.1f} MB")]
        if s.decision:
            d = s.decision
            rows.append(("decision target", _target_text(c) if d.target != "threshold" else
                         f"pinned threshold ({d.source})"))
            rows.append(("threshold now", f"similarity >= {d.threshold:.4f} ({d.comparisons} comparisons per search, "
                                          f"{c.aggregation} aggregation)"))
            rows.append(("stated false-match rate", f"{d.fmr:.3g} per comparison" + (
                " (extrapolated below the calibration's lowest measured rate)" if d.extrapolated else "")
                + f", {d.source}"))
            rows.append(("stated identification rate", f"a face of someone never enrolled is named as somebody "
                                                       f"about {100 * d.expected_fpir:.2g}% of the time"))
        else:
            rows.append(("decision", f"not available: {s.decision_error}"))
        check = s.calibration_check
        if check is not None:
            rows.append(("own impostor pairs", f"{check.pairs:,} among {check.faces:,} faces of {check.people:,} "
                                               f"people{' (a random sample)' if check.sampled else ''}"))
            # the decision's own threshold and the rarest rates checked (--json lists every one)
            shown = [p for p in check.points if p.at_decision]
            shown += sorted((p for p in check.points if not p.at_decision), key=lambda p: p.stated_fmr)[:4 - len(shown)]
            for p in sorted(shown, key=lambda p: -p.stated_fmr):
                rows.append((f"measured at {p.threshold:.4f}",
                             f"false-match rate {p.measured_fmr:.2g} (95% {p.low:.2g} to {p.high:.2g}, "
                             f"{p.pairs_above:,} pairs) where {p.stated_fmr:.2g} is stated, {p.ratio:.2f}x"
                             + (" (the decision's threshold)" if p.at_decision else "")))
            rows.append(("calibration check", check.message if not check.optimistic else "likely optimistic "
                         "(see the warning)"))
        width = max(len(k) for k, _ in rows)
        for k, v in rows:
            _say(f"{k.ljust(width)}  {v}")
        if check is not None and check.optimistic:
            _say(f"vultus: warning: {check.message}", file=sys.stderr)
    return 0


def cmd_audit(args) -> int:
    with _open(args) as g:
        records = g.audit_log(None if args.all else args.collection, args.limit)
        if args.json:
            print_json([r.to_dict() for r in records])
        else:
            print_table(["id", "when", "who", "action", "collection", "detail"],
                        [(r.id, r.at[:19], r.actor, r.action, r.collection, r.detail) for r in records])
    return 0


def cmd_migrate(args) -> int:
    with _open(args, create=True) as g:
        r = g.migrate()
        applied = ", ".join(r.applied) if r.applied else "nothing to apply"
        return _done(args, r.to_dict(), f"{r.location} ({r.backend}): schema version {r.version_before} -> "
                                        f"{r.version}; {applied}")
