"""Test-wide environment: nothing a test runs may write to the user's cache or time networks unasked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The first-use check of a measured table times networks and caches its result: tests that want it turn it
    on with their own cache directory (tests/test_latency_load.py)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        mp.setenv("NAS_MACHINE_CHECK", "off")
        yield
