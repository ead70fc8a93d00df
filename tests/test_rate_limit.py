"""A client past its rate gets 429 with Retry-After; other clients are not affected."""

from tests.conftest import make_client


def test_client_over_its_rate_gets_429_with_retry_after(app_factory):
    app = app_factory(RATE_LIMIT_PER_MINUTE=1, RATE_LIMIT_BURST=2)
    client = app.test_client()
    busy = {"Authorization": f"Token {make_client(app, 'busy')}"}
    other = {"Authorization": f"Token {make_client(app, 'other')}"}

    statuses = [client.get("/v1/conversations/nope", headers=busy).status_code for _ in range(5)]

    assert statuses[:3] == [404, 404, 404]  # one now plus a burst of two
    limited = client.get("/v1/conversations/nope", headers=busy)
    assert limited.status_code == 429
    assert limited.json["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    assert client.get("/v1/conversations/nope", headers=other).status_code == 404
