"""RapidPro's API, as we call it back: replies and events to a contact (broadcasts or
flow starts), and the read-only checks of ``sites check``. Shared by the dialects whose
chatbot is a RapidPro workspace."""
