"""Cloak faces in photos so that face recognisers stop matching them to the person (Fawkes, LowKey, CLIP2Protect).

For every face vultus's detector finds, a small perturbation confined to the face (an ellipse with a feathered
edge) is searched by projected gradient steps that push the face's embedding away from its own identity and
toward a distant decoy identity, against an ensemble of the shipped embedders (sface and dlib-resnet by default).
The decoys are by default vultus's synthetic identities (privacy.decoys: nobody's face, made by
train/cloak_decoys.py), or the user's own decoy photos; each face is pulled toward the decoy farthest from it.
The networks run in PyTorch as converted from the very ONNX graphs vultus runs (privacy.torch_onnx), and the
crops are cut in torch at the points vultus's own alignment samples (privacy.cloak_torch), so the gradient is
that of the real pipeline. During the search every step sees a random transform of the face (a downscale round
trip, a differentiable JPEG round trip, a small shift, scale and rotation of each crop), so the cloak survives
re-encoding, resizing and re-detection.

The budget is perceptual, one per strength: an L-infinity limit in pixels, and an SSIM floor inside the face
(the search is pulled back by a penalty as SSIM nears the floor and shrunk whenever a step crosses it; the
written image is checked again and shrunk until it holds).

What it protects against, and what not: bench/results/cloak.md measures it, docs/privacy.md says it plainly.
Recognisers that were not in the search, and models trained on cloaked photos, can undo it (Radiya-Dixit et
al., ICLR 2022).

Needs PyTorch (`pip install 'vultus[privacy]'`); torch is imported only when a face is cloaked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vultus.errors import InvalidArgumentError, MissingDependencyError, VultusError
from vultus.types import Box, Face


@dataclass(frozen=True, slots=True)
class Strength:
    epsilon: float  # L-infinity limit, in 0-255 pixel values
    ssim_floor: float  # SSIM inside the face never drops below this
    steps: int  # projected gradient steps at most


STRENGTHS = {
    "low": Strength(epsilon=4.0, ssim_floor=0.98, steps=30),
    "medium": Strength(epsilon=8.0, ssim_floor=0.95, steps=40),
    "high": Strength(epsilon=12.0, ssim_floor=0.92, steps=60),
}
SEARCH_EMBEDDERS = ("sface", "dlib-resnet")
#: Every embedder's similarity to its own clean face is pushed below its threshold at this false-match rate
#: (the search stops early once a clean view, a JPEG quality 75 and a half-size view of every embedder are there).
TARGET_FMR = 0.1
DECOY_KINDS = ("synthetic", "none")
#: While pulled toward its decoy, each embedder's similarity to the face's own clean embedding is held this far
#: below its target by a hinge of this weight (set before the development run, not tuned).
DECOY_MARGIN = 0.05
DECOY_HINGE = 4.0


@dataclass(frozen=True, slots=True)
class CloakOptions:
    """strength: low | medium | high (STRENGTHS); epsilon, ssim_floor and steps override the strength's.
    embedders: the networks the search attacks (sface, dlib-resnet). decoy: "synthetic" pulls each face toward
    the farthest of vultus's synthetic decoy identities, "none" only pushes it away from itself (decoy photos
    given to cloak() replace the synthetic ones); decoy_steps: how many steps toward the decoy follow once the
    face is away from itself (each kept only while it stays away). mirror_sface: also attack
    sface-flip's mirror view (fused uses it). eot: random transforms during the search. seed: the search's random
    numbers, so a photo always gets the same cloak. threads: torch and onnxruntime threads (default 1)."""

    strength: str = "medium"
    embedders: tuple[str, ...] = SEARCH_EMBEDDERS
    epsilon: float | None = None
    ssim_floor: float | None = None
    steps: int | None = None
    step_size: float | None = None  # the optimiser's learning rate, in pixel values (default epsilon / 8)
    decoy: str = "synthetic"  # synthetic: the shipped decoy identities; none: only push away (decoys= replaces them)
    decoy_steps: int = 10  # steps toward the decoy after the push away has reached its target
    ssim_weight: float = 20.0
    mirror_sface: bool = False
    eot: bool = True
    seed: int = 0
    threads: int | None = None
    detector: str = "yunet"

    def __post_init__(self):
        if self.strength not in STRENGTHS:
            raise InvalidArgumentError(f"strength must be one of {', '.join(STRENGTHS)} (got {self.strength!r})",
                                       value=self.strength)
        bad = [e for e in self.embedders if e not in SEARCH_EMBEDDERS]
        if bad or not self.embedders:
            raise InvalidArgumentError(f"the search can attack {' and '.join(SEARCH_EMBEDDERS)} (got "
                                       f"{', '.join(self.embedders) or 'none'})", value=",".join(self.embedders))
        if self.decoy not in DECOY_KINDS:
            raise InvalidArgumentError(f"decoy must be one of {', '.join(DECOY_KINDS)} (got {self.decoy!r})",
                                       value=self.decoy)
        if self.epsilon is not None and not 0 < self.epsilon <= 64:
            raise InvalidArgumentError(f"epsilon must be in (0, 64] pixel values (got {self.epsilon})",
                                       value=self.epsilon)
        if self.ssim_floor is not None and not 0 < self.ssim_floor < 1:
            raise InvalidArgumentError(f"ssim floor must be between 0 and 1 (got {self.ssim_floor})",
                                       value=self.ssim_floor)
        if self.decoy_steps < 0:
            raise InvalidArgumentError(f"decoy steps must be at least 0 (got {self.decoy_steps})",
                                       value=self.decoy_steps)
        if self.steps is not None and self.steps < 0:
            raise InvalidArgumentError(f"steps must be at least 0 (got {self.steps})", value=self.steps)

    @property
    def budget(self) -> Strength:
        s = STRENGTHS[self.strength]
        return Strength(epsilon=s.epsilon if self.epsilon is None else float(self.epsilon),
                        ssim_floor=s.ssim_floor if self.ssim_floor is None else float(self.ssim_floor),
                        steps=s.steps if self.steps is None else int(self.steps))


@dataclass(frozen=True, slots=True)
class FaceCloak:
    """One cloaked face. similarity: per embedder of the search, the cosine similarity between the cloaked and
    the clean face as the search's own (torch) pipeline sees them, at the clean landmarks (1.0 = unchanged).
    psnr, ssim, mean_abs_change: inside the face's ellipse, of the written pixels (0-255 scale)."""

    box: Box
    similarity: dict[str, float]
    psnr: float
    ssim: float
    mean_abs_change: float
    max_abs_change: int
    steps: int
    seconds: float
    decoy: int | None = None  # index of the decoy aimed at (in the shipped set, or in the decoys given)
    # per embedder, the cosine similarity of the cloaked face to that decoy (None without a decoy)
    decoy_similarity: dict[str, float] | None = None
    decoy_steps: int = 0  # steps toward the decoy that were kept (0: the face could not be pulled and stay away)

    def to_dict(self) -> dict:
        return {"box": [round(v, 1) for v in self.box.as_tuple()],
                "similarity": {k: round(v, 4) for k, v in self.similarity.items()},
                "psnr": round(self.psnr, 2), "ssim": round(self.ssim, 4),
                "mean_abs_change": round(self.mean_abs_change, 3), "max_abs_change": self.max_abs_change,
                "steps": self.steps, "seconds": round(self.seconds, 3), "decoy": self.decoy,
                "decoy_similarity": None if self.decoy_similarity is None else
                {k: round(v, 4) for k, v in self.decoy_similarity.items()}, "decoy_steps": self.decoy_steps}


