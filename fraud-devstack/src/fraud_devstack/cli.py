"""`fraud-dev`: the commands that run the system on one machine (`make run`, `make bench`).

The production command line (`fraud-pipeline`) stays free of them: the dev stack, the simulators
and the benches live in this package, which no production image installs. Same conventions as
`fraud_pipeline.cli`: each adapter imports its module only when it runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from fraud_pipeline import cli


def _airflow(args: argparse.Namespace) -> int:
    from fraud_devstack.stack.airflow_local import cli
    from fraud_pipeline.config import get_settings

    arguments = args.arguments[1:] if args.arguments[:1] == ["--"] else args.arguments
    state_dir = Path(args.state_dir) if args.state_dir else get_settings().local_state_dir
    return cli(state_dir, arguments)


def _run(args: argparse.Namespace) -> int:
    from fraud_devstack.stack.local_stack import main

    services = ("payments", "model", "smtp", "inbox", "airflow", "report")
    ports = {name: port for name in services if (port := getattr(args, f"{name}_port")) is not None}
    return main(
        state_dir=args.state_dir,
        free_ports=args.free_ports,
        ports=ports,
        only=args.only,
        backfill=not args.no_backfill,
        backfill_hours=args.backfill_hours,
        history_days=args.history_days,
        payments_rate=args.payments_rate,
        status_every=args.status_every,
    )


def _serve_mail(args: argparse.Namespace) -> int:
    from fraud_devstack.stack.inbox_web import main

    return main(host=args.host, port=args.port, web_port=args.web_port, maildir=args.maildir)


def _serve_payments(args: argparse.Namespace) -> int:
    from fraud_devstack.stack.payments_api import main

    return main(
        host=args.host,
        port=args.port,
        source=args.source,
        csv=args.csv,
        rate=args.rate,
        speed=args.speed,
        seed=args.seed,
        late_share=args.late_share,
        rates=args.rates,
        step_minutes=args.step_minutes,
        replay_from=args.replay_from,
    )


def _generate(args: argparse.Namespace) -> int:
    from fraud_devstack.stack.generate import main

    return main(
        out=args.out, rows=args.rows, days=args.days, end=args.end, rate=args.rate, seed=args.seed
    )


def _demo(args: argparse.Namespace) -> int:
    from fraud_devstack.stack.demo import main

    return main(day=args.day, source=args.source, rate=args.rate, seed=args.seed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fraud-dev", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # --- local stack (make run) ------------------------------------------------------------
    airflow = commands.add_parser(
        "airflow",
        help="the Airflow CLI on the local stack's state, e.g. `airflow -- dags list-runs ...`",
    )
    airflow.add_argument("--state-dir", help="the stack's state directory (default .local)")
    airflow.add_argument("arguments", nargs=argparse.REMAINDER, help="passed to `airflow`")
    airflow.set_defaults(handler=_airflow)
    run = commands.add_parser("run", help="start the whole pipeline locally until Ctrl-C")
    run.add_argument("--state-dir", help="PostgreSQL data, Airflow, mail, logs (default .local)")
    run.add_argument("--free-ports", action="store_true", help="pick free ports for everything")
    for service in ("payments", "model", "smtp", "inbox", "airflow", "report"):
        run.add_argument(f"--{service}-port", type=int, help="override the configured port")
    run.add_argument("--only", help="comma-separated compose service names to start")
    run.add_argument(
        "--no-backfill", action="store_true", help="skip back-filling yesterday and today"
    )
    run.add_argument("--backfill-hours", type=int, default=24, help="of yesterday, up to 24")
    run.add_argument(
        "--history-days",
        type=int,
        help="whole days before those back-filled, loaded too so that the cards have a history "
        "(default: a week; 0: none)",
    )
    run.add_argument(
        "--payments-rate", type=float, default=60.0, help="payments per minute the API generates"
    )
    run.add_argument("--status-every", type=float, default=30.0, help="seconds between statuses")
    run.set_defaults(handler=_run)

    serve_mail = commands.add_parser("serve-mail", help="local SMTP catcher + web inbox")
    serve_mail.add_argument("--host", default="127.0.0.1")
    serve_mail.add_argument("--port", type=int, help="SMTP port (default SMTP_PORT, 8025)")
    serve_mail.add_argument("--web-port", type=int, help="web inbox (default INBOX_PORT, 8026)")
    serve_mail.add_argument("--maildir", help="folder of .eml files (default .local/mail)")
    serve_mail.set_defaults(handler=_serve_mail)

    # --- simulated neighbours and data --------------------------------------------------------
    serve_payments = commands.add_parser("serve-payments", help="the payments API server")
    serve_payments.add_argument("--host", default="127.0.0.1")
    serve_payments.add_argument("--port", type=int, default=8000)
    serve_payments.add_argument("--source", choices=["generator", "csv"], default="generator")
    serve_payments.add_argument("--csv", help="with --source csv: the Sparkov CSV to replay")
    serve_payments.add_argument("--rate", type=float, default=60.0, help="generator: payments/min")
    serve_payments.add_argument("--speed", type=float, default=1.0, help="csv: replay speed-up")
    serve_payments.add_argument("--seed", type=int, default=42)
    serve_payments.add_argument(
        "--late-share", type=float, help="share delivered late (default PAYMENTS_LATE_SHARE)"
    )
    serve_payments.add_argument(
        "--rates",
        type=_rates,
        help="csv: replay at these payments/min in turn, each for --step-minutes (e.g. 20000,40000)",
    )
    serve_payments.add_argument("--step-minutes", type=int, default=10, help="csv: per rate")
    serve_payments.add_argument(
        "--replay-from",
        help="csv with --rates: when the first rate starts (ISO; default next minute)",
    )
    serve_payments.set_defaults(handler=_serve_payments)

    generate = commands.add_parser("generate", help="write realistic Sparkov-format payments")
    size = generate.add_mutually_exclusive_group()
    size.add_argument("--rows", type=int, help="the last N payments before --end")
    size.add_argument("--days", type=float, default=1.0, help="days of payments before --end")
    generate.add_argument("--end", help="end of the period (default: today 00:00)")
    generate.add_argument("--rate", type=float, default=60.0, help="payments per minute")
    generate.add_argument("--seed", type=int, default=42)
    generate.add_argument("--out", required=True, help="FILE.csv or FILE.csv.gz")
    generate.set_defaults(handler=_generate)

    demo = commands.add_parser(
        "demo", help="store a realistic day: payments scored by the real model"
    )
    demo.add_argument("--day", help="YYYY-MM-DD (default: yesterday in BUSINESS_TZ)")
    demo.add_argument(
        "--source",
        choices=["sparkov", "generator"],
        default="sparkov",
        help="held-out Sparkov weeks moved onto the day (default), or our generator",
    )
    demo.add_argument("--rate", type=float, default=10.0, help="generator: payments per minute")
    demo.add_argument("--seed", type=int, default=42)
    demo.set_defaults(handler=_demo)
    # --- benchmarks ------------------------------------------------------------------------
    bench = commands.add_parser("bench", help="throughput and latency benchmarks (make bench)")
    bench.add_argument("--quick", action="store_true", help="small sizes: checks the harness")
    bench.add_argument("--no-live", action="store_true", help="skip the local Airflow latency run")
    bench.add_argument("--out", help="results file (default bench/results.json)")
    bench.add_argument("--chart", help="chart PNG (default docs/bench.png)")

    def _bench(args: argparse.Namespace) -> int:
        from fraud_devstack.bench.run import main as bench_main

        return bench_main(
            quick=args.quick,
            with_live=not args.no_live,
            out=Path(args.out) if args.out else None,
            chart_path=Path(args.chart) if args.chart else None,
        )

    bench.set_defaults(handler=_bench)
    capacity = commands.add_parser(
        "bench-capacity",
        help="the per-minute volume the live stack sustains, at rising rates (make bench-capacity)",
    )
    capacity.add_argument(
        "--rates",
        type=_rates,
        default=[20_000.0, 40_000.0, 60_000.0, 80_000.0],
        help="payments per minute, rising (default 20000,40000,60000,80000)",
    )
    capacity.add_argument("--minutes", type=int, default=10, help="minutes per rate (default 10)")
    capacity.add_argument("--out", help="results file to merge into (default bench/results.json)")

    def _bench_capacity(args: argparse.Namespace) -> int:
        from pathlib import Path

        from fraud_devstack.bench.capacity import main as capacity_main

        return capacity_main(
            rates=args.rates, minutes=args.minutes, out=Path(args.out) if args.out else None
        )

    capacity.set_defaults(handler=_bench_capacity)
    return parser


def _rates(text: str) -> list[float]:
    """`20000,40000`: payments per minute."""
    return [float(part) for part in text.split(",") if part.strip()]


def module_with(command: str) -> str | None:
    """The CLI module (`python -m` name) that has this subcommand: the production one or this."""
    for module, parser in (("fraud_pipeline.cli", cli.build_parser()), (__name__, build_parser())):
        for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
            if command in (getattr(action, "choices", None) or {}):
                return module
    return None


def command_line(*args: str) -> list[str]:
    """`fraud-pipeline ARGS` or `fraud-dev ARGS`, whichever has ARGS[0], run by this interpreter
    (no activated venv or PATH needed)."""
    module = module_with(args[0])
    if module is None:
        raise ValueError(f"no CLI has the command {args[0]!r}")
    return [sys.executable, "-m", module, *args]


def main(argv: Sequence[str] | None = None) -> int:
    """The production CLI's runner (logging, card masking, clear errors) over this parser."""
    return cli.main(argv, parser=build_parser())


if __name__ == "__main__":
    sys.exit(main())
