"""Redacting a forgotten person from the audit log: one rule for every backend.

A store reads the collection's audit records (id, action, detail JSON) inside the
forget transaction, calls redact_person, and writes back the records it returns,
in the same transaction.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable

# How an audit record refers to a person: (name key, id key). forget rewrites
# the records of a forgotten person; a new kind of record that names a person
# must use these keys so that it is redacted too.
AUDIT_PERSON_KEYS = (("person", "person_id"), ("from", "from_id"), ("into", "into_id"), ("to", "to_id"))
REDACTED = "[forgotten]"


def redact_person(rows: Iterable[tuple[int, str, str]], person_id: int, name: str) -> tuple[str, list[tuple[int, str]]]:
    """The opaque token (random, so it cannot be turned back into the name or the id) that
    replaces the person, and the (record id, new detail JSON) of every record that changes.

    A record refers to a person through an id key (person_id, from_id, into_id, to_id) and
    the name key beside it (person, from, into, to; a rename's from and to). People merged
    into the person are the same person: their ids and names go too, as do the person's
    former names. A name recorded without its id is redacted by value. Counts, times and
    actors stay."""
    token = f"forgotten-{secrets.token_hex(8)}"
    records = []
    for rid, action, text in rows:
        try:
            detail = json.loads(text)
        except ValueError:
            continue
        if isinstance(detail, dict):
            records.append((rid, action, detail))
    ids, names = {person_id}, {name}
    grown = True
    while grown:  # people merged into the person (and into those), transitively
        grown = False
        for _, action, d in records:
            if action == "merge" and d.get("into_id") in ids and d.get("from_id") not in ids:
                ids.add(d["from_id"])
                grown = True
    for _, action, d in records:
        if action == "rename" and d.get("person_id") in ids:
            names.update(v for v in (d.get("from"), d.get("to")) if isinstance(v, str))
        if action == "merge":
            for id_key, name_key in (("from_id", "from"), ("into_id", "into")):
                if d.get(id_key) in ids and isinstance(d.get(name_key), str):
                    names.add(d[name_key])
    changed = []
    for rid, action, d in records:
        new = dict(d)
        for name_key, id_key in AUDIT_PERSON_KEYS:
            if id_key in new and new[id_key] in ids:
                new[id_key] = token
                if name_key in new:
                    new[name_key] = REDACTED
        if action == "rename" and new.get("person_id") == token:
            new.update({k: REDACTED for k in ("from", "to") if k in new})
        if action != "rename":  # a rename's names belong to its person_id, decided above
            for key, value in d.items():
                if isinstance(value, str) and value in names and f"{key}_id" not in d:
                    new[key] = REDACTED
        if new != d:
            changed.append((rid, json.dumps(new, sort_keys=True)))
    return token, changed
