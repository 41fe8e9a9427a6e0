"""Errors of bulk jobs; VultusErrors with a code and data.

Codes: ray_missing (the `vultus[ray]` extra is not installed), ray_unreachable
(no Ray cluster at the address), bad_source (not a folder, CSV or Parquet list
of images), bad_parquet (a Parquet list without the columns it needs, or an
output folder holding something else), gallery_unreachable (a gallery file that
the cluster's workers cannot open).
"""

from vultus.errors import VultusError


class BulkError(VultusError):
    """A bulk job cannot start: its source, its output or its Ray cluster is wrong."""

    code = "bulk_error"