@dataclass(frozen=True, slots=True)
class Cloaked:
    """The cloaked copy of one image (RGB uint8, same size) and what was done to each face."""

    rgb: np.ndarray
    faces: tuple[FaceCloak, ...]
    warnings: tuple[str, ...] = ()
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class CloakResult:
    """One input file of cloak_paths: where its cloaked copy went, or the error it met."""

    source: str
    output: str | None
    faces: tuple[FaceCloak, ...] = ()
    warnings: tuple[str, ...] = ()
    seconds: float = 0.0
    error: str | None = None
    error_code: str | None = None

    def to_dict(self) -> dict:
        return {"source": self.source, "output": self.output, "faces": [f.to_dict() for f in self.faces],
                "warnings": list(self.warnings), "seconds": round(self.seconds, 3),
                "seconds_per_face": round(self.seconds / len(self.faces), 3) if self.faces else None,
                "error": self.error, "error_code": self.error_code}


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError(
            "cloaking needs PyTorch, which is not installed: pip install 'vultus[privacy]' (the CPU wheel is enough)",
            package="torch", extra="privacy") from exc
    return torch


# -- geometry and masks ------------------------------------------------------------------
def face_mask(shape: tuple[int, int], face: Face, margin: float = 0.12, feather: float = 0.08) -> np.ndarray:
    """Float mask in [0, 1] of the face region: the ellipse inscribed in the face box grown by `margin` on each
    side, its edge blurred over `feather` of the face's size, so the cloak fades out instead of ending at a line."""
    import cv2

    from vultus.privacy.anonymize import cover_mask, grow

    h, w = shape
    grown = grow(face.box, margin, w, h)
    mask = cover_mask(h, w, [grown], "ellipse").astype(np.float32) / 255.0
    sigma = max(1.0, feather * max(face.box.width, face.box.height))
    mask = cv2.GaussianBlur(mask, (0, 0), sigma)
    # the blur pulls the ellipse's inside below 1 near its edge; keep the face itself fully covered
    inner = cover_mask(h, w, [grow(face.box, max(0.0, margin - 2 * feather), w, h)], "ellipse") > 0
    mask[inner] = np.maximum(mask[inner], 1.0)
    return np.clip(mask, 0.0, 1.0)


