"""Benchmarks (`make bench`): each module measures one thing and returns a dict of figures."""
