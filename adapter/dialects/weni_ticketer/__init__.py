"""The ``weni_ticketer`` dialect: Weni mailroom's generic ticketer contract.

Mailroom opens a ticket at ``POST /v1/tickets`` and forwards the child's messages, the
history, closes and reopens under ``/v1/tickets/{external_id}/…``; the counsellor's side
goes back as signed callbacks under the ticket's ``metadata.webhook_base_url``
(``docs/weni-ticketer.md``).
"""

BLUEPRINT_NAME = "weni_tickets"
