"""Sandbox peers: small HTTP simulators of the systems on either side of the adapter.

They let tests, benchmarks and the demo exercise the adapter over real HTTP without
contacting a real helpline or a real RapidPro:

- ``helpline``: an OpenCHS-compatible helpline (token call, ``msg/``, case resources)
  with simulated counsellors who hunt, answer, reply and close through the adapter's
  callbacks (see :mod:`adapter.sandbox.helpline`, factory ``create_helpline_app``).
- ``rapidpro``: the RapidPro API v2 subset the adapter calls back (``flow_starts``,
  ``broadcasts``) with token auth and throttling (see :mod:`adapter.sandbox.rapidpro`,
  factory ``create_rapidpro_app``).
- ``mailroom``: Weni mailroom's generic-ticketer side, the far peer of the
  ``weni-ticketer`` dialect: opens, forwards, closes, reopens and sends history to a
  ticketer and judges its signed callbacks as mailroom does (see
  :mod:`adapter.sandbox.mailroom`, factory ``create_mailroom_app``).

Run one with ``python -m adapter.sandbox helpline|rapidpro|mailroom --port N``. Tests drive and
inspect them through the unauthenticated ``/_sandbox/`` control API, most easily with
:class:`adapter.sandbox.control.SandboxClient`; :mod:`adapter.sandbox.process` starts
and stops them (and any other server) as real subprocesses.

This package deliberately imports nothing from the rest of ``adapter`` (only flask,
requests and the standard library), so the simulators stay independent of the code
they are used to test.
"""
