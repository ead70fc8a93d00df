"""``[hours]`` in a site file: validated at load, a bad value refused with the file and the
key named; no table is always open (today's behaviour)."""

from __future__ import annotations

import pytest

from adapter.sites import SiteConfigError, load_site_file
from plugins.manager import helpline_kinds, make_plugin_manager
from tests.support.sites import write_site


def load(tmp_path, **extra):
    path = write_site(tmp_path, "hs", name="Hours", plugin="webhook",
                      helpline={"url": "http://127.0.0.1:9/hook", "secret": "s"}, **extra)
    return path, load_site_file(path, helpline_kinds(make_plugin_manager()), {})


def test_no_hours_table_is_always_open(tmp_path):
    _, site = load(tmp_path)
    assert site.hours is None


def test_a_valid_table_is_read(tmp_path):
    _, site = load(tmp_path, hours={"timezone": "America/Sao_Paulo", "outside": "close",
                                    "monday": ["08:00-12:00", "13:00-18:00"],
                                    "closed": ["2026-12-25"]})
    assert (site.hours.timezone, site.hours.outside) == ("America/Sao_Paulo", "close")
    assert len(site.hours.weekly[0]) == 2 and len(site.hours.closed) == 1


@pytest.mark.parametrize(("hours", "key"), [
    ({"timezone": "Europe/Lndon"}, "hours.timezone: unknown time zone 'Europe/Lndon'"),
    ({"timezone": "UTC", "tuesday": ["17:00"]}, "hours.tuesday: '17:00' is not a range"),
    ({"timezone": "UTC", "outside": "drop"}, "hours.outside"),
])
def test_a_bad_value_names_the_file_and_the_key(tmp_path, hours, key):
    with pytest.raises(SiteConfigError) as caught:
        load(tmp_path, hours=hours)
    assert str(caught.value).startswith(str(tmp_path / "hs.toml") + ": " + key)


def test_after_hours_text_placeholders_are_checked_at_load(tmp_path, monkeypatch):
    monkeypatch.setenv("HS_WENI_SECRET", "s")
    weni = {"topics": ["a1d2b8c3-9e4f-4a5b-8c6d-7e8f9a0b1c2d"],
            "webhook_secret": "${HS_WENI_SECRET}"}
    _, site = load(tmp_path, chatbot={"weni": {**weni, "after_hours_text":
                                               "Open {weekday} {date} at {time} ({timezone})"}})
    assert site.weni.after_hours_text.startswith("Open {weekday}")
    with pytest.raises(SiteConfigError, match=r"chatbot.weni.after_hours_text: unknown "
                                              r"placeholder \{hour\}"):
        load(tmp_path, chatbot={"weni": {**weni, "after_hours_text": "at {hour}"}})
