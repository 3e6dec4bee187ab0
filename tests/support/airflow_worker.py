"""The interpreter that runs the tests' Airflow code, request after request (`airflow_runs`).

Started once per test worker and AIRFLOW_HOME: Airflow, the DAGs' imports and the package are
imported once (5-8 s a time otherwise), then each request is one JSON line on stdin,
`{"code": str, "env": {...}}`. The process environment becomes `env` (the settings' cache and
the loaded models are forgotten), the code runs with file descriptors 1 and 2 sent to a file
(Airflow's log handlers included), and one JSON line answers on the original stdout:
`{"ok": bool, "output": str}`; `ok` is false when the code raised (its traceback is in output).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback


def run(code: str) -> tuple[bool, str]:
    """Run `code` with fds 1 and 2 captured: (it returned, what it wrote)."""
    with tempfile.TemporaryFile() as captured:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(captured.fileno(), 1)
        os.dup2(captured.fileno(), 2)
        ok = True
        try:
            exec(compile(code, "<test code>", "exec"), {"__name__": "__airflow_test__"})  # noqa: S102
        except BaseException:  # SystemExit included: the answer says the code failed
            ok = False
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, original in zip((1, 2), saved, strict=True):
                os.dup2(original, fd)
                os.close(original)
        captured.seek(0)
        return ok, captured.read().decode("utf-8", "replace")


def main() -> None:
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # nothing but answers on the answer channel, whatever prints between requests
    import airflow.sdk  # noqa: F401  (the seconds this process exists to pay once)
    from airflow.dag_processing.dagbag import DagBag  # noqa: F401

    import fraud_pipeline.pipeline.steps  # noqa: F401
    from fraud_pipeline.config import get_settings
    from fraud_pipeline.registry.models import forget_models

    for line in sys.stdin:
        request = json.loads(line)
        os.environ.clear()
        os.environ.update(request["env"])
        get_settings.cache_clear()
        forget_models()
        ok, output = run(request["code"])
        answers.write(json.dumps({"ok": ok, "output": output}) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
