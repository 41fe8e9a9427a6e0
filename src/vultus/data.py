"""Where the shared test and benchmark data lives.

The research data is never part of the package or its git; it is read from
$VULTUS_DATA, else ../shared/data next to the checkout or working directory.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_root() -> Path | None:
    env = os.environ.get("VULTUS_DATA")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    candidates = [Path.cwd() / "../shared/data", Path.cwd() / "shared/data"]
    candidates += [p / "../shared/data" for p in here.parents]
    for c in candidates:
        if (c / "README.md").is_file():
            return c.resolve()
    return None
