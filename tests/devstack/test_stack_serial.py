"""Tests that share something the whole machine has (a stack's ports and cores, a PostgreSQL
role) run one after the other on one xdist worker (`--dist loadgroup`). Proven on a real
pytest run with three workers. Both ways it silently failed before: the stack group was added by
a hook that ran after xdist's had read the marks, and pytest 9.2 breaks pytest-xdist 3.8's
groups altogether (pinned below 9.2), so stacks ran side by side and workers raced on a role."""

from __future__ import annotations

from collections import defaultdict

import pytest

from tests.support.processes import run_inner_pytest

INNER_TESTS = """
import os

import pytest


def _seen(kind):
    with open(os.environ["WORKERS_SEEN"], "a") as seen:
        seen.write(kind + " " + os.environ["PYTEST_XDIST_WORKER"] + "\\n")


@pytest.mark.parametrize("i", range(4))
def test_a_stack_test(launch_stack, i):
    _seen("stack")


@pytest.mark.parametrize("i", range(4))
@pytest.mark.xdist_group("cluster-roles")
def test_a_role_test(i):
    _seen("roles")


@pytest.mark.parametrize("i", range(4))
def test_any_other(i):
    _seen("other")
"""


@pytest.mark.slow
def test_stack_tests_and_role_tests_each_keep_to_one_worker(database_url, tmp_path):
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    seen = tmp_path / "workers_seen"
    inner = run_inner_pytest(
        tmp_path / "test_inner.py",
        *("-n", "3", "--dist", "loadgroup"),
        env={"WORKERS_SEEN": str(seen)},
        timeout=300,
    )
    assert inner.returncode == 0, inner.stdout[-3000:] + inner.stderr[-3000:]
    workers: dict[str, list[str]] = defaultdict(list)
    for line in seen.read_text().splitlines():
        kind, worker = line.split()
        workers[kind].append(worker)
    assert {kind: len(ran) for kind, ran in workers.items()} == {"stack": 4, "roles": 4, "other": 4}
    assert len(set(workers["stack"])) == 1, workers
    assert len(set(workers["roles"])) == 1, workers
