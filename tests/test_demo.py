"""``helpline-adapter demo`` plays a whole conversation and exits 0 with its timeline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from adapter.demo import CLIENT_MESSAGES

ROOT = Path(__file__).resolve().parent.parent


def run_demo(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADAPTER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run([str(Path(sys.executable).parent / "helpline-adapter"), "demo", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


def test_demo_plays_a_whole_conversation_without_showing_text():
    result = run_demo()

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for step in ("start            201", "state            waiting", "timed_out", "accepted",
                 "state            active", "event=assigned", "broadcasts",
                 "ack delivered    200", "event=closed", "closed (closed by counsellor)",
                 "attachments=1", "msg/ attachment  mime=image/jpeg message_id="):
        assert step in out, f"{step!r} missing from the timeline:\n{out}"
    assert not any(text in out for text in CLIENT_MESSAGES)
    assert "tel:+254" not in out and "drawing.jpg" not in out  # no text, no links


def test_demo_plays_a_whole_weni_ticket_signed_with_a_reopen():
    result = run_demo("--dialect", "weni-ticketer")

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for step in ("POST /v1/tickets 201", "…/messages       200", "messages_received=2",
                 "state            waiting", "state            active",
                 "adapter   → mailroom  messages         200  signed=True",
                 "adapter   → mailroom  close            200  signed=True",
                 "close_echo       409", "…/reopen         200", "…/close          200",
                 "closed (closed by client)"):
        assert step in out, f"{step!r} missing from the timeline:\n{out}"
    assert "254700000000" not in out and "I don't feel safe" not in out


def test_demo_shows_an_after_hours_escalation_held_then_opened():
    result = run_demo("--after-hours")

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for step in ("start            201", "state=requested after_hours: held=True",
                 "flow_starts      event=after_hours held=True next_opening=",
                 "Africa/Nairobi)", "helpline            messages         0 (held",
                 "today's closure lifted", "message          #1", "message          #2",
                 "waiting (opened after hours"):
        assert step in out, f"{step!r} missing from the timeline:\n{out}"
    assert not any(text in out for text in CLIENT_MESSAGES)
    assert "tel:+254" not in out
