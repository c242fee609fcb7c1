"""Fixtures shared by the test packages."""

from __future__ import annotations

import pytest


@pytest.fixture
def one_thread():
    """One torch thread for the test (CPU-time samples are kept only then); restored after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
