def test_health_is_open(client):
    assert client.get("/healthz").status_code == 200


def test_readyz_sees_database_and_redis(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json["checks"] == {"database": "ok", "redis": "ok"}
