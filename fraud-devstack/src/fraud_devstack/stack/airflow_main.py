"""`python -m fraud_devstack.stack.airflow_main ARGS`: `airflow ARGS` that exits promptly.

Why: once `airflow api-server` or `airflow scheduler` has shut down cleanly, CPython's own
finalisation garbage-collects the hundreds of MB of objects Airflow, FastAPI and pydantic keep
alive, which took 3-8 s of a Ctrl-C on 2 cores (py-spy: the main thread in `gc_collect_main`
after uvicorn's "Finished server process"). Freezing the heap as the last exit handler (after
Airflow's own handlers, which still run) skips that pointless final sweep: the memory goes back
to the system with the process either way.
"""

from __future__ import annotations

import atexit
import gc

from airflow.__main__ import main


def _skip_final_collection() -> None:
    gc.freeze()  # frozen objects are never collected, also not by the interpreter's last pass


if __name__ == "__main__":
    atexit.register(_skip_final_collection)  # registered first: runs after every other handler
    main()
