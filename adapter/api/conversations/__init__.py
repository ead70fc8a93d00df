"""The conversation protocol's routes under ``/v1/conversations``."""