def _roi(shape: tuple[int, int], maps: Sequence[np.ndarray], sizes: Sequence[int], mask: np.ndarray
         ) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the region every crop samples and the mask covers, grown a little, with x0 and y0 on
    the image's 16 px grid (so the search's JPEG blocks sit where an encoder's would) and a size of whole blocks
    where the image allows."""
    h, w = shape
    pts = []
    for m, s in zip(maps, sizes, strict=True):
        corners = np.array([[0, 0, 1], [s - 1, 0, 1], [0, s - 1, 1], [s - 1, s - 1, 1]], np.float64)
        pts.append(corners @ np.asarray(m).T)
    ys, xs = np.nonzero(mask > 0)
    if len(xs):
        pts.append(np.array([[xs.min(), ys.min()], [xs.max(), ys.max()]], np.float64))
    pts = np.concatenate(pts)
    span = float(max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1]), 1.0))
    x0, y0 = pts.min(axis=0) - 0.08 * span
    x1, y1 = pts.max(axis=0) + 0.08 * span
    x0, y0 = max(0, int(x0) // 16 * 16), max(0, int(y0) // 16 * 16)
    x1 = min(w, x0 + int(np.ceil((x1 - x0) / 16)) * 16)
    y1 = min(h, y0 + int(np.ceil((y1 - y0) / 16)) * 16)
    return x0, y0, int(x1), int(y1)


# -- the search ----------------------------------------------------------------------------------
def _decoy_vectors(decoys, options: CloakOptions) -> list[dict[str, np.ndarray]]:
    """Per decoy face, its unit vector per embedder of the search (the largest face of each decoy image)."""
    from vultus.imageio import load_image
    from vultus.models.cache import get_model

    if not decoys:
        return []
    detector = get_model(options.detector, task="detect", threads=options.threads)
    out = []
    for d in decoys:
        rgb = load_image(d)
        faces = detector.detect([rgb])[0]
        if not faces:
            from vultus.errors import NoFaceError

            raise NoFaceError(f"{d if isinstance(d, str | Path) else '<decoy>'}: no face found in the decoy image",
                              file=str(d) if isinstance(d, str | Path) else None)
        face = max(faces, key=lambda f: f.box.width * f.box.height)
        out.append({name: get_model(name, task="embed", threads=options.threads).embed([(rgb, face)])[0]
                    for name in options.embedders})
    return out


def _cloak_face(work: np.ndarray, clean: np.ndarray, face: Face, options: CloakOptions,
                decoys: list[dict[str, np.ndarray]], rng: np.random.Generator) -> tuple[np.ndarray, FaceCloak]:
    """Search one face's cloak on `work` (float32 HxWx3, may already hold other faces' cloaks) and return the
    new work image and the face's report. `clean` is the untouched image, for the quality figures."""
    torch = _torch()
    import torch.nn.functional as F

    from vultus.models.calibration import operating_point
    from vultus.privacy import cloak_torch as ct

    names = list(options.embedders)
    for n in names:  # built once per process; not part of any face's time
        ct.network(n)
    t0 = time.perf_counter()
    budget = options.budget
    h, w = clean.shape[:2]
    full_maps = {"sface": ct.sface_crop_to_image(face.landmarks),
                 "sface_mirror": ct.sface_mirror_to_image(face.landmarks, w),
                 "dlib": ct.dlib_chip_to_image(np.ascontiguousarray(clean), face.landmarks)}
    mask_full = face_mask((h, w), face)
    x0, y0, x1, y1 = _roi((h, w), [full_maps["sface"], full_maps["sface_mirror"], full_maps["dlib"]],
                          [112, 112, 150], mask_full)
    shift = np.array([[1, 0, -x0], [0, 1, -y0]], np.float64)  # image -> ROI pixels
    geometry = ct.FaceGeometry(sface=ct.compose(shift, full_maps["sface"]),
                               sface_mirror=ct.compose(shift, full_maps["sface_mirror"]),
                               dlib=ct.compose(shift, full_maps["dlib"]))

    def tensor(a):
        return torch.from_numpy(np.ascontiguousarray(a[y0:y1, x0:x1].transpose(2, 0, 1), dtype=np.float32))[None]

    base = tensor(work)  # what this face's search starts from
    original = tensor(clean.astype(np.float32))
    mask = torch.from_numpy(np.ascontiguousarray(mask_full[y0:y1, x0:x1]))[None, None]
    inside = mask[0, 0] > 0.5
    targets = {n: operating_point(n, TARGET_FMR).threshold for n in names}

    with torch.no_grad():
        own = ct.embed(original, geometry, names, mirror_sface=options.mirror_sface)
    chosen = None
    decoy_t = {}
    if decoys:
        # the decoy farthest from this face, summed over the search's embedders
        far = [sum(float(np.dot(own[n].numpy(), d[n])) for n in names) for d in decoys]
        chosen = int(np.argmin(far))
        decoy_t = {n: torch.from_numpy(np.asarray(decoys[chosen][n], np.float32)) for n in names}

    eps = budget.epsilon
    low, high = (original - eps).clamp(0, 255), (original + eps).clamp(0, 255)

    def bounded(x):
        """Pixels in range and within epsilon of the clean image, also where another face's cloak overlaps."""
        # torch.clamp, not maximum/minimum: those split the gradient in half at ties, and after each projection
        # many pixels sit exactly on the bound
        return torch.clamp(x, low, high)

    def ssim_inside(x):
        return ct.ssim_map(x, original)[inside].mean()

    def push_loss(vectors):
        """Away from the face's own identity (each cosine put on sface's scale: dlib's range is narrow)."""
        return sum((torch.dot(vectors[n], own[n]) - targets[n]) / (1.0 - targets[n]) for n in names)

    def pull_loss(vectors):
        """Toward the decoy, while a hinge keeps each own similarity DECOY_MARGIN below its target."""
        loss = 0.0
        for n in names:
            spread = 1.0 - targets[n]
            loss = loss - (torch.dot(vectors[n], decoy_t[n]) - targets[n]) / spread
            loss = loss + DECOY_HINGE * F.relu(torch.dot(vectors[n], own[n]) - targets[n] + DECOY_MARGIN) / spread
        return loss

    def reached(x) -> bool:
        """Every embedder below its target on the clean view, a JPEG quality 75 round trip and a half-size one."""
        with torch.no_grad():
            for view in (x, ct.jpeg_like(x, 75).clamp(0, 255), ct.resize_round_trip(x, 0.5)):
                v = ct.embed(view, geometry, names, mirror_sface=options.mirror_sface)
                if any(float(torch.dot(v[n], own[n])) >= targets[n] for n in names):
                    return False
        return True

    delta = torch.zeros_like(base, requires_grad=True)
    lr = options.step_size or budget.epsilon / 8
    opt = torch.optim.Adam([delta], lr=lr)

    def step_once(objective):
        x = bounded(base + mask * delta)
        view = ct.random_view(x, rng) if options.eot else x
        jitters = None
        if options.eot:
            jitters = {"sface": ct.jitter_map(112, rng, shift=0.02, scale=0.03, degrees=3.0),
                       "dlib-resnet": ct.jitter_map(150, rng, shift=0.02, scale=0.03, degrees=3.0)}
        vectors = ct.embed(view, geometry, names, jitters=jitters, mirror_sface=options.mirror_sface)
        ssim = ssim_inside(x)
        # pulled back as SSIM nears its floor: the penalty starts a little above it
        loss = objective(vectors) + options.ssim_weight * F.relu(budget.ssim_floor + 0.01 - ssim)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            delta.clamp_(-budget.epsilon, budget.epsilon)
            for _ in range(20):  # a step that crossed the SSIM floor is shrunk back under it
                if float(ssim_inside(bounded(base + mask * delta))) >= budget.ssim_floor:
                    break
                delta.mul_(0.9)

    # 1. away from the face's own identity, until every embedder is below its target on the check views
    steps = 0
    away = False
    for step in range(budget.steps):
        step_once(push_loss)
        steps = step + 1
        if step % 5 == 4 and step + 1 >= budget.steps // 3 and reached(bounded(base + mask * delta)):
            away = True
            break
    # 2. then toward the decoy, for a few more steps that must keep the face away from itself: a pull mixed
    # into the first phase cost protection (bench/results/cloak-decoys.md), so it only spends what is left
    # over, and its result is kept only where the target still holds on every check view
    pulled = 0
    if decoy_t and options.decoy_steps and (away or reached(bounded(base + mask * delta))):
        kept = delta.detach().clone()
        for k in range(options.decoy_steps):
            step_once(pull_loss)
            steps += 1
            if (k % 5 == 4 or k == options.decoy_steps - 1) and reached(bounded(base + mask * delta)):
                kept, pulled = delta.detach().clone(), k + 1
        with torch.no_grad():
            delta.copy_(kept)

    with torch.no_grad():
        out_roi = bounded(base + mask * delta).round()
        for _ in range(30):  # the written (rounded) pixels must hold the floor too
            if float(ssim_inside(out_roi)) >= budget.ssim_floor:
                break
            delta.mul_(0.9)
            out_roi = bounded(base + mask * delta).round()
        final = ct.embed(out_roi, geometry, names, mirror_sface=options.mirror_sface)
        similarity = {n: float(torch.dot(final[n], own[n])) for n in names}
        to_decoy = {n: float(torch.dot(final[n], decoy_t[n])) for n in names} if decoy_t else None
    out = work.copy()
    out[y0:y1, x0:x1] = out_roi[0].permute(1, 2, 0).numpy()
    report = _quality(clean, out, mask_full)
    return out, FaceCloak(box=face.box, similarity=similarity, steps=steps, seconds=time.perf_counter() - t0,
                          decoy=chosen, decoy_similarity=to_decoy, decoy_steps=pulled, **report)


