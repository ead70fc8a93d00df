"""The child's language: read from the start (RapidPro's ``contact.language``, ISO 639-3,
or an explicit ``language``), kept with the conversation, and used to pick the site's
``[texts]`` for every event the child hears about, with the site's default language as
the fallback. Over HTTP: the sandbox helpline's counsellors take and close the chats
(calling the served adapter back), and the events reach the sandbox RapidPro."""

from __future__ import annotations

import pytest

from adapter.delivery.engine import drain
from adapter.sites import SiteConfigError
from plugins.openchs import client as openchs_client
from tests.conftest import make_client
from tests.plugins.conftest import ServedApp
from tests.sandbox.conftest import FLOW
from tests.support.sites import write_site

CALLBACK_USER, CALLBACK_PASSWORD = "openchs-lg", "callback-secret"
TEXTS = {
    "default_language": "eng",
    "languages": ["eng", "swa"],
    "eng": {"assigned": "A counsellor has joined the chat.",
            "closed": "The counsellor has ended the chat."},
    "swa": {"assigned": "Mshauri amejiunga na mazungumzo."},  # no `closed`: English
}


def _site(folder, helpline_url: str, rapidpro_url: str, texts: dict | None = TEXTS) -> None:
    extra = {"texts": texts} if texts is not None else {}
    write_site(folder, "lg", name="Languages", plugin="openchs",
               routing={"locations": ["Lugha"]},
               helpline={"base_url": f"{helpline_url}/helpline/api/", "username": "sandbox",
                         "password": "sandbox-password", "callback_username": CALLBACK_USER,
                         "callback_password": CALLBACK_PASSWORD},
               rapidpro={"base_url": rapidpro_url, "token": "tok-weni",
                         "rate_per_hour": 1_000_000,
                         "flows": {"assigned": FLOW, "closed": FLOW}}, **extra)


@pytest.fixture
def world(app_factory, tmp_path, helpline, rapidpro):
    """The adapter served (the helpline calls it back), a site with [texts], a key."""
    openchs_client.tokens.clear()
    _site(tmp_path, helpline.url, rapidpro.url)
    app = app_factory(countries=tmp_path, plugins=())
    served = ServedApp(app)
    helpline.client.configure(callback_url=f"{served.url}/v1/sites/lg/openchs/",
                              callback_username=CALLBACK_USER,
                              callback_password=CALLBACK_PASSWORD, callback_backoff=0.05)
    yield app, make_client(app, "lang"), helpline.client
    served.stop()
    openchs_client.tokens.clear()


def _start(app, key, n: int, **body):
    return app.test_client().post(
        "/v1/conversations", headers={"Authorization": f"Token {key}"},
        json={"location": "Lugha", "conversation_id": f"lang-{n}", "text": "please help",
              **body, "contact": {"uuid": f"5b7b4a0e-8a4c-4f3e-9d55-0c7f2a1d9e0{n}",
                                  **body.get("contact", {})}})


def _events(rapidpro) -> dict[tuple[str, str], dict]:
    """(conversation id, event) → the params RapidPro's flow start got."""
    return {(s["body"]["params"]["conversation_id"], s["body"]["params"]["event"]):
            s["body"]["params"] for s in rapidpro.client.records("flow_starts")}


def test_each_event_speaks_the_childs_language_or_the_sites_default(world, rapidpro):
    app, key, helpline = world
    swahili = _start(app, key, 1, contact={"language": "swa"})
    # The explicit field wins over the contact's; no texts in French: the default's
    french = _start(app, key, 2, language="fra", contact={"language": "swa"})
    unknown = _start(app, key, 3, contact={"language": ""})  # @contact.language, unset
    assert [r.status_code for r in (swahili, french, unknown)] == [201] * 3
    assert [r.json["language"] for r in (swahili, french, unknown)] == ["swa", "fra", None]
    with app.app_context():
        drain(app)  # at the helpline
    for started in (swahili, french, unknown):
        outcome = helpline.counsellor("assign", session_id=started.json["id"])
        assert outcome["ok"], outcome
    with app.app_context():
        drain(app)
    for started in (swahili, french, unknown):
        assert helpline.counsellor("close", session_id=started.json["id"])["ok"]
    with app.app_context():
        drain(app)

    said = {key: (p["language"], p.get("text"), p.get("text_language"))
            for key, p in _events(rapidpro).items()}
    assert said == {
        ("lang-1", "assigned"): ("swa", "Mshauri amejiunga na mazungumzo.", "swa"),
        ("lang-1", "closed"): ("swa", "The counsellor has ended the chat.", "eng"),
        ("lang-2", "assigned"): ("fra", "A counsellor has joined the chat.", "eng"),
        ("lang-2", "closed"): ("fra", "The counsellor has ended the chat.", "eng"),
        ("lang-3", "assigned"): (None, "A counsellor has joined the chat.", "eng"),
        ("lang-3", "closed"): (None, "The counsellor has ended the chat.", "eng"),
    }
    got = app.test_client().get(f"/v1/conversations/{swahili.json['id']}",
                                headers={"Authorization": f"Token {key}"})
    assert got.json["language"] == "swa"


