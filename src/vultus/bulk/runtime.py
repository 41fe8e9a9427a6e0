"""Ray, imported here only (it is an optional extra: `pip install 'vultus[ray]'`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from vultus.bulk.errors import BulkError


def ray_modules():
    """(ray, ray.data), or BulkError ray_missing."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise BulkError("bulk jobs need Ray Data, which is not installed (pip install 'vultus[ray]')",
                        code="ray_missing") from exc
    return ray, ray.data


@contextlib.contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None,
                temp_dir: str | os.PathLike | None = None) -> Iterator[object]:
    """A connection to Ray for one job. With `address` ("auto", "HOST:6379", or
    "ray://HOST:10001" for a Ray client), the running cluster there; without, a
    local Ray started for this job with `num_cpus` CPUs (default: all), shut down
    after it. A Ray already initialised by the caller (a notebook, a test) is
    used as it is and left running."""
    ray, _ = ray_modules()
    if ray.is_initialized():
        yield ray
        return
    common = {"include_dashboard": False, "log_to_driver": False}
    try:
        if address:
            ray.init(address=address, **common)
        else:
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1,
                     _temp_dir=None if temp_dir is None else os.fspath(temp_dir), **common)
    except (OSError, TimeoutError, RuntimeError, ValueError) as exc:  # ConnectionError is an OSError
        where = f"at {address}" if address else "on this machine"
        raise BulkError(f"could not start or reach Ray {where}: {exc}", code="ray_unreachable",
                        address=address or "") from exc
    try:
        yield ray
    finally:
        ray.shutdown()


def client_mode(ray) -> bool:
    """True when this process is a Ray client (ray://): the job's driver side then
    runs on the cluster's head node, not here."""
    try:
        return bool(ray.util.client.ray.is_connected())
    except Exception:  # older or newer Ray without this probe: assume a normal driver
        return False


def cluster_cpus(ray) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))
