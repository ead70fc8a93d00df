"""Accounts for the OpenCHS-compatible chat API: a name and password, like the seed's."""

from __future__ import annotations

import pytest

from adapter.auth import hash_password, hash_secret, new_key
from adapter.extensions import db
from adapter.models import ApiClient

SEED_USERNAME = "child@openchs.com"  # the seed's own example credentials
SEED_PASSWORD = "0p3nCh1ld"


def make_account(app, name: str = SEED_USERNAME, password: str = SEED_PASSWORD,
                 role: str = "chatbot", sites: list[str] | None = None,
                 read_text: bool = False) -> None:
    with app.app_context():
        db.session.add(ApiClient(name=name, role=role, sites=sites,
                                 key_hash=hash_secret(new_key()),
                                 password_hash=hash_password(password),
                                 can_read_text=read_text))
        db.session.commit()


def login(client, username: str = SEED_USERNAME, password: str = SEED_PASSWORD,
          **kwargs) -> dict:
    """``Authorization`` headers carrying a fresh token for the account."""
    response = client.post("/api/token/", json={"username": username, "password": password},
                           **kwargs)
    assert response.status_code == 200, response.json
    return {"Authorization": f"Token {response.json['token']}"}


@pytest.fixture
def weni(app, client) -> dict:
    """The seed's Weni account, serving the loopback site ``lb`` only."""
    make_account(app, sites=["lb"])
    return login(client)


@pytest.fixture
def counsellors(app, client) -> dict:
    """A helpline account for ``lb``."""
    make_account(app, name="helpline-lb", password="helpline-pass", role="helpline",
                 sites=["lb"])
    return login(client, "helpline-lb", "helpline-pass")
