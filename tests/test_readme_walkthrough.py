"""The README's first hour, literally: `./dev run` on a fresh checkout's defaults, then the
curl block of "A conversation with curl" as it is written there, pasted into bash.

Nothing is configured: no Redis, no database, no site secrets. So `./dev run` must serve
the local sandbox site, the block must set every variable it uses, and the counsellor's
reply must reach the sandbox RapidPro within seconds.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import requests

from adapter.sandbox.control import SandboxClient
from adapter.sandbox.process import ManagedProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
CONTACT = "6f1f3e0e-1b1a-4c39-9c1e-2a4f8d1c0a11"


def readme_block(heading: str) -> str:
    """The first ```sh block after ``heading`` in README.md."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    after = text[text.index(heading):]
    match = re.search(r"```sh\n(.*?)```", after, re.S)
    assert match, f"no sh block after {heading!r}"
    return match.group(1)


def fresh_env(instance: Path) -> dict[str, str]:
    """The environment of a newcomer: none of our settings, no Redis or database URL."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "DATABASE_URL") and not k.startswith("ADAPTER_")}
    env["ADAPTER_INSTANCE_PATH"] = str(instance)  # not the checkout's own instance/
    return env


def answers(output: str) -> list[tuple[object, str | None]]:
    """Each printed JSON value, with the status of an ``HTTP <code>`` line after it (what
    ``curl -w 'HTTP %{http_code}\\n'`` prints)."""
    found: list[tuple[object, str | None]] = []
    for line in filter(None, (raw.strip() for raw in output.splitlines())):
        status = re.fullmatch(r"HTTP (\d{3})", line)
        if status:
            found[-1] = (found[-1][0], status.group(1))
        else:
            found.append((json.loads(line), None))
    return found


def settle(process: ManagedProcess, quiet: float, timeout: float) -> None:
    """Wait until ``process`` has written nothing for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    lines, since = len(process.output().splitlines()), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, "the adapter never went quiet"
        time.sleep(0.2)
        now = len(process.output().splitlines())
        if now != lines:
            lines, since = now, time.monotonic()


@pytest.fixture
def dev_run(tmp_path):
    port = free_port()
    env = fresh_env(tmp_path / "instance")
    process = ManagedProcess([str(ROOT / "dev"), "run", "--port", str(port)], env=env,
                             ready_url=f"http://127.0.0.1:{port}/readyz", name="dev-run",
                             cwd=ROOT)
    process.start(timeout=120)
    try:
        yield process, f"http://127.0.0.1:{port}", env
    finally:
        process.close()


def test_the_readme_walkthrough_reaches_a_counsellor_and_back_then_idles_quietly(dev_run):
    process, url, env = dev_run
    first_lines = process.output()
    assert "LOCAL SANDBOX" in first_lines and "no real child or counsellor" in first_lines.lower()

    started = time.monotonic()
    result = subprocess.run(["bash", "-c", readme_block("### A conversation with curl")],
                            cwd=ROOT, env={**env, "URL": url}, capture_output=True, text=True,
                            timeout=120)
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    start, first, repeat, state, broadcasts, close = answers(result.stdout)

    conversation, _ = start
    assert conversation["site"] == "sandbox" and conversation["state"] == "requested"
    cid = conversation["conversation_id"]
    assert first[1] == "202" and repeat[1] == "200"
    assert first[0]["message_id"] == repeat[0]["message_id"]

    view, _ = state
    assert view["state"] == "active" and view["counsellor"]
    to_helpline = [m for m in view["messages"] if m["direction"] == "to_helpline"]
    assert len(to_helpline) == 2  # the escalation's message and m-2, once
    replies = [m for m in view["messages"] if m["direction"] == "to_client"]
    assert replies and replies[0]["sender"] == view["counsellor"]

    sent, _ = broadcasts
    assert any(CONTACT in b["body"]["contacts"]
               and b["body"]["text"].startswith(view["counsellor"] + ":") for b in sent)

    closed, status = close
    assert status == "200" and closed["state"] == "closed"
    assert took < 30, f"the walkthrough took {took:.1f} s"

    # The sandbox helpline got the child's messages and the close, under our id.
    helpline = SandboxClient(requests.get(f"{url}/healthz", timeout=5).json()
                             ["sandbox"]["helpline"])
    expected = [m["message_id"] for m in to_helpline] + [f"{conversation['id']}/close"]
    got = helpline.wait_for(lambda seen: len(seen) >= len(expected), kind="messages",
                            session_id=conversation["id"])
    assert [m["message_id"] for m in got] == expected  # each once, in order, then the close
    assert view["conversation_id"] == cid == closed["conversation_id"]  # $CID named it

    # Logs: one line per event of ours; RQ's per-job lines (four a drain) stay below INFO.
    assert '"logger": "rq.' not in process.output()
    # An idle adapter is quiet: the relay sweeps every second and writes nothing. Idle
    # begins once the conversation's last echoes (a sandbox counsellor's reply to the
    # closed chat: 409) have come in: three seconds without a line.
    settle(process, quiet=3.0, timeout=30.0)
    before = len(process.output().splitlines())
    time.sleep(15)  # a measurement window, not a wait for a condition
    idle = process.output().splitlines()[before:]
    assert len(idle) <= 1, idle
