"""Reading the LFW View 2 protocol files."""

from __future__ import annotations

from collections import Counter

import pytest

from conftest import need_data
from vultus.errors import VultusError
from vultus.evaluate.lfw import read_lfw_pairs


def test_read_real_lfw_pairs():
    root = need_data("lfw")
    pairs = read_lfw_pairs(root)
    assert len(pairs) == 6000
    assert Counter(p.fold for p in pairs) == {k: 600 for k in range(10)}
    assert Counter((p.fold, p.same) for p in pairs)[(3, True)] == 300
    first = pairs[0]
    assert first.same and first.fold == 0
    assert first.path_a.name == "Abel_Pacheco_0001.jpg" and first.path_b.name == "Abel_Pacheco_0004.jpg"
    assert not pairs[300].same and pairs[300].path_a.parent.name != pairs[300].path_b.parent.name


def _write(tmp_path, text):
    (tmp_path / "pairs.txt").write_text(text)
    return tmp_path


def test_malformed_pairs_files(tmp_path):
    with pytest.raises(VultusError, match="no such file"):
        read_lfw_pairs(tmp_path)
    with pytest.raises(VultusError, match="header"):
        read_lfw_pairs(_write(tmp_path, "ten 1\nA 1 2\nA 1 B 1\n"))
    with pytest.raises(VultusError, match="promises"):
        read_lfw_pairs(_write(tmp_path, "1 2\nA 1 2\nA 1 B 1\n"))
    with pytest.raises(VultusError, match=r"pairs.txt:3: expected a mismatched pair"):
        read_lfw_pairs(_write(tmp_path, "1 1\nA 1 2\nA 1 2\n"))
    with pytest.raises(VultusError, match="missing"):
        read_lfw_pairs(_write(tmp_path, "1 1\nA 1 2\nA 1 B 1\n"))
    pairs = read_lfw_pairs(_write(tmp_path, "1 1\nA 1 2\nA 1 B 1\n"), check_images=False)
    assert [p.same for p in pairs] == [True, False]
    assert pairs[1].path_b == tmp_path / "images" / "B" / "B_0001.jpg"
