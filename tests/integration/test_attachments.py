"""Attachments from the chatbot to the helpline, over HTTP, through real processes.

OpenCHS's ``msg/`` takes one text per post and stores every POST (no deduplication):
a message with attachments goes as its text, then one post per attachment (the URL as
``message``, its content type as ``mime``), and a part the helpline accepted is never
posted again, whether a later part failed or the worker died. The sandbox helpline
stores every post with its ``mime`` and refuses a ``mime`` that is no MIME type.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.integration.conftest import CONTACT, FLOWS

pytestmark = pytest.mark.integration

PHOTO = "image/jpeg:https://media.example.org/photo.jpg"
VOICE = "audio/ogg:https://media.example.org/voice.ogg"
UNTYPED = "https://media.example.org/download?id=7"


def _posts(stack, session: str) -> list[tuple[str, str, str]]:
    """(message_id, message, mime) of every msg/ post the helpline stored, in order."""
    stored = sorted(stack.helpline_messages(session_id=session), key=lambda m: m["session_seq"])
    return [(m["message_id"], m["message"], m["mime"]) for m in stored]


def _send(stack, conversation_id: str, body: dict, expect: int = 202) -> dict:
    response = stack.post(f"/v1/conversations/{conversation_id}/messages", body)
    assert response.status_code == expect, response.text
    return response.json()


def _message_delivery(stack, session: str) -> dict:
    [delivery] = stack.deliveries(conversation_id=session, action="message")
    return delivery


def test_each_attachment_is_a_msg_post_of_its_own_with_its_mime(stack):
    session = stack.start("c-media", text=None)["id"]
    ours = _send(stack, "c-media", {"message_id": "c-media-m1", "text": "look",
                                    "attachments": [PHOTO, VOICE, UNTYPED]})["message_id"]

    stack.wait_for(lambda: len(_posts(stack, session)) == 4, what="four posts")
    assert _posts(stack, session) == [
        (ours, "look", "text/plain"),
        (f"{ours}/1", "https://media.example.org/photo.jpg", "image/jpeg"),
        (f"{ours}/2", "https://media.example.org/voice.ogg", "audio/ogg"),
        (f"{ours}/3", UNTYPED, "application/octet-stream")]
    assert {m["timestamp"] for m in stack.helpline_messages(session_id=session)} \
        == {stack.helpline_messages(session_id=session)[0]["timestamp"]}  # one message's time
    stack.wait_for(lambda: [m for m in stack.conversation("c-media")["messages"]
                            if m["status"] == "sent"], what="the message marked sent")


def test_a_failed_part_is_retried_alone_and_no_accepted_part_is_posted_twice(stack):
    stack.helpline.client.set_faults(fail_message_id="/2", fail_message_id_next=2,
                                     fail_message_id_status=503)
    session = stack.start("c-part", text=None)["id"]
    ours = _send(stack, "c-part", {"message_id": "c-part-m1", "text": "two things",
                                   "attachments": [PHOTO, VOICE]})["message_id"]

    stack.wait_for(lambda: _message_delivery(stack, session)["status"] == "done",
                   what="the message delivered")
    assert [m[0] for m in _posts(stack, session)] == [ours, f"{ours}/1", f"{ours}/2"]
    tried = [(r["json"]["message_id"], r["status"]) for r in stack.helpline_requests("msg")]
    assert tried == [(ours, 201), (f"{ours}/1", 201), (f"{ours}/2", 503), (f"{ours}/2", 503),
                     (f"{ours}/2", 201)]
    delivery = _message_delivery(stack, session)
    assert delivery["attempts"] == 3
    assert set(delivery["progress"]["steps"]) == {"text", "1", "2"}


def test_a_worker_killed_mid_message_resends_at_most_the_part_in_flight(stack):
    stack.helpline.client.set_faults(slow=1.5)
    session = stack.start("c-part-kill", text=None)["id"]
    ours = _send(stack, "c-part-kill", {"message_id": "c-kill-m1", "text": "three things",
                                        "attachments": [PHOTO, VOICE]})["message_id"]
    # The second part's post has arrived: the first was answered and its progress saved.
    stack.wait_for(lambda: len(stack.helpline_requests("msg")) == 2,
                   what="the second part in flight")
    stack.workers[0].kill()  # SIGKILL
    stack.helpline.client.set_faults(slow=0)
    stack.start_worker()

    stack.wait_for(lambda: _message_delivery(stack, session)["status"] == "done", timeout=20,
                   what="the message completed by another worker")
    copies = Counter(message_id for message_id, _, _ in _posts(stack, session))
    assert copies[ours] == 1  # accepted before the kill: never again
    assert copies[f"{ours}/1"] in (1, 2)  # the one in flight may have landed
    assert copies[f"{ours}/2"] == 1
    assert sum(copies.values()) - len(copies) <= 1


def test_a_refused_attachment_is_named_and_the_rest_reaches_the_helpline(stack):
    """bc takes images, audio and PDFs: the video is refused, the rest goes on."""
    session = stack.start("c-refused", text=None, site="bc")["id"]
    out = _send(stack, "c-refused", {"message_id": "c-refused-m1", "text": "see this",
                                     "attachments": ["video/mp4:https://media.example.org/v.mp4",
                                                     PHOTO]}, expect=422)

    assert out["code"] == "attachments_refused"
    assert out["errors"] == {
        "attachments.0": ["content type video/mp4 is not accepted at this site"]}
    ours = out["accepted"]["message_id"]
    stack.wait_for(lambda: len(_posts(stack, session)) == 2, what="text and photo posted")
    assert _posts(stack, session) == [
        (ours, "see this", "text/plain"),
        (f"{ours}/1", "https://media.example.org/photo.jpg", "image/jpeg")]
    again = stack.post("/v1/conversations/c-refused/messages",
                       {"message_id": "c-refused-m1", "text": "see this",
                        "attachments": ["video/mp4:https://media.example.org/v.mp4", PHOTO]})
    # The same answer; only the message's status has moved on (a repeat says where it is).
    assert again.status_code == 422
    assert {**again.json(), "accepted": None} == {**out, "accepted": None}
    assert {k: v for k, v in again.json()["accepted"].items() if k != "status"} \
        == {k: v for k, v in out["accepted"].items() if k != "status"}
    assert len(stack.deliveries(conversation_id=session, action="message")) == 1


# ---- from the counsellor to the child ---------------------------------------------------

def _reached_the_helpline(stack, conversation_id: str, site: str = "ke") -> str:
    """Start a conversation and wait until the helpline knows it (its first message)."""
    session = stack.start(conversation_id, site=site)["id"]
    stack.wait_for(lambda: stack.helpline_messages(session_id=session),
                   what="the first message at the helpline")
    return session


def _counsellor(stack, action: str, **body) -> dict:
    outcome = stack.helpline.client.counsellor(action, **body)
    assert outcome["ok"], outcome
    return outcome


def test_a_counsellors_media_reaches_a_flow_start_as_typed_attachments(stack):
    """ke hears counsellor messages as flow starts: `@trigger.params.attachments` holds
    each as `<content-type>:<url>`, ready for a Send Message action."""
    session = _reached_the_helpline(stack, "c-reply-media")
    _counsellor(stack, "assign", session_id=session, counsellor="Amani")
    _counsellor(stack, "reply", session_id=session, message_type="image",
                text="https://helpline.example/files/leaflet.png", message_id="hl-img")
    _counsellor(stack, "reply", session_id=session, message_type="voice",
                text="https://helpline.example/files/note", message_id="hl-voice")

    def starts():
        return [r["body"] for r in stack.rapidpro.client.records("flow_starts")
                if r["body"]["flow"] == FLOWS["message"]]

    first, second = stack.wait_for(lambda: len(starts()) == 2 and starts(),
                                   what="two message flow starts")
    assert first["contacts"] == [CONTACT]
    assert (first["params"]["text"], first["params"]["attachments"],
            first["params"]["attachment_urls"]) == (
        "", ["image/png:https://helpline.example/files/leaflet.png"],
        ["https://helpline.example/files/leaflet.png"])
    assert second["params"]["attachments"] == ["audio:https://helpline.example/files/note"]


def test_a_counsellors_media_reaches_a_broadcast_as_a_link_in_its_text(stack):
    """bc sends broadcasts. RapidPro's broadcasts endpoint takes as attachments only media
    uploaded to the workspace (the sandbox refuses any other URL, as RapidPro does), so
    the link goes in the text, without its content type."""
    stack.helpline.client.configure(callback_url=f"{stack.url}/v1/sites/bc/openchs/")
    session = _reached_the_helpline(stack, "c-reply-bc", site="bc")
    _counsellor(stack, "reply", session_id=session, message_type="image",
                text="https://helpline.example/files/leaflet.png", message_id="hl-bc-img")

    [broadcast] = stack.wait_for(lambda: stack.rapidpro.client.records("broadcasts"),
                                 what="the broadcast")
    body = broadcast["body"]
    assert body["contacts"] == [CONTACT]
    assert body["text"].endswith("\nhttps://helpline.example/files/leaflet.png")
    assert "attachments" not in body
    done = stack.wait_for(lambda: [d for d in stack.deliveries(target="chatbot",
                                                              action="message")
                                   if d["status"] == "done"], what="the broadcast delivered")
    assert done[0]["last_status_code"] == 201


# ---- opt-in re-hosting (rh) --------------------------------------------------------------

def _rehost_site_start(stack, conversation_id: str) -> str:
    return stack.start(conversation_id, text=None, site="rh")["id"]


def test_a_rehosting_site_fetches_stores_and_serves_each_attachment(stack):
    """rh's helpline gets our links, not the chatbot's; the text goes at once; what the
    media host serves with a type the site does not take becomes a notice."""
    media = stack.media.url
    session = _rehost_site_start(stack, "c-rehost")
    out = _send(stack, "c-rehost", {"message_id": "c-rehost-m1", "text": "my photo",
                                    "attachments": [
        f"image/jpeg:{media}/media/photo.jpg?bytes=3000",
        f"audio/ogg:{media}/media/not-audio?type=text/html"]})
    text_id = out["message_id"]

    stack.wait_for(lambda: len(_posts(stack, session)) == 3, what="text, notice and photo")
    posts = _posts(stack, session)
    assert posts[0] == (text_id, "my photo", "text/plain")
    parts_id = posts[1][0]
    assert parts_id != text_id
    assert posts[1] == (parts_id, "[an attachment could not be passed on: content type "
                                  "text/html is not accepted at this site]", "text/plain")
    link_id, link, mime = posts[2]
    assert (link_id, mime) == (f"{parts_id}/1", "image/jpeg")
    assert link.startswith(f"{stack.url}/v1/media/rh/") and media not in link

    served = stack.http.get(link, timeout=10, headers={"Authorization": ""})
    assert served.status_code == 200
    assert served.headers["Content-Type"] == "image/jpeg"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert served.headers["Cache-Control"] == "private, no-store"
    original = stack.http.get(f"{media}/media/photo.jpg?bytes=3000", timeout=10)
    assert served.content == original.content and len(served.content) == 3000
    assert stack.http.get(link[:-4] + "AAAA", timeout=10).status_code == 404
    assert stack.http.get(link.replace("/rh/", "/ke/"), timeout=10).status_code == 404


def test_a_failed_download_is_retried_and_never_holds_up_the_text(stack):
    media = stack.media.url
    session = _rehost_site_start(stack, "c-rehost-retry")
    text_id = _send(stack, "c-rehost-retry", {
        "message_id": "c-rehost-m2", "text": "look",
        "attachments": [f"image/jpeg:{media}/flaky/retry-photo?fail=2"]})["message_id"]

    [rehost] = stack.wait_for(lambda: [d for d in stack.deliveries(target="media")
                                       if d["status"] == "done"], timeout=15,
                              what="the download done at the third attempt")
    assert rehost["attempts"] == 3
    stack.wait_for(lambda: len(_posts(stack, session)) == 2, what="text and photo")
    (first_id, first, _), (second_id, _, mime) = _posts(stack, session)
    assert (first_id, first) == (text_id, "look")  # the text did not wait for the photo
    assert second_id.endswith("/1") and mime == "image/jpeg"
    tries = [r for r in stack.media.requests if r["path"] == "/flaky/retry-photo"]
    assert len(tries) == 3


def test_a_rehosting_site_never_reaches_a_private_address_it_was_not_given(stack):
    media = stack.media.url
    session = _rehost_site_start(stack, "c-rehost-ssrf")
    _send(stack, "c-rehost-ssrf", {"message_id": "c-rehost-m3", "attachments": [
        f"image/png:{media}/redirect?to=http://169.254.169.254/latest/meta-data/"]})

    stack.wait_for(lambda: len(_posts(stack, session)) == 1, what="the notice")
    [(_, notice, _)] = _posts(stack, session)
    assert notice == ("[an attachment could not be passed on: the media host is a private "
                      "address]")
    [rehost] = stack.deliveries(target="media")
    assert (rehost["status"], rehost["attempts"]) == ("done", 1)  # refused, never retried
