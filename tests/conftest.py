"""Shared pytest fixtures; each family lives in its own module and is imported here."""

from hubmock import hub_env, hub_server  # noqa: F401
