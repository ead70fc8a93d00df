"""The opt-in re-hosting fetcher over real HTTP, against a local media host.

Nothing is ever fetched unless a site opts in (``docs/attachments.md``); when it does,
a download is bounded (size, time, redirects), typed (the site's allowed types) and
never reaches a private address, at the first hop or after a redirect. The media host
is on 127.0.0.1, so each test names exactly its ``host:port`` as the one private pair
allowed (``unsafe_allow_private_hosts``): every other private address stays refused.
"""

from __future__ import annotations

import time

import pytest

from adapter.media_fetch import FetchRefused, FetchRules, fetch, public
from adapter.sandbox.media import JPEG_HEAD, MediaHost
from adapter.sites import AttachmentSettings

IMAGES = AttachmentSettings(allowed_types=("image/*",)).refusal


@pytest.fixture(scope="module")
def media():
    host = MediaHost()
    yield host
    host.stop()


@pytest.fixture
def rules(media) -> FetchRules:
    media.requests.clear()
    return FetchRules(max_bytes=10_000, connect_timeout=1, read_timeout=1, total_timeout=3,
                      max_redirects=2, unsafe_allow_private_hosts=(f"127.0.0.1:{media.port}",))


def refused(url: str, rules: FetchRules, *, retryable: bool, resolver=None) -> str:
    with pytest.raises(FetchRefused) as raised:
        if resolver is None:
            fetch(url, rules, IMAGES)
        else:
            fetch(url, rules, IMAGES, resolver=resolver)
    assert raised.value.retryable is retryable, raised.value.reason
    return raised.value.reason


def test_an_image_is_fetched_whole_with_its_type(media, rules):
    got = fetch(f"{media.url}/media/photo.jpg?bytes=5000", rules, IMAGES)
    assert (got.content_type, len(got.body), got.redirects) == ("image/jpeg", 5000, 0)
    assert got.body.startswith(JPEG_HEAD)


def test_a_redirect_within_the_allowed_host_is_followed(media, rules):
    got = fetch(f"{media.url}/redirect?to=/media/a.png%3Ftype%3Dimage/png", rules, IMAGES)
    assert (got.content_type, got.redirects) == ("image/png", 1)


@pytest.mark.parametrize("query", ["bytes=10001", "bytes=10001&length=false",
                                   "bytes=100&lie=20000"])
def test_over_the_size_cap_is_refused_declared_or_as_read(media, rules, query):
    reason = refused(f"{media.url}/media/big.jpg?{query}", rules, retryable=False)
    assert reason == "larger than 10000 bytes"


def test_a_type_the_site_does_not_take_is_refused(media, rules):
    reason = refused(f"{media.url}/media/x?type=text/html", rules, retryable=False)
    assert reason == "content type text/html is not accepted at this site"


def test_a_host_that_does_not_answer_in_time_is_a_retryable_refusal(media, rules):
    started = time.monotonic()
    reason = refused(f"{media.url}/slow?first=3", rules, retryable=True)
    assert reason.startswith("connection: ")
    assert time.monotonic() - started < 2.5  # the read timeout (1 s), not the host's 3 s


def test_a_slow_drip_is_cut_at_the_total_timeout(media, rules):
    started = time.monotonic()
    reason = refused(f"{media.url}/drip?every=0.5&chunks=20", rules, retryable=True)
    assert reason == "not done within 3 s"
    assert time.monotonic() - started < 4.5


@pytest.mark.parametrize("private", [
    "http://127.0.0.1:9/", "http://localhost:{port}/media/a.jpg", "http://10.0.0.8/",
    "http://169.254.169.254/latest/meta-data/", "http://[::1]:{port}/", "http://192.168.1.1/",
    "http://100.64.0.1/", "http://[::ffff:10.0.0.1]/", "http://0.0.0.0:{port}/",
])
def test_a_redirect_to_a_private_address_is_refused_before_connecting(media, rules, private):
    target = private.format(port=media.port)
    reason = refused(f"{media.url}/redirect?to={target}", rules, retryable=False)
    assert reason == "the media host is a private address"
    assert [r["path"] for r in media.requests] == ["/redirect"]  # the private hop: never made


def test_a_private_first_hop_is_refused_too(media):
    media.requests.clear()
    strict = FetchRules()  # no pair allowed: the media host itself is a private address
    reason = refused(f"{media.url}/media/a.jpg", strict, retryable=False)
    assert reason == "the media host is a private address"
    assert media.requests == []


def test_a_name_with_one_private_answer_is_refused(media, rules):
    def rebinding(host, port):
        return ["93.184.216.34", "10.1.2.3"]

    reason = refused("http://media.example.org/a.jpg", rules, retryable=False,
                     resolver=rebinding)
    assert reason == "the media host is a private address"


def test_too_many_redirects_and_other_schemes_are_refused(media, rules):
    loop = f"{media.url}/redirect?to=/redirect%3Fto%3D/redirect%253Fto%253D/media/a.jpg"
    assert refused(loop, rules, retryable=False) == "more than 2 redirects"
    assert refused(f"{media.url}/redirect?to=file:///etc/passwd", rules,
                   retryable=False) == "not an http(s) URL with a host"
    assert refused(f"http://user:pw@127.0.0.1:{media.port}/media/a.jpg", rules,
                   retryable=False) == "a URL with credentials"


@pytest.mark.parametrize(("code", "retryable"), [(404, False), (403, False), (503, True),
                                                 (429, True)])
def test_an_error_status_says_whether_to_try_again(media, rules, code, retryable):
    assert refused(f"{media.url}/status/{code}", rules, retryable=retryable) == f"HTTP {code}"


@pytest.mark.parametrize(("address", "expected"), [
    ("93.184.216.34", True), ("2606:2800:220:1:248:1893:25c8:1946", True),
    ("127.0.0.1", False), ("10.0.0.1", False), ("172.16.0.1", False), ("192.168.0.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("::1", False),
    ("fc00::1", False), ("fe80::1", False), ("::ffff:127.0.0.1", False),
    ("2002:0a00:0001::", False), ("224.0.0.1", False), ("192.0.2.1", False),
])
def test_public_is_only_the_public_internet(address, expected):
    assert public(address) is expected


# ---- where a re-hosted file is kept ----------------------------------------------------

def test_a_stored_file_is_found_by_its_token_until_it_expires(tmp_path):
    import json
    from datetime import UTC, datetime, timedelta

    from adapter import media_store

    token = media_store.store(str(tmp_path), b"\xff\xd8 photo", "image/jpeg", expire_hours=1)
    path, content_type = media_store.stored(str(tmp_path), token)
    assert (path.read_bytes(), content_type) == (b"\xff\xd8 photo", "image/jpeg")
    assert media_store.stored(str(tmp_path), "../" + token[3:]) is None  # never a path
    assert media_store.stored(str(tmp_path), token[:-1] + "x") is None

    meta = tmp_path / f"{token}.json"  # its hour is up
    expired = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "expires_at": expired}))
    assert media_store.stored(str(tmp_path), token) is None
    assert media_store.purge(str(tmp_path)) == 1
    assert list(tmp_path.iterdir()) == []
