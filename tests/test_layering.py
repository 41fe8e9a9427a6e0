"""The library stands on its own: no module under src/vultus except the front ends imports them."""

from __future__ import annotations

import ast
from pathlib import Path

import vultus

ROOT = Path(vultus.__file__).parent
FRONT_ENDS = ("cli", "service")


def _imports(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:  # relative: resolve against the package
            names.append("vultus.<relative>." + (node.module or ""))
    return names


def test_no_library_module_imports_the_cli_or_the_service():
    library = [p for p in sorted(ROOT.rglob("*.py"))
               if p.relative_to(ROOT).parts[0] not in FRONT_ENDS and p.name != "__main__.py"]
    assert len(library) > 40  # the walk found the library
    offenders = {}
    for path in library:
        names = _imports(ast.parse(path.read_text(), str(path)))
        bad = [n for n in names if any(n == f"vultus.{f}" or n.startswith(f"vultus.{f}.") for f in FRONT_ENDS)
               or (n.startswith("vultus.<relative>") and any(f in n for f in FRONT_ENDS))]
        if bad:
            offenders[str(path.relative_to(ROOT))] = bad
    assert offenders == {}


def test_the_vultus_logger_is_silent_unless_configured():
    import logging

    handlers = logging.getLogger("vultus").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


def test_importing_every_library_module_loads_no_front_end():
    import subprocess
    import sys

    modules = []
    for p in sorted(ROOT.rglob("*.py")):
        rel = p.relative_to(ROOT)
        if rel.parts[0] in FRONT_ENDS or p.name == "__main__.py":
            continue
        parts = ("vultus", *rel.with_suffix("").parts)
        modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[:2] in (['vultus', 'cli'], ['vultus', 'service']))\n"
            "print(','.join(bad))")
    src = str(ROOT.parent)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                       env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ""


def test_index_rebuilds_and_gate_refusals_are_logged(tmp_path, engine, caplog):
    import logging

    from PIL import Image

    from conftest import need_data
    from vultus.gallery import Gallery

    blank = tmp_path / "blank.png"
    Image.new("RGB", (300, 300), (120, 120, 120)).save(blank)
    good = need_data("face_recognition", "tests", "test_images", "obama.jpg")
    with caplog.at_level(logging.INFO, logger="vultus"), Gallery(tmp_path / "g.db") as g:
        g.enroll_image(good, "obama", engine=engine, workers=0)
        g.enroll_image(blank, "nobody", engine=engine, workers=0)
    messages = [(r.name, r.getMessage()) for r in caplog.records]
    assert any(n == "vultus.gallery.indexes" and "rebuilding the index of collection 'default'" in m
               for n, m in messages), messages
    assert any(n == "vultus.gallery.api" and "refused" in m and "blank.png" in m for n, m in messages), messages
