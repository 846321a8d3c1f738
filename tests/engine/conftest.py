"""The 2-worker loopback LocalCluster the engine tests share (started once, closed at the end)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="package")
def cluster() -> Iterator[str]:
    """A 2-worker LocalCluster on loopback, no dashboard, started and closed here."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},  # HTTP endpoints: loopback only
        processes=True,
        silence_logs=40,
    ) as lc:
        yield lc.scheduler_address
