"""The LFW View 2 protocol: pairs.txt read into typed pairs with their fold.

pairs.txt starts with a line "<folds> <pairs per class>" (10 300), then for each fold that many matched
pairs ("Name n1 n2") followed by as many mismatched pairs ("NameA n1 NameB n2"). Image n of a person is
images/<Name>/<Name>_<nnnn>.jpg under the LFW root.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vultus.errors import VultusError


@dataclass(frozen=True)
class Pair:
    path_a: Path
    path_b: Path
    same: bool
    fold: int


def lfw_image(root: Path, name: str, number: int) -> Path:
    return Path(root) / "images" / name / f"{name}_{number:04d}.jpg"


def read_lfw_pairs(root: Path, *, filename: str = "pairs.txt", check_images: bool = True) -> list[Pair]:
    """All pairs of an LFW pairs file, in file order, each tagged with its fold (0-based).

    Raises VultusError naming the file and line when the file is missing or malformed, and naming the
    first missing images when `check_images` finds some absent."""
    root = Path(root)
    path = root / filename
    if not path.is_file():
        raise VultusError(f"{path}: no such file; expected the LFW root holding {filename} and images/")
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    if not lines:
        raise VultusError(f"{path}: empty file")
    header = lines[0].split()
    try:
        if len(header) == 1:  # pairsDevTrain/DevTest: one set of "<n>" matched then n mismatched
            n_folds, per_class = 1, int(header[0])
        elif len(header) == 2:
            n_folds, per_class = int(header[0]), int(header[1])
        else:
            raise ValueError
    except ValueError:
        raise VultusError(f"{path}:1: expected a header '<folds> <pairs per class>', got {lines[0]!r}") from None
    expected = n_folds * 2 * per_class
    if len(lines) - 1 != expected:
        raise VultusError(f"{path}: header promises {n_folds} folds x {2 * per_class} pairs = {expected} pairs, "
                          f"found {len(lines) - 1}")
    pairs: list[Pair] = []
    for i, line in enumerate(lines[1:]):
        fold, within = divmod(i, 2 * per_class)
        same = within < per_class
        parts = line.split()
        try:
            if same:
                if len(parts) != 3:
                    raise ValueError
                name, a, b = parts
                pa, pb = lfw_image(root, name, int(a)), lfw_image(root, name, int(b))
            else:
                if len(parts) != 4:
                    raise ValueError
                name_a, a, name_b, b = parts
                pa, pb = lfw_image(root, name_a, int(a)), lfw_image(root, name_b, int(b))
        except ValueError:
            kind = "'Name n1 n2'" if same else "'NameA n1 NameB n2'"
            raise VultusError(f"{path}:{i + 2}: expected a {'matched' if same else 'mismatched'} pair {kind}, "
                              f"got {line!r}") from None
        pairs.append(Pair(pa, pb, same, fold))
    if check_images:
        missing = sorted({str(p) for pair in pairs for p in (pair.path_a, pair.path_b) if not p.is_file()})
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise VultusError(f"{len(missing)} images named in {path} are missing: {', '.join(missing[:3])}{more}")
    return pairs
