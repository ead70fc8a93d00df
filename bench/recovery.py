"""Recovery: the helpline is down while messages are accepted; then it comes back.

Measures the time from the helpline's return until every accepted message has
reached it, and checks what must never happen: a message lost, or a conversation's
messages arriving out of the order they were accepted. The order check uses the
sandbox's per-session arrival counter (``session_seq``) against the order in which
the generator had each message accepted (each conversation is sent by one thread,
one message at a time, so that order is well defined).
"""

from __future__ import annotations

import time
from collections import defaultdict

from bench.load import run_in_process
from bench.report import Row
from bench.stack import AdapterStack

THREADS = 8


def _out_of_order(accepted: dict[str, list[str]], records: list[dict]) -> int:
    """Conversations whose messages arrived in another order than accepted.

    Compared on the messages that did arrive, so a backlog still draining at the
    deadline shows as "not delivered", not as disorder; a gap (a later message in
    before an earlier one) is disorder.
    """
    conversation_of = {mid: cid for cid, mids in accepted.items() for mid in mids}
    arrived: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for record in records:
        cid = conversation_of.get(record["message_id"])
        if cid is not None:
            arrived[cid].append((record["session_seq"], record["message_id"]))
    disordered = 0
    for cid, mids in accepted.items():
        order = [mid for _, mid in sorted(arrived.get(cid, []))]
        if order != mids[:len(order)]:
            disordered += 1
    return disordered


def run(stack: AdapterStack, messages: int, conversations: int, timeout: float) -> list[Row]:
    client = stack.helpline.client
    client.reset()
    ids = stack.start_conversations(conversations, "recovery")
    client.set_faults(down=True)
    spec = {"url": stack.url, "key": stack.key, "conversations": ids, "threads": THREADS,
            "mode": "fixed", "per_conversation": messages // conversations,
            "prefix": "rec", "duration": 300}
    started = time.monotonic()
    result = run_in_process(spec, timeout=360)
    accept_seconds = time.monotonic() - started
    accepted: dict[str, list[str]] = defaultdict(list)
    for _, cid, _, status, ours in result["messages"]:
        if status in (200, 202) and ours:
            accepted[cid].append(ours)
    total = sum(len(m) for m in accepted.values())

    back_at = time.time()
    client.set_faults(down=False)
    deadline = time.monotonic() + timeout
    while client.counts()["messages"] < total and time.monotonic() < deadline:
        time.sleep(0.1)
    records = client.records("messages")
    wanted = {mid for mids in accepted.values() for mid in mids}
    got = {r["message_id"] for r in records}
    missing = len(wanted - got)
    recovered = max((r["time"] for r in records), default=back_at) - back_at
    disordered = _out_of_order(accepted, records)
    # The sandbox stores every POST, as OpenCHS does: a message id seen twice is a
    # message a counsellor saw twice.
    duplicates = len(records) - len({r["message_id"] for r in records})
    return [
        Row("recovery", f"accepted while down ({conversations} conversations)",
            f"{total} in {accept_seconds:.1f} s", target=f"{messages}", met=total == messages),
        Row("recovery", "all delivered, seconds after the helpline's return",
            f"{recovered:.1f} s" if not missing
            else f"{missing} not delivered within {timeout:.0f} s",
            target="< 30 s", met=not missing and recovered < 30),
        Row("recovery", "lost messages / out-of-order conversations",
            f"{missing if not missing else f'{missing} (still queued)'} / {disordered}",
            target="0 / 0", met=missing == 0 and disordered == 0),
        Row("recovery", "duplicates stored by the helpline (no dedupe there)", str(duplicates),
            target="0", met=duplicates == 0),
    ]
