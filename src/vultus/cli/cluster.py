"""`vultus cluster ...`: sort photos by person, then name, merge and correct the clusters.

    vultus cluster PHOTOS... [--out DIR] [--json]      cluster (incrementally) into the gallery's state
    vultus cluster PHOTOS... --recluster               rebuild every cluster; old ids map to new by overlap
    vultus cluster PHOTOS... --no-gallery              a one-off clustering that stores nothing
    vultus cluster name CLUSTER "Grandma"              enroll the cluster as a person (normal gate)
    vultus cluster merge A B                           B's faces join A
    vultus cluster remove FACE                         "not this person": never put back with them
    vultus cluster show                                the stored clusters (and --out DIR for the report)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vultus.cli.common import add_json_option, print_json, print_table, progress
from vultus.errors import OutputError, VultusError
from vultus.textsafe import safe_text

ACTIONS = ("name", "merge", "remove", "show")


def add_commands(sub) -> None:
    p = sub.add_parser("cluster", help="sort photos by person without enrolling anyone; name, merge and correct "
                                       "the clusters (" + " | ".join(ACTIONS) + ")",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photos", nargs="*", metavar="PHOTOS",
                   help="images or folders (searched recursively); or an action: " + ", ".join(ACTIONS))
    _common(p)
    p.add_argument("--out", type=Path, default=None,
                   help="folder for report.html (one file, works offline) and clusters.json")
    p.add_argument("--recluster", action="store_true",
                   help="rebuild every cluster from scratch; old cluster ids map to new ones by overlap")
    p.add_argument("--no-gallery", action="store_true",
                   help="cluster these photos only, store nothing (no incremental state)")
    p.add_argument("--embedder", default=None, help="embedder (default: the collection's, else sface)")
    p.add_argument("--detector", default="yunet", help="detector model (default yunet)")
    p.add_argument("--fmr", type=float, default=None,
                   help="false-match rate whose calibrated threshold cuts the clusters (default: the one "
                        "bench/cluster.py chose)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core)")
    p.add_argument("--no-cache", action="store_true", help="re-detect and re-embed every image")
    p.set_defaults(func=cmd_cluster)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gallery", metavar="PATH", default=None,
                   help="gallery file holding the clusters (default: $VULTUS_GALLERY or the user data dir)")
    p.add_argument("--collection", "-c", default="default",
                   help="gallery collection the clusters belong to and names are enrolled into (default: default)")
    add_json_option(p)


def _say(text: str, file=None) -> None:
    print(safe_text(text), file=file or sys.stdout)


def _action_parser(action: str) -> argparse.ArgumentParser:
    """The action's own arguments; its options (--gallery, --collection, --json, --out) are the
    command's."""
    a = argparse.ArgumentParser(prog=f"vultus cluster {action}")
    if action == "name":
        a.add_argument("cluster", type=int, help="cluster id")
        a.add_argument("person", help="the person's name")
    elif action == "merge":
        a.add_argument("into", type=int, help="the cluster that stays")
        a.add_argument("other", type=int, help="the cluster whose faces join it")
    elif action == "remove":
        a.add_argument("face", help="the face (IMAGE_SHA256:N, as the JSON and the report list it)")
    return a


def _open_gallery(path, create: bool):
    from vultus.gallery import Gallery

    return Gallery(path, create=create)


def _photos(items: list[str]) -> tuple[list[Path], dict[str, str]]:
    from vultus.imageio import list_images

    paths, errors = [], {}
    for item in items:
        try:
            paths.extend(list_images(item))
        except VultusError as exc:
            errors[item] = str(exc).removeprefix(f"{item}: ")
    return paths, errors