def _quality(clean: np.ndarray, cloaked: np.ndarray, mask: np.ndarray) -> dict:
    """PSNR, SSIM, mean and max absolute change inside the face's ellipse (mask > 0.5)."""
    torch = _torch()
    from vultus.privacy import cloak_torch as ct

    inside = mask > 0.5
    ys, xs = np.nonzero(inside)
    if not len(xs):
        return {"psnr": float("inf"), "ssim": 1.0, "mean_abs_change": 0.0, "max_abs_change": 0}
    pad = 8
    y0, y1 = max(0, ys.min() - pad), min(clean.shape[0], ys.max() + pad + 1)
    x0, x1 = max(0, xs.min() - pad), min(clean.shape[1], xs.max() + pad + 1)
    a = clean[y0:y1, x0:x1].astype(np.float32)
    b = np.round(cloaked[y0:y1, x0:x1]).astype(np.float32)
    m = inside[y0:y1, x0:x1]
    diff = np.abs(a - b)[m]
    mse = float((diff ** 2).mean())
    with torch.no_grad():
        s = ct.ssim_map(torch.from_numpy(a.transpose(2, 0, 1).copy())[None],
                        torch.from_numpy(b.transpose(2, 0, 1).copy())[None])
    return {"psnr": float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse)),
            "ssim": float(s.numpy()[m].mean()), "mean_abs_change": float(diff.mean()),
            "max_abs_change": int(diff.max())}


