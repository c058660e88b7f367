from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    # These models are tiny: extra intra-op threads only add synchronisation, and on a busy
    # 2-core machine spinning threads make a 2 s test take 20 s.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