def cmd_cluster(args) -> int:
    # An action word first (and no file of that name): the rest are the action's arguments.
    if not args.photos and not args.recluster:
        raise VultusError("give the photos (files or folders) to cluster, or an action: " + ", ".join(ACTIONS),
                          code="no_images")
    first = args.photos[0] if args.photos else ""
    if first in ACTIONS and not Path(first).exists():
        sub = _action_parser(first).parse_args(args.photos[1:])
        for opt in ("gallery", "collection", "json", "out", "workers"):
            setattr(sub, opt, getattr(args, opt))
        return {"name": cmd_name, "merge": cmd_merge, "remove": cmd_remove, "show": cmd_show}[first](sub)
    from vultus.cluster.api import cluster_photos
    from vultus.cluster.faces import photo_faces
    from vultus.engine import Engine

    paths, errors = _photos(args.photos)
    if args.photos and not paths and errors:
        raise VultusError(f"no images to cluster: {'; '.join(f'{k}: {v}' for k, v in errors.items())}",
                          code="no_images")
    fmr = args.fmr  # None: the rate bench/cluster.py chose for the embedder
    bar = progress(total=len(paths), desc="faces", unit="img")
    try:
        if args.no_gallery:
            result = cluster_photos(paths, embedder=args.embedder or "sface", detector=args.detector, fmr=fmr,
                                    workers=args.workers, use_cache=not args.no_cache, progress=bar.update)
            result.errors.update(errors)
            step = None
        else:
            from vultus.cluster.state import open_clusters

            with _open_gallery(args.gallery, create=True) as g:
                g.store.require_writable()
                book = open_clusters(g, args.collection, embedder=args.embedder, fmr=fmr)
                engine = Engine(detector=args.detector, embedder=book.embedder)
                found = photo_faces(engine, paths, workers=args.workers, use_cache=not args.no_cache,
                                    progress=bar.update)
                step = book.add(found.faces)
                if args.recluster:
                    step = book.recluster()
                low = [f for f in found.faces if f.gate]
                result = book.result(low_quality=low, errors=found.errors | errors, images=found.images,
                                     images_without_faces=found.images_without_faces, cache_hits=found.cache_hits)
                location = g.location
    finally:
        bar.close()
    _outputs(args, result)
    if args.json:
        out = result.to_dict()
        if step is not None:
            out |= {"step": step.to_dict(), "gallery": location, "collection": args.collection}
        print_json(out)
    else:
        _print_summary(result)
        if step is not None:
            _say(f"{step.added} new faces ({step.joined} joined clusters, {step.identified} identified as named "
                 f"people), {step.new_clusters} new clusters; {step.known} faces already clustered; state in "
                 f"{location}, collection {args.collection!r}")
            if step.id_map:
                moved = {o: n for o, n in step.id_map.items() if o != n}
                _say(f"recluster: {len(step.id_map) - len(moved)} ids kept" + (
                    "; " + ", ".join(f"{o} -> {n}" for o, n in moved.items()) if moved else ""))
        for path, why in result.errors.items():
            _say(f"skipped: {path}: {why}", file=sys.stderr)
    return 0


def _outputs(args, result) -> None:
    out = getattr(args, "out", None)
    if out is None:
        return
    import json

    from vultus.cluster.report import write_html

    try:
        out.mkdir(parents=True, exist_ok=True)
        write_html(result, out / "report.html")
        tmp = out / "clusters.json.tmp"
        tmp.write_text(json.dumps(result.to_dict(), indent=1))
        tmp.replace(out / "clusters.json")
    except OSError as exc:
        raise OutputError(f"{out}: cannot write the report ({exc.strerror or exc})", path=str(out)) from exc
    if not args.json:
        _say(f"report: {out / 'report.html'}; JSON: {out / 'clusters.json'}")


def _print_summary(result) -> None:
    rows = [(c.id, c.name or "", c.size, round(c.cohesion, 3), Path(c.representative.image).name,
             c.representative.key) for c in result.clusters]
    print_table(["cluster", "name", "faces", "cohesion", "representative", "face"], rows)
    _say(f"{len(result.clusters)} clusters, {len(result.unsorted)} unsorted faces, {len(result.low_quality)} below "
         f"the quality gate, {len(result.errors)} files skipped; average similarity >= {result.threshold:.3f} "
         f"({result.embedder}, false-match rate {result.fmr:g} per comparison, {result.source})")


def _book(args, create: bool = False):
    from vultus.cluster.state import PhotoClusters

    g = _open_gallery(args.gallery, create=create)
    try:
        return g, PhotoClusters(g, args.collection)
    except BaseException:
        g.close()
        raise


def cmd_show(args) -> int:
    g, book = _book(args)
    with g:
        result = book.result()
    _outputs(args, result)
    if args.json:
        print_json(result.to_dict())
    else:
        _print_summary(result)
    return 0


def cmd_name(args) -> int:
    g, book = _book(args)
    with g:
        report = book.name(args.cluster, args.person, workers=args.workers or 0)
    d = report.to_dict()
    if args.json:
        print_json({"cluster": args.cluster, "person": args.person} | d)
    else:
        for o in report.outcomes:
            if o.status in ("refused", "error"):
                _say(f"{o.status}: {o.path}: {o.reason}", file=sys.stderr)
        _say(f"cluster {args.cluster} is {args.person!r}: {d['enrolled']} faces enrolled into "
             f"{args.collection!r}, {d['duplicates']} already there, {d['refused']} refused by the gate")
    return 0


def cmd_merge(args) -> int:
    g, book = _book(args)
    with g:
        moved = book.merge(args.into, args.other)
    if args.json:
        print_json({"into": args.into, "from": args.other, "faces": moved})
    else:
        _say(f"cluster {args.other} merged into {args.into}: {moved} faces moved")
    return 0


def cmd_remove(args) -> int:
    g, book = _book(args)
    with g:
        left = book.remove(args.face)
    if args.json:
        print_json({"face": args.face, "left": left})
    elif left is None:
        _say(f"face {args.face} was in no cluster")
    else:
        _say(f"face {args.face} left cluster {left}; it will not be put back with those faces")
    return 0
