"""The seed's OpenCHS chat API (``/api/token/``, ``/api/chat/``, also under ``/open/api/``),
served as a dialect of its own for Weni's existing integration."""

#: Its blueprints: the seed's ``/api/...`` and its own ``/open/api/...`` URLs.
BLUEPRINT_NAME = "openchs_compat"
SEED_BLUEPRINT_NAME = "openchs_compat_open"
