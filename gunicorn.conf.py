"""Production gunicorn settings: one deployment per site (or one for many).

Sync workers: a request only parses, commits and enqueues; it never waits on a
helpline, so a few sync workers per core answer RapidPro well inside its 15 s.
Override any setting with GUNICORN_CMD_ARGS or the command line.
"""

import os

bind = os.environ.get("ADAPTER_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("ADAPTER_WEB_WORKERS", "2"))
worker_class = "sync"
timeout = 30
graceful_timeout = 20
keepalive = 5
max_requests = 10000  # recycle workers now and then: bounded memory
max_requests_jitter = 1000
accesslog = None  # the app logs each request itself, with ids only
errorlog = "-"
# Trusted for the scheme (X-Forwarded-Proto) only: gunicorn keeps REMOTE_ADDR the
# socket's peer. Behind a proxy, set ADAPTER_PROXY_FIX_X_FOR (or --proxy-protocol) so the
# login limits see the client's address, not the proxy's.
forwarded_allow_ips = os.environ.get("ADAPTER_FORWARDED_ALLOW_IPS", "127.0.0.1")
