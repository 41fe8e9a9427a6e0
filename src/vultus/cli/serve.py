"""`vultus serve` (the REST service and web UI) and `vultus keys` (its API keys)."""

from __future__ import annotations

import os
import sys

from vultus.cli.common import add_json_option, print_json, print_table
from vultus.errors import VultusError


def _service_settings(args, **changes):
    from vultus.service.settings import Settings

    base = Settings.from_env()
    given = {k: v for k, v in {
        "gallery": getattr(args, "gallery", None), "keys": getattr(args, "keys", None),
    }.items() if v is not None}
    from dataclasses import replace

    return replace(base, **given, **changes)


def add_commands(sub) -> None:
    p = sub.add_parser("serve", help="run the REST service and web UI (FastAPI + uvicorn)",
                       description="Serve the API under /v1, its docs at /docs and the web UI at /. Every limit "
                                   "can also be set as VULTUS_SERVICE_<NAME> (see docs/service.md).")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--gallery", metavar="PATH|URL", help="gallery file or postgresql://user@host:port/db URL "
                                                       "(default: $VULTUS_GALLERY or the user data dir)")
    p.add_argument("--keys", metavar="PATH", help="API key store (default: <gallery>.keys beside a gallery file; "
                                                  "for a database gallery, a file in the user data dir)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="worker processes; each loads the models once and shares them across its requests")
    p.add_argument("--no-auth", action="store_true", help="no API keys (refused unless --host is a loopback address)")
    p.add_argument("--threads", type=int, metavar="N", help="inference threads per worker (default 2)")
    p.add_argument("--queue", type=int, metavar="N", help="requests waiting per worker before 429 (default 32)")
    p.add_argument("--model-threads", type=int, metavar="N",
                   help="onnxruntime threads per model (default: the cores divided among the inference threads)")
    p.add_argument("--max-image-mb", type=float, metavar="MB", help="largest upload per image (default 10)")
    p.add_argument("--max-request-mb", type=float, metavar="MB", help="largest request body (default 64)")
    p.add_argument("--max-megapixels", type=float, metavar="MP", help="largest decoded image (default 40)")
    p.add_argument("--max-images", type=int, metavar="N", help="images per request (default 16)")
    p.add_argument("--max-request-megapixels", type=float, metavar="MP",
                   help="decoded pixels of all images of one request together (default 200)")
    p.add_argument("--max-faces", type=int, metavar="N", help="faces per image (default 64)")
    p.add_argument("--timeout", type=float, metavar="S", help="request timeout in seconds (default 60)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=cmd_serve)

    k = sub.add_parser("keys", help="API keys of the service: create, list, revoke")
    ksub = k.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    for name, helptext in (("create", "create a key (printed once; only its hash is kept)"),
                           ("list", "every key: id, name, role, collections, revoked"),
                           ("revoke", "revoke a key (it stops working at once)")):
        kp = ksub.add_parser(name, help=helptext)
        kp.add_argument("--gallery", metavar="PATH", help="the gallery the service serves")
        kp.add_argument("--keys", metavar="PATH", help="key store (default: <gallery>.keys)")
        add_json_option(kp)
        if name == "create":
            kp.add_argument("--role", required=True, choices=["identify", "manage", "admin"],
                            help="identify: detect/verify/analyze/identify; manage: also enroll, rename, merge, "
                                 "move, delete, forget; admin: also collections and keys")
            kp.add_argument("--collection", action="append", metavar="NAME",
                            help="limit the key to this collection (repeat for several; default: all)")
            kp.add_argument("--name", default="", metavar="LABEL", help="a label for the key (shown in the audit log)")
            kp.set_defaults(func=cmd_keys_create)
        elif name == "list":
            kp.set_defaults(func=cmd_keys_list)
        else:
            kp.add_argument("key_id", metavar="ID", help="the key's id (vultus keys list)")
            kp.set_defaults(func=cmd_keys_revoke)


def _audit_key_change(settings, action: str, detail: dict) -> None:
    """Key changes made from the shell are audited like the service's, by OS user."""
    from vultus.gallery import Gallery

    with Gallery(settings.gallery_path) as g:
        g.store.audit(action, "", detail)


def cmd_keys_create(args) -> int:
    from vultus.service.keys import KeyStore

    settings = _service_settings(args)
    token, info = KeyStore(settings.keys_path).create(args.role, args.collection, args.name)
    _audit_key_change(settings, "key_create", {"key_id": info.id, "role": info.role,
                                               "collections": info.collections and list(info.collections)})
    if args.json:
        print_json({"key": token, "info": info.to_dict()})
    else:
        scope = ", ".join(info.collections) if info.collections else "all collections"
        print(f"key {info.id} ({info.role}, {scope}) in {settings.keys_path}:")
        print(token)
        print("It is shown once; the store keeps only its hash. Send it as `Authorization: Bearer <key>`.",
              file=sys.stderr)
    return 0


def cmd_keys_list(args) -> int:
    from vultus.service.keys import KeyStore
    from vultus.textsafe import safe_text

    settings = _service_settings(args)
    keys = KeyStore(settings.keys_path).list()
    if args.json:
        print_json([k.to_dict() for k in keys])
    else:
        print_table(["id", "name", "role", "collections", "created", "revoked"],
                    [(k.id, safe_text(k.name), k.role,
                      safe_text(", ".join(k.collections)) if k.collections else "all",
                      k.created_at, k.revoked_at or "") for k in keys])
    return 0


def cmd_keys_revoke(args) -> int:
    from vultus.service.keys import KeyStore

    settings = _service_settings(args)
    info = KeyStore(settings.keys_path).revoke(args.key_id)
    _audit_key_change(settings, "key_revoke", {"key_id": info.id})
    if args.json:
        print_json(info.to_dict())
    else:
        print(f"key {info.id} revoked at {info.revoked_at}")
    return 0


def cmd_serve(args) -> int:
    try:
        import uvicorn
    except ImportError as exc:
        raise VultusError("the service needs its extra: pip install 'vultus[service]'",
                          code="missing_dependency") from exc
    mib = 1 << 20
    changes = {"host": args.host, "port": args.port, "auth": not args.no_auth}
    for flag, field, scale in (("threads", "inference_threads", None), ("queue", "queue_size", None),
                               ("max_image_mb", "max_image_bytes", mib), ("max_request_mb", "max_request_bytes", mib),
                               ("max_megapixels", "max_pixels", 1_000_000), ("max_images", "max_images", None),
                               ("max_request_megapixels", "max_request_pixels", 1_000_000),
                               ("max_faces", "max_faces", None), ("timeout", "request_timeout", None),
                               ("model_threads", "model_threads", None)):
        value = getattr(args, flag)
        if value is not None:
            changes[field] = int(value * scale) if scale else value
    settings = _service_settings(args, **changes)
    if args.workers < 1:
        raise VultusError(f"--workers must be at least 1 (got {args.workers})", code="invalid_argument")
    if settings.auth and not settings.keys_path.exists():
        print(f"vultus: no API keys yet in {settings.keys_path}; create one with: vultus keys create --role admin",
              file=sys.stderr)
    os.environ.update(settings.to_env())  # what each worker process reads (Settings.from_env)
    where = f"http://{'[' + args.host + ']' if ':' in args.host else args.host}:{args.port}"
    from vultus.gallery.api import is_url
    from vultus.gallery.storage.postgres import public_location

    shown = public_location(settings.gallery_path) if is_url(settings.gallery_path) else settings.gallery_path
    print(f"vultus: serving {shown} at {where} (API {where}/v1, docs {where}/docs, UI {where}/)",
          file=sys.stderr)
    uvicorn.run("vultus.service.app:app_from_env", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level=args.log_level, timeout_graceful_shutdown=30,
                limit_concurrency=max(64, 4 * (settings.inference_threads + settings.queue_size)),
                proxy_headers=True, server_header=False)
    return 0
