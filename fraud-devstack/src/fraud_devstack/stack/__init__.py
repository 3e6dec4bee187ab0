"""Everything that exists only to run the system on one machine or simulate its neighbours.

Production code never imports this package (tests/code/test_layout.py checks it)."""
