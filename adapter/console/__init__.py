"""The operations console: server-rendered pages at ``/console`` for a helpline's
operations team (``docs/operations.md``).

Read-mostly. Accounts are made from the CLI (``helpline-adapter operators``), log in
with a password (scrypt, as API clients' passwords; failed logins limited by
:mod:`adapter.login_limits`), and hold a signed session cookie (Flask-Login) that is
``HttpOnly``, ``SameSite=Strict``, ``Secure`` by default, limited to ``/console`` and over
after ``CONSOLE_IDLE_TIMEOUT_SECONDS`` unused. Every POST carries a CSRF token
(Flask-WTF). Roles: ``viewer`` sees, ``operator`` also retries deliveries,
``supervisor`` also reads message text (within the site's retention; each read is an
audit event). The pages show ids, pseudonyms, states and our own error lines; never a
body, a URN, a name or a secret. Not part of the JSON API: not in the OpenAPI document.
"""

from __future__ import annotations

from flask import Flask
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()
login_manager = LoginManager()


def init_console(app: Flask) -> None:
    from .views import bp, load_user

    # Not settings: what the console's cookie and CSRF checks must be, whatever else.
    app.config.update(
        SESSION_COOKIE_NAME="hla_console",
        SESSION_COOKIE_PATH="/console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=bool(app.config["CONSOLE_COOKIE_SECURE"]),
        REMEMBER_COOKIE_SECURE=True,  # no "remember me" is ever set; were it, HTTPS only
        WTF_CSRF_CHECK_DEFAULT=False,  # the JSON API has no forms: the console checks its own
        WTF_CSRF_ENABLED=True,
    )
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.session_protection = "strong"
    login_manager.login_view = "console.login"
    login_manager.login_message = None
    login_manager.user_loader(load_user)
    app.register_blueprint(bp)
