"""The test suite's own set-up, as conftest.py makes it."""

from __future__ import annotations

import os

import pytest
from conftest import THREADS_SET_BY_USER


@pytest.mark.skipif(
    "PYTEST_XDIST_WORKER_COUNT" not in os.environ, reason="only under pytest-xdist (-n)"
)
def test_each_xdist_worker_runs_torch_on_its_share_of_the_cores() -> None:
    import torch

    if THREADS_SET_BY_USER:
        pytest.skip("OMP_NUM_THREADS was set before the session: the user's choice stands")
    workers = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    share = max(1, (os.cpu_count() or 1) // workers)
    assert os.environ["OMP_NUM_THREADS"] == str(share)
    # torch read the variable when it started: nothing imported it before conftest.py set it
    assert torch.get_num_threads() == share
