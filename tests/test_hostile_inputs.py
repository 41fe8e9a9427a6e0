"""Hostile and careless input files: FIFOs, devices, folders and symbolic links
named like images, decompression bombs, huge files, CSVs that point elsewhere.

Nothing may hang or eat memory: whatever could block runs in a subprocess with a
timeout (or with a writer that unblocks it later), whatever could eat memory runs
in a subprocess with a memory limit, so a regression fails instead of stalling.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import need_data
from vultus.errors import ImageError
from vultus.gallery.errors import GalleryError

SRC = Path(__file__).resolve().parents[1] / "src"
FR = ("face_recognition", "tests", "test_images")
KNN = ("face_recognition", "examples", "knn_examples")


def _env(**extra) -> dict:
    return os.environ | {"PYTHONPATH": str(SRC), "VULTUS_THREADS": "1"} | extra


def vultus(*argv, timeout: float = 120, **env) -> subprocess.CompletedProcess:
    """Run the CLI of this tree in a subprocess; a hang fails the test by its timeout."""
    try:
        return subprocess.run([sys.executable, "-m", "vultus", *map(str, argv)], capture_output=True, text=True,
                              timeout=timeout, env=_env(**env), check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`vultus {' '.join(map(str, argv))}` still running after {timeout} s (a hang)")


def python(code: str, *, timeout: float = 60, memory_gb: float = 3.0) -> subprocess.CompletedProcess:
    """Run `code` in a child Python limited to `memory_gb` of address space."""
    def limit():
        cap = int(memory_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    try:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                              env=_env(), preexec_fn=limit, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {timeout} s (a hang)")


def unblock_fifo_later(path: Path, seconds: float = 5.0, rounds: int = 12) -> threading.Thread:
    """Every `seconds`, if a reader is stuck in open() on the FIFO, open and close
    its write end so the reader gets end-of-file and the test goes on (and fails)
    instead of hanging. Never blocks itself (O_NONBLOCK)."""
    def run():
        for _ in range(rounds):
            time.sleep(seconds)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno in (errno.ENXIO, errno.ENOENT):  # no reader waiting: nothing hung
                    continue
                raise
            os.close(fd)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def obama() -> Path:
    return need_data(*FR, "obama.jpg")


# -- the library: only regular files are read ------------------------------------
def test_fifo_is_refused_by_its_type_without_blocking(tmp_path):
    from vultus.imageio import load_image

    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    unblock_fifo_later(fifo)
    t0 = time.monotonic()
    with pytest.raises(ImageError) as err:
        load_image(fifo)
    assert time.monotonic() - t0 < 2, "the open waited for a writer"
    assert err.value.code == "not_a_regular_file" and "is a FIFO" in str(err.value)
    assert err.value.data == {"file": str(fifo), "kind": "a FIFO (named pipe)"}


def test_character_device_is_refused_without_reading_it():
    # On a regression this would read /dev/zero until memory runs out: the child is capped at 3 GB.
    r = python("from vultus.imageio import load_image\n"
               "from vultus.errors import ImageError\n"
               "try:\n    load_image('/dev/zero')\n"
               "except ImageError as e:\n    print(e.code, '|', e)\n")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "not_a_regular_file | /dev/zero: is a character device, not an image file"


def test_folder_symlink_loop_broken_link_and_empty_file(tmp_path):
    from vultus.imageio import load_image

    cases = {}
    (tmp_path / "dir.jpg").mkdir()
    cases["dir.jpg"] = ("not_a_regular_file", "is a folder")
    os.symlink("loop.jpg", tmp_path / "loop.jpg")
    cases["loop.jpg"] = ("not_a_regular_file", "symbolic link loop")
    os.symlink("gone.jpg", tmp_path / "broken.jpg")
    cases["broken.jpg"] = ("file_not_found", "broken symbolic link")
    (tmp_path / "empty.jpg").write_bytes(b"")
    cases["empty.jpg"] = ("empty_file", "empty file")
    cases["missing.jpg"] = ("file_not_found", "no such file")
    for name, (code, words) in cases.items():
        with pytest.raises(ImageError) as err:
            load_image(tmp_path / name)
        assert (err.value.code, err.value.data["file"]) == (code, str(tmp_path / name)), name
        assert words in str(err.value), name


def test_file_size_cap_is_checked_before_reading(tmp_path, monkeypatch):
    from vultus.imageio import load_image

    path = obama()
    size = path.stat().st_size
    with pytest.raises(ImageError) as err:
        load_image(path, max_bytes=size - 1)
    assert err.value.code == "file_too_large"
    assert (err.value.data["size"], err.value.data["limit"]) == (size, size - 1)
    assert load_image(path, max_bytes=size).shape == (1137, 910, 3)
    monkeypatch.setenv("VULTUS_MAX_FILE_BYTES", str(size - 1))
    with pytest.raises(ImageError, match="file too large"):
        load_image(path)
    # An upload stream is read no further than the cap allows.
    data = path.read_bytes()

    class Stream:
        asked: list[int] = []

        def read(self, n=-1):
            self.asked.append(n)
            return data if n < 0 else data[:n]

    stream = Stream()
    with pytest.raises(ImageError) as err:
        load_image(stream, max_bytes=1000)
    assert err.value.code == "file_too_large" and stream.asked == [1001]


def test_postscript_is_never_handed_to_ghostscript(tmp_path):
    from vultus.imageio import load_image

    eps = tmp_path / "x.jpg"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    with pytest.raises(ImageError) as err:
        load_image(eps)
    assert err.value.code == "not_an_image"


# -- the pixel limit -----------------------------------------------------------------
def test_88_megapixel_png_is_refused_from_its_header(tmp_path):
    """An 88 MP PNG of ~85 KB cost about 1 GB to decode under Pillow's 89.5 MP
    warning. The child reports its own peak memory after the refusal."""
    bomb = tmp_path / "bomb.png"
    Image.new("L", (9380, 9380)).save(bomb)
    assert bomb.stat().st_size < 300_000
    r = python("import json\n"
               "from vultus.imageio import load_image\n"
               "from vultus.errors import ImageError\n"
               "out = {}\n"
               f"try:\n    load_image({str(bomb)!r})\n"
               "except ImageError as e:\n    out = {'code': e.code, 'data': e.data}\n"
               # VmHWM is this program's own peak: ru_maxrss would include the parent's size
               # at fork time (Linux carries it across exec), which is large once models loaded.
               "out['peak_kb'] = int(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))\n"
               "print(json.dumps(out))\n")
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out.get("code") == "image_too_large"
    assert out["data"]["pixels"] == 9380 * 9380 and out["data"]["limit"] < 9380 * 9380
    assert out["peak_kb"] < 250_000, f"peak {out['peak_kb'] / 1024:.0f} MB: the image was decoded"


def test_pixel_limit_is_one_setting_overridable_per_call_and_by_environment(tmp_path, monkeypatch):
    from vultus import imageio

    p = tmp_path / "wide.png"
    Image.new("L", (4000, 3000)).save(p)  # 12 MP
    assert imageio.pixel_limit() == imageio.MAX_PIXELS < 89_478_485  # below Pillow's own warning
    assert imageio.load_image(p).shape == (3000, 4000, 3)
    with pytest.raises(ImageError) as err:
        imageio.load_image(p, max_pixels=10_000_000)
    assert err.value.code == "image_too_large" and err.value.data["limit"] == 10_000_000
    monkeypatch.setenv("VULTUS_MAX_PIXELS", "10000000")
    with pytest.raises(ImageError, match="the limit is 10,000,000"):
        imageio.load_image(p)
    assert imageio.load_image(p, max_pixels=12_000_000).shape == (3000, 4000, 3)  # the keyword wins
    monkeypatch.setattr(imageio, "MAX_PIXELS", 1_000)
    monkeypatch.delenv("VULTUS_MAX_PIXELS")
    with pytest.raises(ImageError, match="the limit is 1,000"):
        imageio.load_image(p)
    # Pillow's decompression-bomb warning does not outrank vultus's limit.
    monkeypatch.setattr(imageio, "MAX_PIXELS", 100_000_000)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000_000)
    assert imageio.load_image(p).shape == (3000, 4000, 3)


@pytest.mark.slow
def test_large_jpeg_is_decoded_reduced_for_detection(tmp_path, engine):
    from vultus.imageio import decode_image, load_image

    big = tmp_path / "big.jpg"
    Image.open(obama()).resize((4550, 5685)).save(big, quality=90)  # 26 MP
    small = decode_image(big, max_side=1280)
    assert (small.width, small.height) == (4550, 5685)
    assert small.pixels.shape == (1422, 1138, 3) and small.scale == pytest.approx(0.25, abs=1e-3)
    # A JPEG over the pixel limit still decodes when asked at a reduced size: the limit is on decoded pixels.
    with pytest.raises(ImageError):
        load_image(big, max_pixels=20_000_000)
    assert decode_image(big, max_side=1280, max_pixels=20_000_000).pixels.shape == (1422, 1138, 3)
    # Engine.detect decodes files that way, and gives the faces in the full image's coordinates.
    from_file = engine.detect(big)
    from_full = engine.detect(load_image(big))
    assert len(from_file) == len(from_full) == 1
    assert np.allclose(from_file[0].box.as_tuple(), from_full[0].box.as_tuple(), atol=12)
    assert np.allclose(from_file[0].landmarks, from_full[0].landmarks, atol=12)


# -- folders ---------------------------------------------------------------------------
def hostile_folder(root: Path) -> Path:
    """A folder of per-person folders holding every kind of entry a careless or
    hostile user leaves: a PGM (readable), a FIFO, a folder named like an image,
    a symbolic link loop, a link back up the tree, a text file."""
    people = need_data(*KNN, "train")
    for person in ("obama", "biden"):
        (root / person).mkdir(parents=True)
    (root / "obama" / "obama.jpg").write_bytes((people / "obama" / "obama.jpg").read_bytes())
    Image.open(people / "biden" / "biden.jpg").convert("L").save(root / "biden" / "biden.pgm")
    os.mkfifo(root / "obama" / "pipe.jpg")
    (root / "obama" / "album.jpg").mkdir()
    os.symlink("loop.png", root / "biden" / "loop.png")
    os.symlink("..", root / "biden" / "up")
    (root / "biden" / "notes.txt").write_text("who is who")
    return root


def test_scan_images_reads_every_pillow_suffix_and_says_what_it_skipped(tmp_path):
    from vultus.imageio import list_images

    root = hostile_folder(tmp_path / "people")
    assert list_images(root) == [root / "biden" / "biden.pgm", root / "obama" / "obama.jpg"]
    from vultus.imageio import scan_images

    scan = scan_images(root)
    assert scan.images == list_images(root)
    skipped = {e.path.name: (e.code, e.named_like_image, e.reason) for e in scan.skipped}
    assert skipped.keys() == {"pipe.jpg", "album.jpg", "loop.png", "up", "notes.txt"}
    assert skipped["pipe.jpg"][:2] == ("not_a_regular_file", True) and "FIFO" in skipped["pipe.jpg"][2]
    assert skipped["album.jpg"][:2] == ("not_a_regular_file", True) and "folder" in skipped["album.jpg"][2]
    assert skipped["loop.png"][:2] == ("not_a_regular_file", True) and "loop" in skipped["loop.png"][2]
    assert skipped["up"][0] == "not_a_regular_file" and "loop" in skipped["up"][2]
    assert skipped["notes.txt"][:2] == ("not_an_image_name", False)


def test_detect_on_a_fifo_names_it_and_a_folder_of_pgm_works(tmp_path):
    fifo = tmp_path / "x.jpg"
    os.mkfifo(fifo)
    r = vultus("detect", fifo, timeout=60)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == f"vultus: error: {fifo}: is a FIFO (named pipe), not an image file or a folder"
    pgm = tmp_path / "grey" / "obama.pgm"
    pgm.parent.mkdir()
    Image.open(obama()).convert("L").save(pgm)
    (pgm.parent / "readme.txt").write_text("x")
    r = vultus("detect", pgm.parent, "--json", timeout=60)
    assert r.returncode == 0, r.stderr
    assert [(Path(x["image"]).name, len(x["faces"])) for x in json.loads(r.stdout)] == [("obama.pgm", 1)]
    assert r.stderr.strip() == f"vultus: skipped: {pgm.parent / 'readme.txt'}: not a file type Pillow reads ('.txt')"


@pytest.mark.slow
def test_verify_with_a_fifo_or_dev_zero_is_one_line(tmp_path):
    fifo = tmp_path / "a.jpg"
    os.mkfifo(fifo)
    for bad, kind in ((fifo, "is a FIFO"), ("/dev/zero", "is a character device")):
        r = vultus("verify", bad, obama(), timeout=60)
        assert r.returncode == 2 and r.stdout == "", r.stderr
        assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"vultus: error: {bad}: {kind}")


# -- gallery enroll --------------------------------------------------------------------
@pytest.mark.slow
def test_enroll_folder_reports_what_it_skipped_and_exits_2(tmp_path):
    root = hostile_folder(tmp_path / "people")
    db = tmp_path / "g.db"
    r = vultus("gallery", "enroll", root, "--gallery", db, "--workers", "0")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert all(line.startswith("vultus: ") for line in lines), lines
    for name in ("obama/pipe.jpg", "obama/album.jpg", "biden/loop.png", "biden/up", "biden/notes.txt"):
        assert any(line.startswith(f"vultus: skipped: {root / name}: ") for line in lines), (name, lines)
    assert "2 faces enrolled" in r.stdout and "5 skipped" in r.stdout  # the PGM is enrolled too
    again = vultus("gallery", "enroll", root, "--gallery", db, "--workers", "0", "--json")
    report = json.loads(again.stdout)
    assert report["duplicates"] == 2
    assert {Path(e["path"]).name: e["code"] for e in report["skipped"]} == {
        "pipe.jpg": "not_a_regular_file", "album.jpg": "not_a_regular_file", "loop.png": "not_a_regular_file",
        "up": "not_a_regular_file", "notes.txt": "not_an_image_name"}


@pytest.mark.slow
def test_enroll_csv_rows_naming_a_fifo_or_dev_zero_do_not_hang(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    good = tmp_path / "obama.jpg"
    good.write_bytes(obama().read_bytes())
    sheet = tmp_path / "people.csv"
    sheet.write_text("path,person\npipe.jpg,Pipe\n/dev/zero,Zero\nobama.jpg,Obama\n")
    r = vultus("gallery", "enroll", sheet, "--gallery", tmp_path / "g.db", "--allow-outside", "--workers", "0",
               "--json")
    assert r.returncode == 2, r.stderr
    report = json.loads(r.stdout)
    assert report["enrolled"] == 1 and report["errors"] == 2
    reasons = {Path(i["path"]).name: i["reason"] for i in report["images"]}
    assert reasons["pipe.jpg"] == "is a FIFO (named pipe), not an image file"
    assert reasons["zero"] == "is a character device, not an image file"
    # One enrolled image with --person on a FIFO: one line, nothing read.
    r = vultus("gallery", "enroll", fifo, "--person", "x", "--gallery", tmp_path / "g.db", timeout=60)
    assert r.returncode == 2 and r.stderr.strip() == f"vultus: error: {fifo}: is a FIFO (named pipe), not an image file"


def test_enroll_library_refuses_a_fifo_item_or_csv_without_reading(tmp_path):
    from vultus.gallery import csv_items
    from vultus.gallery.inference import sha256_file

    fifo = tmp_path / "pipe.jpg"
    sheet = tmp_path / "people.csv"
    for path, read in ((fifo, sha256_file), (sheet, csv_items)):
        os.mkfifo(path)
        unblock_fifo_later(path)
        with pytest.raises(ImageError) as err:
            read(path)
        assert err.value.code == "not_a_regular_file", path
    # A regression would hash /dev/zero forever at 100% CPU: in a child with a timeout.
    r = python("from vultus.gallery.inference import sha256_file\n"
               "from vultus.errors import ImageError\n"
               "try:\n    sha256_file('/dev/zero')\n"
               "except ImageError as e:\n    print(e.code)\n", timeout=30)
    assert r.stdout.strip() == "not_a_regular_file", r.stderr[-2000:]


def test_csv_errors_name_the_file_line(tmp_path):
    from vultus.gallery import csv_items

    (tmp_path / "a.jpg").write_bytes(b"x")
    sheet = tmp_path / "people.csv"
    sheet.write_text("path,person\n\n# enrolled 2026-11-29\na.jpg,Ann\n\n\"b\n.jpg\",Bob\nc.jpg\n")
    with pytest.raises(GalleryError) as err:
        csv_items(sheet)
    assert f"{sheet}, line 8: expected `path,person`" in str(err.value)
    assert err.value.data["line"] == 8
    sheet.write_text("# who is who\n\npath,person\na.jpg, Ann \n")
    assert [(i.path, i.person) for i in csv_items(sheet)] == [(tmp_path / "a.jpg", "Ann")]


def test_csv_paths_outside_its_folder_are_refused_unless_allowed(tmp_path):
    from vultus.gallery import csv_items

    inside = tmp_path / "sheet"
    (inside / "sub").mkdir(parents=True)
    (inside / "sub" / "a.jpg").write_bytes(b"x")
    (tmp_path / "secret.jpg").write_bytes(b"x")
    os.symlink(tmp_path / "secret.jpg", inside / "link.jpg")
    sheet = inside / "people.csv"
    for row, line in ((f"{tmp_path / 'secret.jpg'},Eve", 3), ("../secret.jpg,Eve", 3), ("link.jpg,Eve", 3),
                      ("/etc/passwd,Eve", 3)):
        sheet.write_text(f"path,person\nsub/a.jpg,Ann\n{row}\n")
        with pytest.raises(GalleryError) as err:
            csv_items(sheet)
        assert err.value.code == "path_outside" and err.value.data["line"] == line, row
        assert "--" not in str(err.value)  # the library names no flag; the CLI adds its hint
        from vultus.gallery.api import scan_enroll_csv

        assert len(scan_enroll_csv(sheet, allow_outside=True).items) == 2
    sheet.write_text(f"path,person\nsub/a.jpg,Ann\n{inside / 'sub' / 'a.jpg'},Ann\n")
    assert [i.path for i in csv_items(sheet)] == [inside / "sub" / "a.jpg"] * 2


def test_evaluation_skips_a_fifo_or_device_in_its_image_list(tmp_path, engine):
    from vultus.evaluate.embeddings import embed_images

    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    unblock_fifo_later(fifo)
    done = embed_images(engine, [fifo, obama()], use_cache=False, workers=0)
    assert done.errors == {fifo: "is a FIFO (named pipe), not an image file"}
    assert np.isfinite(done.vectors[1]).all()
