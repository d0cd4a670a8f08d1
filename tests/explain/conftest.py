"""Explainer tests run on one thread: their tensors are tiny, and on 2 shared cores OpenMP
threads waiting on each other cost more than they save."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
