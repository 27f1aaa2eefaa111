import importlib.util
import os

import pytest
from hypothesis import HealthCheck, settings

from tinyvae.backend import use_backend

settings.register_profile(
    "default", deadline=None, max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# On CI, draw the same examples every run so that a red build is reproducible.
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")

HAVE_NUMBA = importlib.util.find_spec("numba") is not None


@pytest.fixture(
    params=["numpy", pytest.param("numba", marks=pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed"))]
)
def backend(request):
    """Run the test once per kernel backend."""
    with use_backend(request.param):
        yield request.param