def test_a_site_without_texts_sends_the_language_and_no_text(app_factory, tmp_path, helpline,
                                                              rapidpro):
    openchs_client.tokens.clear()
    _site(tmp_path, helpline.url, rapidpro.url, texts=None)
    app = app_factory(countries=tmp_path, plugins=())
    served = ServedApp(app)
    try:
        helpline.client.configure(callback_url=f"{served.url}/v1/sites/lg/openchs/",
                                  callback_username=CALLBACK_USER,
                                  callback_password=CALLBACK_PASSWORD)
        started = _start(app, make_client(app, "lang"), 1, contact={"language": "swa"})
        with app.app_context():
            drain(app)
        assert helpline.client.counsellor("assign", session_id=started.json["id"])["ok"]
        with app.app_context():
            drain(app)
    finally:
        served.stop()
    [params] = _events(rapidpro).values()
    assert params["language"] == "swa" and "text" not in params and "text_language" not in params


@pytest.mark.parametrize(("body", "field"), [
    ({"contact": {"language": "Swahili"}}, "contact.language"),
    ({"contact": {"language": "SWA"}}, "contact.language"),
    ({"language": "sw"}, "language"),
    ({"language": "swa; drop"}, "language"),
])
def test_a_language_that_is_not_iso_639_3_is_refused_naming_the_field(world, body, field):
    app, key, _ = world
    refused = _start(app, key, 1, **body)
    assert refused.status_code == 400, refused.json
    assert field in str(refused.json["errors"]), refused.json


def test_sites_check_lists_each_missing_text_and_its_fallback(app_factory, tmp_path, helpline,
                                                              rapidpro):
    texts = {"languages": ["eng", "swa", "kik"],
             "eng": {"assigned": "A counsellor has joined.", "closed": "Goodbye."},
             "swa": {"assigned": "Mshauri amejiunga.", "after_hours": "Tumefunga sasa."}}
    _site(tmp_path, helpline.url, rapidpro.url, texts=texts)
    app = app_factory(countries=tmp_path, plugins=())
    result = app.test_cli_runner().invoke(args=["sites", "check", "lg"])
    lines = [line for line in result.output.splitlines() if line.startswith("lg: texts.")]
    assert lines == [
        "lg: texts.eng.after_hours missing (no fallback: the event carries no text)",
        "lg: texts.swa.closed missing (falls back to eng)",
        "lg: texts.kik.assigned missing (falls back to eng)",
        "lg: texts.kik.closed missing (falls back to eng)",
        "lg: texts.kik.after_hours missing (no fallback: the event carries no text)",
    ]
    assert result.exit_code == 0, result.output  # a fallback is no failure


@pytest.mark.parametrize(("texts", "problem"), [
    ({"english": {"closed": "Bye."}}, "texts.english: not an ISO 639-3 code"),
    ({"eng": {"goodbye": "Bye."}}, "texts.eng.goodbye: unknown text"),
    ({"eng": {"closed": ""}}, "texts.eng.closed: a text of 1 to 1000 characters"),
    ({"default_language": "en"}, "texts.default_language: an ISO 639-3 code"),
    ({"languages": ["eng", "Swahili"]}, "texts.languages: a list of ISO 639-3 codes"),
])
def test_a_bad_texts_table_fails_at_load_naming_the_file_and_key(app_factory, tmp_path, texts,
                                                                 problem):
    _site(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9", texts=texts)
    with pytest.raises(SiteConfigError) as refused:
        app_factory(countries=tmp_path, plugins=())
    assert "lg.toml" in str(refused.value) and problem in str(refused.value)


def test_a_childs_message_is_never_refused_over_its_language(world):
    """Only a start reads the language: a message whose body carries junk there still
    reaches the counsellor."""
    app, key, _ = world
    started = _start(app, key, 1, contact={"language": "swa"})
    sent = app.test_client().post(
        f"/v1/conversations/{started.json['id']}/messages",
        headers={"Authorization": f"Token {key}"},
        json={"message_id": "m-2", "text": "are you there?",
              "contact": {"uuid": "5b7b4a0e-8a4c-4f3e-9d55-0c7f2a1d9e01",
                          "language": "Kiswahili"}})
    assert sent.status_code == 202, sent.json
