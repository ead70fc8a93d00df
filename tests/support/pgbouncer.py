"""PgBouncer in transaction mode in front of the test PostgreSQL (Debian's ``pgbouncer``,
installed by ``./dev test`` when run as root).

It listens on a free local port and forwards every database to the server the tests
use (a TCP address, or an embedded server's Unix socket). Running as root, PgBouncer
refuses to start, so it runs as the owner of the server's socket directory (the
embedded server's own user) or ``nobody`` for a TCP server.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from adapter.sandbox.process import free_port
from tests.support.waiting import wait_until

BINARY = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def _target(server_url: str) -> tuple[dict, str | None]:
    """The server's conninfo (host, port, user) and, for a socket, its directory."""
    info = psycopg.conninfo.conninfo_to_dict(
        server_url.replace("postgresql+psycopg://", "postgresql://").replace(":@", "@"))
    host = info.get("host") or "/var/run/postgresql"
    return info, host if host.startswith("/") else None


@contextmanager
def pgbouncer(server_url: str, pool_size: int = 2) -> Iterator[str]:
    """Run PgBouncer (``pool_mode = transaction``) for ``server_url``; yield the URL of
    the server through it (same user, the server's database path kept)."""
    if not os.path.exists(BINARY):
        raise RuntimeError("pgbouncer is missing: run ./dev test as root "
                           "(apt-get install pgbouncer)")
    info, socket_dir = _target(server_url)
    user = info.get("user") or "postgres"
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    backend = f"host={info.get('host') or socket_dir} port={info.get('port') or 5432}"
    (folder / "pgbouncer.ini").write_text(f"""\
[databases]
* = {backend} user={user}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = any
admin_users = {user}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 200
ignore_startup_parameters = extra_float_digits,options
logfile = {folder}/pgbouncer.log
pidfile = {folder}/pgbouncer.pid
""")
    argv = [BINARY, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:
        owner = pwd.getpwuid(os.stat(socket_dir).st_uid).pw_name if socket_dir else "nobody"
        shutil.chown(folder, owner)
        argv[1:1] = ["-u", owner]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parts = urlsplit(server_url.replace("postgresql+psycopg://", "postgresql://"))
    url = urlunsplit(parts._replace(netloc=f"{user}@127.0.0.1:{port}", query=""))
    try:
        wait_until(lambda: _answers(url) or process.poll() is not None, timeout=15,
                   what="pgbouncer answering")
        if process.poll() is not None:
            raise RuntimeError("pgbouncer did not start: "
                               + process.stderr.read().decode()[-500:])
        yield url
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2, prepare_threshold=None) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def transactions_served(url: str) -> int:
    """How many transactions PgBouncer has passed to the server (its ``SHOW STATS``)."""
    admin = urlunsplit(urlsplit(url)._replace(path="/pgbouncer"))
    with psycopg.connect(admin, autocommit=True, prepare_threshold=None) as conn:
        cursor = conn.execute("SHOW STATS")
        columns = [c.name for c in cursor.description]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    return sum(int(row["total_xact_count"]) for row in rows if row["database"] != "pgbouncer")
