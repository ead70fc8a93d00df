"""Case creation, as the chatbot sees it: ``/v1/cases``."""
