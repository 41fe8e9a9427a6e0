"""How a collection's decision settings change: one set of statements for every SQL backend.

`update_decision` of a store runs these inside its own write transaction, with its
driver's parameter marker ("?" for sqlite3, "%s" for psycopg), and audits the detail
returned.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from vultus.gallery.types import OwnCalibration, ThresholdOverride


def apply_decision_update(execute: Callable, mark: str, collection_id: int, *, target_fmr: float | None = None,
                          override: ThresholdOverride | None = None, clear_override: bool = False,
                          aggregation: str | None = None, target_fpir: float | None = None,
                          own_calibration: OwnCalibration | None = None,
                          clear_own_calibration: bool = False) -> dict:
    """Run the UPDATEs for the changes asked for; returns the audit detail."""
    m = mark
    detail: dict = {}
    if target_fmr is not None:  # deciding by a per-comparison rate ends deciding by FPIR
        execute(f"UPDATE collections SET target_fmr = {m}, target_fpir = NULL WHERE id = {m}",
                (target_fmr, collection_id))
        detail["target_fmr"] = target_fmr
    if target_fpir is not None:
        execute(f"UPDATE collections SET target_fpir = {m} WHERE id = {m}", (target_fpir, collection_id))
        detail["target_fpir"] = target_fpir
    if clear_override:
        execute("UPDATE collections SET threshold = NULL, threshold_fmr = NULL, threshold_source = NULL "
                f"WHERE id = {m}", (collection_id,))
        detail["threshold_override"] = None
    if override is not None:
        execute(f"UPDATE collections SET threshold = {m}, threshold_fmr = {m}, threshold_source = {m} "
                f"WHERE id = {m}", (override.threshold, override.fmr, override.source, collection_id))
        detail["threshold_override"] = {"threshold": override.threshold, "fmr": override.fmr,
                                        "source": override.source}
    if aggregation is not None:
        execute(f"UPDATE collections SET aggregation = {m} WHERE id = {m}", (aggregation, collection_id))
        detail["aggregation"] = aggregation
    if clear_own_calibration:
        execute(f"UPDATE collections SET own_calibration = NULL WHERE id = {m}", (collection_id,))
        detail["own_calibration"] = None
    if own_calibration is not None:
        execute(f"UPDATE collections SET own_calibration = {m} WHERE id = {m}",
                (json.dumps(own_calibration.to_dict()), collection_id))
        detail["own_calibration"] = {"pairs": own_calibration.pairs, "people": own_calibration.people,
                                     "rungs": len(own_calibration.points)}
    return detail
