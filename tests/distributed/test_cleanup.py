"""cleanup() ends the process group: its threads stop before cleanup returns (a group whose
threads outlive it can abort the process at exit, see crossrank.distributed.context), and it
warns when something else still holds the group. In this process, on a one-rank gloo group;
the two-rank runs of test_ddp.py and test_shard_encoding.py check the same after training."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.distributed as dist
from launch import group_threads

from crossrank.distributed import broadcast_module, cleanup


@pytest.fixture
def one_rank_group():
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        broadcast_module(torch.nn.Linear(3, 2))  # a collective on gloo's worker threads
        assert group_threads() != [], "the group's threads are not recognised"
        yield
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_cleanup_stops_the_group_threads(one_rank_group):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cleanup()
    assert not dist.is_initialized()
    assert not group_threads()


def test_cleanup_warns_when_the_group_outlives_it(one_rank_group):
    held = [dist.group.WORLD]  # as a live DistributedDataParallel module holds it
    with pytest.warns(RuntimeWarning, match="still referenced"):
        cleanup()
    assert not dist.is_initialized()
    if group_threads() is not None:
        assert group_threads()  # alive as long as the group is
    held.clear()  # the last reference: the group ends and joins its threads
    assert not group_threads()


def test_cleanup_without_a_group_does_nothing():
    assert not dist.is_initialized()
    cleanup()
