"""Bulk jobs on a Ray cluster (or a local Ray): enroll, embed, analyze.

Optional: `pip install 'vultus[ray]'` (Ray Data and pyarrow). Ray is imported
only inside this package, when a job starts. See docs/scale.md.
"""

from vultus.bulk.errors import BulkError
from vultus.bulk.jobs import BulkEnrollReport, BulkOutputReport, bulk_analyze, bulk_embed, bulk_enroll
from vultus.bulk.runtime import ray_session
from vultus.bulk.sources import BulkSource, read_source

__all__ = ["BulkEnrollReport", "BulkError", "BulkOutputReport", "BulkSource", "bulk_analyze", "bulk_embed",
           "bulk_enroll", "ray_session", "read_source"]