def _set_threads(threads: int | None) -> None:
    torch = _torch()
    torch.set_num_threads(max(1, int(threads or 1)))


def decoy_vectors(decoys: Sequence, options: CloakOptions | None = None) -> list[dict[str, np.ndarray]]:
    """The decoys' embeddings, for cloaking many images toward the same decoys: pass the result as `decoys`."""
    return _decoy_vectors(decoys, options or CloakOptions())


def cloak(image, options: CloakOptions | None = None, *, decoys: Sequence | None = None,
          faces: Sequence[Face] | None = None, progress: Callable[[int], None] | None = None) -> Cloaked:
    """Cloak every face of one image (a path, bytes, PIL image or RGB array; decoded as vultus.imageio does).

    decoys: images of other faces (one face each; the largest is taken), or what decoy_vectors returned for
        them: once each face of `image` is away from itself, it is pulled toward the decoy farthest from it.
        Without them, options.decoy says what it is pulled toward: vultus's synthetic decoy identities
        ("synthetic", the default) or nothing ("none": the search only pushes away).
    faces: the faces to cloak (default: every face the detector finds).
    progress: called with 1 after each face.

    An image with no face comes back unchanged, with a warning saying so."""
    from vultus.imageio import load_image
    from vultus.models.cache import get_model

    options = options or CloakOptions()
    t0 = time.perf_counter()
    rgb = load_image(image)
    if faces is None:
        faces = get_model(options.detector, task="detect", threads=options.threads).detect([rgb])[0]
    if not faces:
        return Cloaked(rgb=rgb, faces=(), warnings=("no face found: the image is returned unchanged",),
                       seconds=time.perf_counter() - t0)
    _torch()
    _set_threads(options.threads)
    if decoys:
        vectors = list(decoys) if all(isinstance(d, dict) for d in decoys) else _decoy_vectors(decoys, options)
    elif options.decoy == "synthetic":
        from vultus.privacy.decoys import shipped_decoys

        vectors = shipped_decoys(options.embedders)
    else:
        vectors = []
    rng = np.random.default_rng(options.seed)
    work = rgb.astype(np.float32)
    reports = []
    warnings = []
    for face in faces:
        if min(face.box.width, face.box.height) < 20:
            warnings.append(f"face at {face.box.as_tuple()} is under 20 px: too small to cloak, left unchanged")
            continue
        work, report = _cloak_face(work, rgb, face, options, vectors, rng)
        reports.append(report)
        if progress:
            progress(1)
    out = np.clip(np.round(work), 0, 255).astype(np.uint8)
    return Cloaked(rgb=out, faces=tuple(reports), warnings=tuple(warnings), seconds=time.perf_counter() - t0)


