import pytest

from shared import outage


@pytest.fixture(autouse=True)
def _no_outage_carried_over():
    """An outage is remembered per process; each test starts with none in progress."""
    outage.reset()
    yield
    outage.reset()
