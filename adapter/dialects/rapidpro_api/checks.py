"""``sites check`` of a site's RapidPro side: the token is accepted and every flow the
site names is a flow of the workspace (``GET /api/v2/flows.json?uuid=``).

Each problem is one line saying what to fix. Read-only: nothing is started or sent.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests

from plugins.http import tls_problem

from ...sites import RapidProSettings

#: A uuid no workspace has: asking for it checks the token alone.
NO_FLOW = "00000000-0000-4000-8000-000000000000"


@dataclass(frozen=True)
class Finding:
    ok: bool
    detail: str


def check_rapidpro(rapidpro: RapidProSettings, http: requests.Session) -> list[Finding]:
    """What is wrong with ``rapidpro`` as the workspace answers, or one ``ok`` line."""
    headers = {"Authorization": f"Token {rapidpro.token}"}
    url = f"{rapidpro.api_root}/flows.json"
    problems: list[Finding] = []
    found: list[str] = []
    for event, flow in (sorted(rapidpro.flows.items()) or [("", NO_FLOW)]):
        try:
            response = http.get(url, params={"uuid": flow}, headers=headers)
        except requests.exceptions.SSLError as exc:
            return [Finding(False, f"tls: {tls_problem(exc)} (a private CA? set "
                                   "[rapidpro] ca_bundle to its PEM file)")]
        except requests.RequestException as exc:
            return [Finding(False, f"{url}: {type(exc).__name__} (check [rapidpro] base_url)")]
        if response.status_code in (401, 403):
            return [Finding(False, f"token refused (HTTP {response.status_code}): set "
                                   "[rapidpro] token to an API token of the workspace")]
        if response.status_code != 200:
            return [Finding(False, f"{url}: HTTP {response.status_code} (check [rapidpro] "
                                   "base_url: the workspace root or its /api/v2/)")]
        if not event:
            break
        if any(item.get("uuid") == flow for item in _results(response)):
            found.append(event)
        else:
            problems.append(Finding(False, f"flow {event} = {flow} is not a flow of the "
                                           f"workspace: fix [rapidpro.flows] {event}"))
    if problems:
        return problems
    flows = f"; flows found: {', '.join(found)}" if found else "; no flows configured"
    return [Finding(True, f"token accepted{flows}")]


def _results(response: requests.Response) -> list[dict]:
    try:
        results = response.json().get("results")
    except (ValueError, AttributeError):
        return []
    return [item for item in results if isinstance(item, dict)] if isinstance(results, list) \
        else []
