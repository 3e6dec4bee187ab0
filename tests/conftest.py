"""Every shared fixture and hook is in one plugin: tests/support/fixtures.py."""

pytest_plugins = ["tests.support.fixtures"]
