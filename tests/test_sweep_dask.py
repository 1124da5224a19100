"""A sweep on a Dask LocalCluster (two worker processes) equals the same sweep run locally, bit for
bit (issue 16 item 2)."""

from __future__ import annotations

import numpy as np
import pytest
from dask.distributed import Client, LocalCluster

from moa.sweep import run_sweep
from sweep_helpers import same, tiny_spec


@pytest.fixture(scope="module")
def client():
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as c,
    ):
        yield c


def test_local_cluster_equals_local_run(client, tmp_path):
    spec = tiny_spec()
    local = run_sweep(spec)
    seen = []
    distributed = run_sweep(spec, tmp_path, executor="dask", client=client, progress=lambda d, t, f: seen.append(d))
    assert same(distributed, local)
    assert seen[-1] == 16 and distributed.attrs["executor"] == "dask"
    assert len(set(client.run(lambda: __import__("os").getpid()).values())) == 2  # two processes took part
    assert np.all(distributed["status"].values == 0)