# -- files -------------------------------------------------------------------------------------
def save_like(rgb: np.ndarray, out: Path, source: Path) -> None:
    """Write `rgb` to `out` in the source's format, with its colour (ICC) profile, its transparency (alpha) and
    none of its other metadata (EXIF, GPS, XMP, comments); a grey source is written grey. The pixels are written
    upright (EXIF orientation is applied when reading), so dropping the orientation tag keeps the picture as it
    was shown. JPEG at quality 95 with the source's chroma
    subsampling where Pillow can tell it."""
    from PIL import Image, ImageOps

    with Image.open(source) as src:
        fmt = src.format
        mode = src.mode
        icc = src.info.get("icc_profile")
        alpha = None
        if "A" in src.getbands() or "transparency" in src.info:
            alpha = ImageOps.exif_transpose(src).convert("RGBA").getchannel("A")
        subsampling = None
        if fmt == "JPEG":
            from PIL import JpegImagePlugin

            try:
                subsampling = JpegImagePlugin.get_sampling(src)
            except Exception:  # noqa: BLE001 - an odd JPEG: let Pillow choose
                subsampling = None
    img = Image.fromarray(rgb)
    if mode in ("L", "I;16", "I"):
        img = img.convert("L")  # a grey photo stays grey
    elif alpha is not None and alpha.size == img.size:
        img.putalpha(alpha)  # transparency is kept as it was
    kwargs: dict = {}
    if icc:
        kwargs["icc_profile"] = icc
    if fmt == "JPEG":
        kwargs["quality"] = 95
        if subsampling is not None and subsampling >= 0:
            kwargs["subsampling"] = subsampling
    elif fmt == "WEBP":
        kwargs["quality"] = 95
    img.save(out, format=fmt or None, **kwargs)


