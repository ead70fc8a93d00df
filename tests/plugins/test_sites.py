"""Sites: routing (explicit site, else location, else URN prefix), config errors that
name the file and the key, the shipped country files, and the ``sites`` CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter import create_app
from adapter.sites import SiteConfigError, load_sites
from adapter.state import state_of
from plugins.manager import helpline_kinds, make_plugin_manager
from tests.support.sites import write_site

from .conftest import openchs_site

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def kinds():
    return helpline_kinds(make_plugin_manager())


@pytest.fixture
def registry(tmp_path, kinds, openchs_env):
    for code, locations, prefixes in (
        ("ke", ["Kenya", "Nairobi"], ["tel:+254"]),
        ("ug", ["Uganda", "Kampala"], ["tel:+256"]),
        ("ke-coast", ["Mombasa"], ["tel:+25441"]),
    ):
        write_site(tmp_path, code, name=code, plugin="openchs",
                   routing={"locations": locations, "urn_prefixes": prefixes},
                   helpline={"base_url": "http://127.0.0.1:9/api/", "username": "u",
                             "password": "p"})
    return load_sites(tmp_path, kinds, {})


@pytest.mark.parametrize(("given", "expected"), [
    ({"site": "ug", "location": "Nairobi", "urn": "tel:+254700"}, "ug"),  # explicit wins
    ({"location": "nairobi"}, "ke"),  # case-insensitive
    ({"location": "  KAMPALA "}, "ug"),
    ({"location": "Atlantis", "urn": "tel:+256772"}, "ug"),  # location unknown → URN
    ({"urn": "tel:+254412345"}, "ke-coast"),  # longest prefix wins
    ({"urn": "tel:+254700000"}, "ke"),
    ({"location": "Mombasa", "urn": "tel:+256772"}, "ke-coast"),  # location before URN
])
def test_routing_table(registry, given, expected):
    site, tried = registry.route(site=given.get("site"), location=given.get("location"),
                                 urn=given.get("urn"))
    assert site is not None and site.code == expected, tried


@pytest.mark.parametrize(("given", "named"), [
    ({"site": "zz"}, "site='zz'"),
    ({"location": "Atlantis", "urn": "tel:+1555"}, "location='Atlantis'"),
    ({}, "no site, location or URN given"),
])
def test_no_route_says_what_was_tried(registry, given, named):
    site, tried = registry.route(site=given.get("site"), location=given.get("location"),
                                 urn=given.get("urn"))
    assert site is None and named in ", ".join(tried)


def test_unroutable_start_is_a_422_naming_what_was_tried(client, auth):
    response = client.post("/v1/conversations", headers=auth, json={
        "location": "Atlantis", "contact": {"urn": "tel:+1555000"}, "text": "hi"})
    assert response.status_code == 422
    assert response.json["code"] == "unroutable"
    assert "Atlantis" in response.json["message"] and "tel" in response.json["message"]


@pytest.mark.parametrize(("helpline", "key"), [
    ({"base_url": "not a url", "username": "u", "password": "p"}, "helpline.base_url"),
    ({"username": "u", "password": "p"}, "helpline.base_url"),
    ({"base_url": "http://h/api/", "password": "p"}, "helpline.username"),
    ({"base_url": "http://h/api/", "username": "u", "password": "p", "address": "phone"},
     "helpline.address"),
    ({"base_url": "http://h/api/", "username": "u", "password": "p",
      "callback_username": "cb"}, "helpline.callback_password"),
])
def test_invalid_openchs_config_fails_start_up_naming_file_and_key(tmp_path, helpline, key):
    path = write_site(tmp_path, "ke", name="Kenya", plugin="openchs", helpline=helpline)
    with pytest.raises(SiteConfigError) as error:
        create_app({"COUNTRIES_DIR": str(tmp_path), "SQLALCHEMY_DATABASE_URI": "sqlite://",
                    "SECRET_KEY": "x"})
    assert str(path) in str(error.value) and key in str(error.value)


@pytest.mark.parametrize(("helpline", "key"), [
    ({"url": "http://h/hook"}, "helpline.secret"),
    ({"url": "http://h/hook", "secret": "whsec_!!!notbase64"}, "helpline.secret"),
    ({"url": "http://h/hook", "secret": "whsec_c2VjcmV0", "callback_secrets": ["whsec_"]},
     "helpline.callback_secrets[0]"),
])
def test_invalid_webhook_config_fails_start_up_naming_file_and_key(tmp_path, helpline, key):
    path = write_site(tmp_path, "wh", name="Webhook", plugin="webhook", helpline=helpline)
    with pytest.raises(SiteConfigError) as error:
        create_app({"COUNTRIES_DIR": str(tmp_path), "SQLALCHEMY_DATABASE_URI": "sqlite://",
                    "SECRET_KEY": "x"})
    assert str(path) in str(error.value) and key in str(error.value)


@pytest.mark.parametrize(("intake", "key"), [
    ({"bogus": 1}, "intake.bogus"),
    ({"required_consent": "share"}, "intake.required_consent"),
])
def test_an_invalid_intake_table_fails_start_up_naming_file_and_key(tmp_path, intake, key):
    path = write_site(tmp_path, "ke", name="Kenya", plugin="webhook", intake=intake,
                      helpline={"url": "http://h/hook", "secret": "whsec_c2VjcmV0"})
    with pytest.raises(SiteConfigError) as error:
        create_app({"COUNTRIES_DIR": str(tmp_path), "SQLALCHEMY_DATABASE_URI": "sqlite://",
                    "SECRET_KEY": "x"})
    assert str(path) in str(error.value) and key in str(error.value)


def test_sites_check_refuses_an_invalid_intake_in_one_line(tmp_path):
    import os
    import subprocess
    import sys

    write_site(tmp_path, "ke", name="Kenya", plugin="webhook", intake={"bogus": 1},
               helpline={"url": "http://h/hook", "secret": "whsec_c2VjcmV0"})
    script = Path(sys.executable).parent / "helpline-adapter"
    result = subprocess.run([str(script), "sites", "check"], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "ADAPTER_COUNTRIES_DIR": str(tmp_path),
                                              "ADAPTER_DATABASE_URL": "sqlite://",
                                              "ADAPTER_SECRET_KEY": "x"})
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0
    assert len(lines) == 1 and "intake.bogus" in lines[0], result.stderr


def test_unknown_plugin_names_the_file_and_the_plugin_key(tmp_path):
    path = write_site(tmp_path, "xx", name="X", plugin="carrier-pigeon", helpline={})
    with pytest.raises(SiteConfigError, match="plugin: unknown helpline kind") as error:
        create_app({"COUNTRIES_DIR": str(tmp_path), "SQLALCHEMY_DATABASE_URI": "sqlite://",
                    "SECRET_KEY": "x"})
    assert str(path) in str(error.value)


def test_shipped_country_files_load_and_hold_no_secrets(kinds, monkeypatch):
    folder = PROJECT / "countries"
    for path in folder.glob("*.toml"):
        text = path.read_text()
        for line in text.splitlines():
            key = line.split("=", 1)[0].strip()
            if key in ("password", "username", "token", "secret", "callback_password",
                       "callback_username") or key.endswith("secrets"):
                assert "${" in line, f"{path.name}: {key} must be an ${{ENV}} reference"
    sites = {site.code: site for site in load_sites(folder, kinds, {})}
    assert {"ke", "ug", "tz"} <= set(sites)
    assert {sites[c].plugin for c in ("ke", "ug", "tz")} == {"openchs"}
    assert "webhook" in {site.plugin for site in sites.values()}


def test_countries_folder_from_the_environment(tmp_path, monkeypatch, openchs_env):
    openchs_site(tmp_path, "zz", "http://127.0.0.1:9/api/")
    monkeypatch.setenv("ADAPTER_COUNTRIES_DIR", str(tmp_path))
    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "SECRET_KEY": "x"})
    assert [s.code for s in state_of(app).sites] == ["zz"]


def test_sites_list_shows_sites_without_secrets(app_factory, tmp_path, openchs_env):
    openchs_site(tmp_path, "ke", "http://127.0.0.1:9/api/")
    result = app_factory(countries=tmp_path).test_cli_runner().invoke(args=["sites", "list"])
    assert result.exit_code == 0, result.output
    assert "ke" in result.output and "openchs" in result.output
    for secret in ("helpline-secret", "callback-secret"):
        assert secret not in result.output


def test_sites_check_a_line_per_site(app_factory, tmp_path, helpline, openchs_env, monkeypatch):
    openchs_site(tmp_path, "ke", helpline.api_url)
    write_site(tmp_path, "ug", name="Uganda", plugin="openchs",
               helpline={"base_url": helpline.api_url, "username": "${UNSET_USER_VAR}",
                         "password": "${TEST_OPENCHS_PASSWORD}"})
    runner = app_factory(countries=tmp_path).test_cli_runner()

    result = runner.invoke(args=["sites", "check"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1
    assert any(line.startswith("ke: ok") and "login accepted" in line for line in lines)
    assert any(line.startswith("ug: FAIL") and "UNSET_USER_VAR" in line for line in lines)

    assert runner.invoke(args=["sites", "check", "ke"]).exit_code == 0
    helpline.client.configure(password="rotated")
    refused = runner.invoke(args=["sites", "check", "ke"])
    assert refused.exit_code == 1 and "ke: FAIL" in refused.output and "401" in refused.output
