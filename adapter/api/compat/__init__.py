"""The seed's OpenCHS chat API (``/api/token/``, ``/api/chat/``), served for drop-in
compatibility with Weni's existing integration and mapped onto the conversation protocol."""
