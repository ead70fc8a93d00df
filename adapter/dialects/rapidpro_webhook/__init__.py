"""The RapidPro webhook dialect: Call Webhook nodes start, message, close and read a
conversation (``/v1/conversations``) and open cases (``/v1/cases``)."""
