"""Errors are data: a code, a message for people, and the facts behind it."""

from __future__ import annotations

import pickle

from vultus.cli.errors import error_line, exit_status
from vultus.errors import ImageError, ManyFacesError, VultusError
from vultus.gallery.errors import GalleryError, NotFoundError
from vultus.textsafe import has_control, safe_text


def test_error_carries_code_and_data():
    e = ImageError("x.jpg: no such file", code="file_not_found", file="x.jpg")
    assert e.code == "file_not_found"
    assert e.to_dict() == {"code": "file_not_found", "message": "x.jpg: no such file", "details": {"file": "x.jpg"}}
    assert str(e) == "x.jpg: no such file"
    assert ImageError("y").code == "bad_image"
    assert NotFoundError("no person").code == "not_found"
    assert isinstance(NotFoundError("n"), GalleryError)


def test_error_survives_pickling_with_code_and_data():
    e = pickle.loads(pickle.dumps(ManyFacesError("a.jpg: 3 faces", file="a.jpg", faces=3)))
    assert type(e) is ManyFacesError and e.code == "many_faces" and e.data == {"file": "a.jpg", "faces": 3}


def test_library_message_has_no_flag_and_cli_adds_the_hint():
    e = ManyFacesError("a.jpg: 3 faces found where one was expected", faces=3)
    assert "--" not in str(e)
    assert error_line(e).endswith("(use --largest to take the biggest)")
    assert exit_status(e) == 2 and exit_status(VultusError("x")) == 2


def test_control_characters_are_shown_escaped():
    name = "Eve\x1b]0;pwned\x07\nforged row\u202e"
    assert has_control(name)
    shown = safe_text(name)
    assert not has_control(shown)
    assert "\\x1b" in shown and "\\x0a" in shown and "\\u202e" in shown
    assert safe_text("Zoë Ångström 李") == "Zoë Ångström 李"
    assert "\x1b" not in error_line(VultusError(name))


def test_cli_hint_is_filled_from_the_error_data_and_dropped_when_data_is_missing():
    from vultus.errors import ModelMismatchError

    e = ModelMismatchError("built with sface", collection="team", collection_embedder="sface",
                           requested_embedder="dlib-resnet")
    assert "--" not in str(e)
    assert "vultus gallery reembed --collection team --embedder dlib-resnet" in error_line(e)
    assert "{" not in error_line(ModelMismatchError("no data"))
