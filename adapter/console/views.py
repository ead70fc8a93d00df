"""The console's routes: login, the four pages, and the two Retry actions."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user
from flask_wtf.csrf import CSRFError

from ..audit import audit
from ..auth import password_matches
from ..delivery.replay import replayable, requeue
from ..errors import ApiError
from ..extensions import db
from ..login_limits import attempt
from ..models import Conversation, Delivery, Operator, utcnow
from ..state import state_of
from . import csrf, queries

log = logging.getLogger(__name__)

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static")

OPEN_ENDPOINTS = ("console.login", "console.static")


@dataclass(frozen=True)
class ConsoleUser:
    """The logged-in operator as a request sees it (never an ORM object in the session)."""

    id: int
    name: str
    role: str
    sites: tuple[str, ...] | None

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return str(self.id)

    @property
    def actor(self) -> str:
        return f"console:{self.name}"

    @property
    def may_retry(self) -> bool:
        return self.role in ("operator", "supervisor")

    @property
    def may_read_text(self) -> bool:
        return self.role == "supervisor"

    def may_use_site(self, site: str) -> bool:
        return self.sites is None or site in self.sites


def load_user(user_id: str) -> ConsoleUser | None:
    """Flask-Login's loader, on every request: a disabled account, or a session begun
    before its operator's last logout, is no one."""
    try:
        operator = db.session.get(Operator, int(user_id))
    except ValueError:
        return None
    if operator is None or operator.disabled_at is not None:
        return None
    began = session.get("login_at", 0)
    if operator.sessions_valid_after is not None and (
            began <= operator.sessions_valid_after.timestamp()):
        return None
    return ConsoleUser(operator.id, operator.name, operator.role,
                       tuple(operator.sites) if operator.sites is not None else None)


def _now_ts() -> float:
    return utcnow().timestamp()


@bp.before_request
def _guard():
    """CSRF first (login included), then who is asking, then the idle timeout."""
    if request.method == "POST":
        csrf.protect()
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    if not current_user.is_authenticated:
        return redirect(url_for("console.login"))
    idle = float(current_app.config["CONSOLE_IDLE_TIMEOUT_SECONDS"])
    if time.time() - session.get("seen", 0) > idle:
        logout_user()
        session.clear()
        flash("Your session was idle too long: log in again.")
        return redirect(url_for("console.login"))
    session["seen"] = time.time()
    g.client_name = f"operator:{current_user.id}"  # the request log's line: an id, no name
    return None


@bp.after_request
def _headers(response):
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'")
    return response


@bp.errorhandler(CSRFError)
def _csrf_refused(error):
    log.warning("console.csrf_refused", extra={"path": request.path})
    return render_template("console/error.html", status=403,
                           message="Refused: this form's security token is missing, invalid "
                                   "or expired. Reload the page and try again."), 403


@bp.errorhandler(403)
def _forbidden(error):
    return render_template("console/error.html", status=403,
                           message="Your role may not do this."), 403


@bp.errorhandler(404)
def _not_found(error):
    return render_template("console/error.html", status=404, message="Not found."), 404


def _sites() -> list:
    return [site for site in state_of().sites if current_user.may_use_site(site.code)]


def _codes() -> list[str]:
    return [site.code for site in _sites()]


# ---- login ------------------------------------------------------------------------

@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(url_for("console.sites"))
        return render_template("console/login.html")
    name = request.form.get("name", "")[:100]
    password = request.form.get("password", "")[:1024]
    try:
        with attempt("operator", name) as charged:
            operator = db.session.execute(
                db.select(Operator).where(Operator.name == name)).scalar() if name else None
            live = operator is not None and operator.disabled_at is None
            if not password_matches(operator.password_hash if live else None, password):
                charged.failed()
                if operator is not None:  # an account's refused logins are its history
                    audit(f"console:{operator.name}", "console_login_refused",
                          disabled=not live)
                    db.session.commit()
                log.info("console.login_failed",
                         extra={"operator_id": operator.id if operator else None})
                return render_template("console/login.html",
                                       error="Wrong name or password."), 401
    except ApiError as exc:  # 429: too many failed logins
        response = current_app.make_response((render_template(
            "console/login.html", error="Too many failed logins: try again later."),
            exc.status))
        response.headers.update(exc.headers or {})
        return response
    session.clear()  # nothing of the anonymous session carries over
    now = _now_ts()
    session["login_at"] = now
    session["seen"] = time.time()
    login_user(ConsoleUser(operator.id, operator.name, operator.role,
                           tuple(operator.sites) if operator.sites is not None else None))
    audit(f"console:{operator.name}", "console_login", role=operator.role)
    db.session.commit()
    log.info("console.login", extra={"operator_id": operator.id})
    return redirect(url_for("console.sites"))