def cloak_paths(inputs: Iterable[str | Path], out_dir: str | Path, options: CloakOptions | None = None, *,
                decoys: Sequence | None = None, progress: Callable[[int], None] | None = None
                ) -> list[CloakResult]:
    """Cloak images into out_dir (same file names, same formats). One bad input is reported in its result and does
    not stop the others; an image without a face is written unchanged (metadata stripped) with a warning."""
    from vultus.errors import OutputError
    from vultus.imageio import image_suffixes, load_image
    from vultus.outputs import make_output_dir

    options = options or CloakOptions()
    out_dir = make_output_dir(out_dir)
    paths: list[Path] = []
    wanted = image_suffixes()
    for p in map(Path, inputs):
        if p.is_dir():
            paths.extend(sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in wanted))
        else:
            paths.append(p)
    # a bad decoy (unreadable, no face) fails the whole call before any work
    decoy_set = _decoy_vectors(decoys, options) if decoys else None
    results = []
    used: set[str] = set()
    for src in paths:
        name = src.name
        if name in used:
            name = f"{src.stem}-{len(used)}{src.suffix}"
        used.add(name)
        out = out_dir / name
        try:
            if out.resolve() == src.resolve():
                results.append(CloakResult(str(src), None, error=f"{src}: the output would overwrite the input",
                                           error_code="output_is_input"))
                continue
            done = cloak(load_image(src), options, decoys=decoy_set, progress=progress)
            try:
                save_like(done.rgb, out, src)
            except OSError as exc:
                raise OutputError(f"{out}: cannot write ({exc.strerror or exc})", file=str(out)) from exc
            results.append(CloakResult(str(src), str(out), faces=done.faces, warnings=done.warnings,
                                       seconds=done.seconds))
        except VultusError as exc:
            results.append(CloakResult(str(src), None, error=str(exc), error_code=exc.code))
    return results


__all__ = ["STRENGTHS", "CloakOptions", "CloakResult", "Cloaked", "FaceCloak", "cloak", "cloak_paths",
           "decoy_vectors", "save_like"]
