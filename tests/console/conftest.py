"""The console tests' helpline: down (503) until a test brings it back."""

from __future__ import annotations

import pytest

from tests.support.receiver import Receiver

from .support import Switch


@pytest.fixture
def switch():
    return Switch()


@pytest.fixture
def helpline(switch):
    """A helpline answering 503 until ``switch.down`` is False."""
    peer = Receiver(switch)
    yield peer
    peer.stop()
