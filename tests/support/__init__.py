"""Test support: real servers and small helpers shared by the suites."""
