"""Helpline callbacks: the routes a kind declares (:class:`plugins.types.Callback`),
mounted, authenticated and applied by the core, so a plugin only says what a call
means (:mod:`.routes` mounts them, :mod:`.login` serves token logins, :mod:`.applying`
turns events into protocol operations)."""