@bp.post("/logout")
def logout():
    """Ends this session, and every other of this operator (a copied cookie too)."""
    operator = db.session.get(Operator, current_user.id)
    operator.sessions_valid_after = utcnow()
    audit(current_user.actor, "console_logout")
    db.session.commit()
    logout_user()
    session.clear()
    flash("Logged out.")
    return redirect(url_for("console.login"))


# ---- pages ------------------------------------------------------------------------

@bp.get("/")
def index():
    return redirect(url_for("console.sites"))


@bp.get("/sites")
def sites():
    health = queries.site_health(_sites())
    return render_template("console/sites.html", health=health, now=utcnow(),
                           probe_interval=current_app.config["PROBE_INTERVAL_SECONDS"])


@bp.get("/waiting")
def waiting():
    rows, counts = queries.waiting(_codes(), current_app.config["CONSOLE_RECENT_HOURS"])
    timeouts = {site.code: site.policies.assignment_timeout for site in _sites()}
    return render_template("console/waiting.html", rows=rows, counts=counts, now=utcnow(),
                           timeouts=timeouts,
                           recent_hours=current_app.config["CONSOLE_RECENT_HOURS"])


@bp.get("/deliveries")
def deliveries():
    site = request.args.get("site") or None
    if site is not None and site not in _codes():
        abort(404)
    rows = queries.problem_deliveries(_codes(), site)
    return render_template("console/deliveries.html", rows=rows, site=site, now=utcnow(),
                           codes=_codes())


@bp.post("/deliveries/<int:delivery_id>/retry")
def retry(delivery_id: int):
    if not current_user.may_retry:
        abort(403)
    rows = replayable(delivery_id=delivery_id, sites=_codes())
    if not rows:
        flash(f"Delivery {delivery_id} is neither failed nor held (or not yours to see).")
        return redirect(url_for("console.deliveries"))
    delivery = rows[0]
    conversation = (db.session.get(Conversation, delivery.conversation_id)
                    if delivery.conversation_id else None)
    audit(current_user.actor, "console_retry", conversation=conversation,
          case_id=delivery.case_id, delivery_id=delivery.id, from_status=delivery.status)
    _requeued(rows)
    return redirect(url_for("console.deliveries", site=request.form.get("back") or None))


@bp.post("/sites/<site>/retry")
def retry_site(site: str):
    if site not in _codes():
        abort(404)
    if not current_user.may_retry:
        abort(403)
    rows = replayable(site=site)
    audit(current_user.actor, "console_retry_site", site=site, count=len(rows))
    _requeued(rows)
    return redirect(url_for("console.deliveries", site=request.form.get("back") or None))


def _requeued(rows: list[Delivery]) -> None:
    ids = [d.id for d in rows]
    woken = requeue(current_app._get_current_object(), rows)
    log.info("console.retry", extra={"operator_id": current_user.id, "count": len(ids)})
    if woken is False:
        flash(f"Requeued {len(ids)}; Redis was not reached, so the worker picks them up at "
              "its next pass.")
    else:
        flash(f"Requeued {len(ids)} " + ("delivery" if len(ids) == 1 else "deliveries")
              + (f" ({', '.join(map(str, ids[:20]))})" if ids else "") + ".")


def _conversation(conversation_id: str) -> Conversation:
    conversation = db.session.get(Conversation, conversation_id[:36])
    if conversation is None or not current_user.may_use_site(conversation.site):
        abort(404)
    return conversation


@bp.get("/conversations/<conversation_id>")
def conversation(conversation_id: str):
    return _timeline(_conversation(conversation_id), show_text=False)


@bp.post("/conversations/<conversation_id>/text")
def conversation_text(conversation_id: str):
    """The timeline with message text, for a supervisor: within retention, and audited."""
    found = _conversation(conversation_id)
    if not current_user.may_read_text:
        abort(403)
    return _timeline(found, show_text=True)


def _timeline(found: Conversation, *, show_text: bool):
    entries, deliveries, messages = queries.timeline(found)
    site = state_of().sites.get(found.site)
    now = utcnow()
    readable = set()
    if show_text and site is not None:
        readable = {m.id for m in messages if queries.readable(m, site, now)}
        audit(current_user.actor, "console_text_viewed", conversation=found,
              messages=len(readable))
        db.session.commit()
        log.info("console.text_viewed", extra={"operator_id": current_user.id,
                                               "conversation_id": found.id})
    return render_template("console/conversation.html", c=found, entries=entries,
                           deliveries=deliveries, show_text=show_text, readable=readable,
                           site=site, now=now)
