"""`fraud-pipeline`: the command line over the package's functions.

Each subcommand declares its arguments here and an adapter turns them into a typed call of the
package's function, importing its module only when it runs: `fraud-pipeline --help` stays fast,
a command never pays for another's heavy imports, and no other module sees argparse.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from fraud_pipeline.security import log_masking
from fraud_pipeline.security.masking import mask_card_numbers


def _db_migrate(args: argparse.Namespace) -> int:
    from fraud_pipeline.registry.versions import set_up_database

    applied = set_up_database(args.database_url)
    if applied:
        for m in applied:
            print(f"applied {m.version:03d}_{m.name}")
    else:
        print("database is up to date (nothing to apply)")
    return 0


def _db_url(args: argparse.Namespace) -> int:
    from fraud_pipeline.storage.db import database_url

    print(database_url())
    return 0


def _db_drop(args: argparse.Namespace) -> int:
    from fraud_pipeline.storage.db import drop_project_databases

    dropped = drop_project_databases()
    print(f"dropped {', '.join(dropped)}" if dropped else "nothing to drop")
    return 0


def _db_archive(args: argparse.Namespace) -> int:
    from fraud_pipeline.storage.archive import main

    return main(args.older_than_days, batch_size=args.batch_size, max_batches=args.max_batches)


# --- adapters: parsed arguments -> typed keyword parameters (imports stay lazy) ----------------
def _train(args: argparse.Namespace) -> int:
    from fraud_pipeline.model.train import main

    return main(
        out=args.out,
        goal=args.goal,
        min_precision=args.min_precision,
        sample_rows=args.sample_rows,
        with_reviews=args.with_reviews,
    )


def _tune(args: argparse.Namespace) -> int:
    from fraud_pipeline.model.tune import main

    return main(sample_rows=args.sample_rows, threads=args.threads)


def _evaluate(args: argparse.Namespace) -> int:
    from fraud_pipeline.model.evaluate import main

    return main(data=args.data, as_json=args.json, since=args.since, split=args.split, out=args.out)


def _set_reader_password(args: argparse.Namespace) -> int:
    from fraud_pipeline.report.queries import set_reader_password_main

    return set_reader_password_main()


def _set_reviewer_password(args: argparse.Namespace) -> int:
    from fraud_pipeline.report.reviews import set_reviewer_password_main

    return set_reviewer_password_main()


def _audit(args: argparse.Namespace) -> int:
    """`audit verify`: the chain whole (0) or its first broken row named (1); `audit purge`."""
    from fraud_pipeline.config import get_settings
    from fraud_pipeline.security import audit
    from fraud_pipeline.storage import db

    with db.transaction() as cur:
        if args.audit_command == "purge":
            days = get_settings().audit_retention_days
            print(f"audit purge: {audit.purge(cur, days)} rows older than {days} days deleted")
            return 0
        verdict = audit.verify(cur)
    if verdict.ok:
        print(f"audit verify: {verdict.rows} rows, chain intact; head hash {verdict.head}")
        return 0
    print(f"audit verify: chain broken at row {verdict.broken_at}: {verdict.why}", file=sys.stderr)
    return 1


def _users(args: argparse.Namespace) -> int:
    """`users add|disable|reset-password|list`: accounts of the report (as the database owner,
    audited under the operating-system user's name)."""
    from fraud_pipeline.security import users
    from fraud_pipeline.storage import db

    actor = f"cli:{getpass.getuser()}"
    with db.transaction() as cur:
        if args.users_command == "list":
            for user in users.listed(cur):
                state = "disabled" if user.disabled else "enabled"
                print(f"{user.username:<30} {user.role:<8} {state}")
            return 0
        if args.users_command == "add":
            password = users.add(cur, args.username, args.role, actor)
        elif args.users_command == "reset-password":
            password = users.reset_password(cur, args.username, actor)
        else:
            users.disable(cur, args.username, actor)
            print(f"user {args.username} disabled")
            return 0
    print(f"user {args.username}: one-time password {password} (shown once; not stored)")
    return 0


def _rules(args: argparse.Namespace) -> int:
    from fraud_pipeline.rules.commands import rules_main

    return rules_main(
        args.rules_command,
        getattr(args, "name", ""),
        getattr(args, "expression", ""),
        by=args.by,
        description=getattr(args, "description", None),
        days=args.days,
    )


def _lists(args: argparse.Namespace) -> int:
    from fraud_pipeline.rules.commands import lists_main

    return lists_main(
        args.lists_command,
        getattr(args, "list", ""),
        getattr(args, "field", ""),
        getattr(args, "value", ""),
        entry_id=getattr(args, "entry_id", 0),
        note=getattr(args, "note", ""),
        by=args.by,
    )


def _serve_model(args: argparse.Namespace) -> int:
    """The container's entry point on the local artifacts: the same settings, from options."""
    from fraud_pipeline.serving.model_server import main

    environ = {
        **os.environ,
        "MODEL_SERVER_HOST": args.host,
        "SAGEMAKER_BIND_TO_PORT": str(args.port),
    }
    if args.model_dir or not environ.get("SM_MODEL_DIR"):
        from fraud_pipeline.config import get_settings

        environ["SM_MODEL_DIR"] = str(args.model_dir or get_settings().artifacts_dir)
    if args.workers:
        environ["SAGEMAKER_MODEL_SERVER_WORKERS"] = str(args.workers)
    if args.reload:  # `model promote`/`rollback` swap the model in place: one process only
        environ |= {"MODEL_SERVER_RELOAD": "1", "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
    return main(environ)


def _sagemaker(args: argparse.Namespace) -> int:
    from fraud_pipeline.serving.sagemaker_deploy import main as sagemaker_main

    command = args.sagemaker_command
    deploying = command in {"deploy", "update"}
    return sagemaker_main(
        command,
        artifacts_dir=Path(args.artifacts_dir) if deploying and args.artifacts_dir else None,
        endpoint_type=args.endpoint_type if deploying else None,
        wait=not args.no_wait if deploying else True,
        delete_models=args.models if command == "teardown" else False,
    )


def _model(args: argparse.Namespace) -> int:
    from fraud_pipeline.registry.commands import main as model_main

    command = args.model_command
    return model_main(
        command,
        artifacts_dir=Path(args.dir) if command == "register" else None,
        version=getattr(args, "version", None),
        reason=getattr(args, "reason", None),
        by=getattr(args, "by", None),
        rollout=not getattr(args, "no_rollout", False),
        override_gate=getattr(args, "override_gate", False),
        model_url=getattr(args, "model_url", None),
        state_dir=Path(args.state_dir) if getattr(args, "state_dir", None) else None,
    )


def _retrain(args: argparse.Namespace) -> int:
    from fraud_pipeline.retrain.run import main

    return main(window_days=args.window_days)


def _reconcile(args: argparse.Namespace) -> int:
    from fraud_pipeline import clock
    from fraud_pipeline.pipeline.backfill import reconcile

    reconcile(date.fromisoformat(args.day) if args.day else clock.yesterday())
    return 0


def _run_interval(args: argparse.Namespace) -> int:
    from fraud_pipeline.pipeline.backfill import main

    return main(
        start=args.start,
        end=args.end,
        yesterday=args.yesterday,
        chunk_minutes=args.chunk_minutes,
        alerts=not args.no_alerts,
    )


def _quarantine(args: argparse.Namespace) -> int:
    from fraud_pipeline.storage.quarantine import main

    return main(
        args.quarantine_command,
        ids=list(getattr(args, "ids", None) or []),
        limit=getattr(args, "limit", 50),
        reason=getattr(args, "reason", None),
    )


def _monitor(args: argparse.Namespace) -> int:
    if args.monitor_command == "build-reference":
        from fraud_pipeline.monitoring.build_reference import main as build_reference

        return build_reference(artifacts=args.artifacts)
    from fraud_pipeline.monitoring.health import main as check

    return check(day=args.day)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fraud-pipeline", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # --- storage -------------------------------------------------------------------------
    db = commands.add_parser("db", help="database administration")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    migrate = db_commands.add_parser("migrate", help="apply pending SQL migrations (idempotent)")
    migrate.add_argument("--database-url", help="default: DATABASE_URL / local / embedded")
    migrate.set_defaults(handler=_db_migrate)
    url = db_commands.add_parser("url", help="print the resolved database URL")
    url.set_defaults(handler=_db_url)
    drop = db_commands.add_parser(
        "drop", help="drop this checkout's databases (application and Airflow), only those"
    )
    drop.set_defaults(handler=_db_drop)
    archive = db_commands.add_parser(
        "archive", help="move payments older than the retention, with their reviews, to archive"
    )
    archive.add_argument("--older-than-days", type=int, help="default: RETENTION_DAYS")
    archive.add_argument("--batch-size", type=int, help="default: ARCHIVE_BATCH_SIZE")
    archive.add_argument("--max-batches", type=int, help="stop after this many (default: all)")
    archive.set_defaults(handler=_db_archive)

    # --- data and model --------------------------------------------------------------------
    train = commands.add_parser("train", help="train the XGBoost model and write the artifacts")
    train.add_argument("--out", help="artifacts directory (default: ARTIFACTS_DIR)")
    train.add_argument(
        "--goal",
        choices=["f1", "recall_at_precision"],
        default="recall_at_precision",
        help="how the decision threshold is chosen on the validation run's tune half",
    )
    train.add_argument(
        "--min-precision",
        type=float,
        default=0.9,
        help="with --goal recall_at_precision: the precision to keep",
    )
    train.add_argument("--sample-rows", type=int, help="train on the first N rows (quick runs)")
    train.add_argument(
        "--with-reviews",
        action="store_true",
        help="also learn from the analysts' verdicts on scored payments (PostgreSQL): confirmed"
        " frauds as frauds, false alarms as legitimate; train part only",
    )
    train.set_defaults(handler=_train)

    tune = commands.add_parser(
        "tune",
        help="fit each change tried against the final setting and print its figures on the"
        " validation run's tune half (a Markdown table)",
    )
    tune.add_argument("--sample-rows", type=int, help="on about N rows of each file (quick runs)")
    tune.add_argument("--threads", type=int, default=1, help="XGBoost threads (default 1)")
    tune.set_defaults(handler=_tune)

    evaluate = commands.add_parser("evaluate", help="score a Sparkov CSV and print the metrics")
    evaluate.add_argument("--data", required=True, help="Sparkov-format FILE.csv[.gz]")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument(
        "--since", help="measure only payments from this time on (earlier ones give history)"
    )
    evaluate.add_argument(
        "--split",
        help="a part of the training file: unseen-customers (held-out customers, from their first"
        " payment) or known-customers-later (training customers, from 2019-08-01); of the"
        " validation run: validation-tune (what training chose on) or validation-untouched",
    )
    evaluate.add_argument(
        "--out",
        help="directory for the PR-curve and confusion-matrix PNGs, the per-payment scores"
        " (scores.parquet) and the per-month figures (monthly.csv)",
    )
    evaluate.set_defaults(handler=_evaluate)

    # --- scoring ---------------------------------------------------------------------------
    serve_model = commands.add_parser("serve-model", help="local SageMaker-compatible model server")
    serve_model.add_argument("--host", default="127.0.0.1")
    serve_model.add_argument("--port", type=int, default=8080)
    serve_model.add_argument("--model-dir", help="default: SM_MODEL_DIR or ARTIFACTS_DIR")
    serve_model.add_argument(
        "--workers", type=int, help="default: SAGEMAKER_MODEL_SERVER_WORKERS or one per core"
    )
    serve_model.add_argument(
        "--reload",
        action="store_true",
        help="one worker, and POST /reload for `model promote`/`rollback` to swap the model",
    )
    serve_model.set_defaults(handler=_serve_model)

    sagemaker = commands.add_parser("sagemaker", help="deploy the model to a SageMaker endpoint")
    sagemaker_commands = sagemaker.add_subparsers(
        dest="sagemaker_command", required=True, metavar="SAGEMAKER_COMMAND"
    )
    for name, help_text in (
        ("deploy", "upload, create model + config, create or update the endpoint (idempotent)"),
        ("update", "move an existing endpoint to the current model version, without downtime"),
    ):
        step = sagemaker_commands.add_parser(name, help=help_text)
        step.add_argument("--artifacts-dir", help="default: ARTIFACTS_DIR")
        step.add_argument(
            "--endpoint-type",
            choices=["serverless", "realtime"],
            help="default: SAGEMAKER_ENDPOINT_TYPE",
        )
        step.add_argument("--no-wait", action="store_true", help="do not wait for InService")
    sagemaker_commands.add_parser("status", help="the endpoint's status, config and model version")
    teardown = sagemaker_commands.add_parser(
        "teardown", help="delete the endpoint and its configs (stops the cost)"
    )
    teardown.add_argument("--models", action="store_true", help="delete the SageMaker models too")
    sagemaker.set_defaults(handler=_sagemaker)

    model = commands.add_parser("model", help="the model registry: register, promote, roll back")
    model_commands = model.add_subparsers(dest="model_command", required=True, metavar="COMMAND")
    register = model_commands.add_parser("register", help="store verified artifacts: challenger")
    register.add_argument("dir", help="an artifacts folder (metadata.json and its files)")
    model_commands.add_parser("list", help="every registered version and its status")
    model_history = model_commands.add_parser(
        "history", help="every event of the model life cycle (append-only), oldest first"
    )
    model_history.add_argument("version", nargs="?", help="one version's events only")
    promote = model_commands.add_parser(
        "promote", help="any registered version (a retired one too) -> champion, served"
    )
    promote.add_argument("version")
    promote.add_argument(
        "--override-gate",
        action="store_true",
        help="promote a version that failed its retraining gate (needs --reason)",
    )
    rollback = model_commands.add_parser(
        "rollback", help="the champion before the current one, again (repeat: further back)"
    )
    rollout = model_commands.add_parser(
        "rollout", help="make the endpoint serve the current champion"
    )
    for step in (promote, rollback, rollout):
        step.add_argument(
            "--model-url",
            help="the model server to reload (default: the running stack's, from STATE_DIR's "
            "stack.json, else SAGEMAKER_ENDPOINT_URL, else the SageMaker endpoint)",
        )
        step.add_argument(
            "--state-dir", help="the stack's state folder (default LOCAL_STATE_DIR, .local)"
        )
    for step in (promote, rollback):
        step.add_argument("--reason")
        step.add_argument("--by", help="default: the OS user")
        step.add_argument(
            "--no-rollout",
            action="store_true",
            help="registry only: the endpoint keeps its model (runs wait until `model rollout`)",
        )
    model.set_defaults(handler=_model)

    retrain = commands.add_parser(
        "retrain",
        help="train a challenger on the recent window, measure it against the champion on the"
        " same latest days, promote it past the gate (RETRAIN_* settings)",
    )
    retrain.add_argument(
        "--window-days", type=int, help="days of payments_scored (default RETRAIN_WINDOW_DAYS)"
    )
    retrain.set_defaults(handler=_retrain)

    # --- pipeline --------------------------------------------------------------------------
    run_interval = commands.add_parser(
        "run-interval", help="run every pipeline step for [--start, --end) outside Airflow"
    )
    run_interval.add_argument("--start", help="ISO time with offset")
    run_interval.add_argument("--end", help="ISO time with offset")
    run_interval.add_argument(
        "--yesterday", action="store_true", help="yesterday in BUSINESS_TZ (the report's day)"
    )
    run_interval.add_argument("--chunk-minutes", type=int, default=60, help="interval per run")
    run_interval.add_argument("--no-alerts", action="store_true", help="do not send emails")
    run_interval.set_defaults(handler=_run_interval)

    reconcile = commands.add_parser(
        "reconcile",
        help="fetch a day again where it is landed; store payments later than the late bound",
    )
    reconcile.add_argument("--day", help="YYYY-MM-DD (default: yesterday in BUSINESS_TZ)")
    reconcile.set_defaults(handler=_reconcile)

    quarantine = commands.add_parser(
        "quarantine", help="inspect and re-queue the payments validation refused"
    )
    quarantine_commands = quarantine.add_subparsers(
        dest="quarantine_command", required=True, metavar="QUARANTINE_COMMAND"
    )
    listing = quarantine_commands.add_parser("list", help="the latest quarantined payments")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--reason", help="only reasons containing this text")
    show = quarantine_commands.add_parser("show", help="quarantined payments with their payload")
    show.add_argument("ids", type=int, nargs="+", metavar="ID")
    retry = quarantine_commands.add_parser(
        "retry", help="land quarantined payments again: the next run validates them anew"
    )
    retry.add_argument("ids", type=int, nargs="+", metavar="ID")
    quarantine.set_defaults(handler=_quarantine)

    # --- model monitoring -----------------------------------------------------------------
    monitor = commands.add_parser("monitor", help="model health: drift, alert volume, precision")
    monitor_commands = monitor.add_subparsers(
        dest="monitor_command", required=True, metavar="MONITOR_COMMAND"
    )
    build_reference = monitor_commands.add_parser(
        "build-reference",
        help="build the training reference of the model's artifacts and list it in metadata.json",
    )
    build_reference.add_argument("--artifacts", help="artifacts directory (default ARTIFACTS_DIR)")
    check = monitor_commands.add_parser(
        "check", help="compute and store one day's model health; warn by email once if breached"
    )
    check.add_argument("--day", help="YYYY-MM-DD (default: yesterday in BUSINESS_TZ)")
    monitor.set_defaults(handler=_monitor)

    # --- morning report --------------------------------------------------------------------
    report = commands.add_parser("report", help="the morning report's data and database role")
    report_commands = report.add_subparsers(
        dest="report_command", required=True, metavar="REPORT_COMMAND"
    )
    reader_password = report_commands.add_parser(
        "set-reader-password",
        help="let fraud_report_reader log in with REPORT_DATABASE_URL's password",
    )
    reader_password.set_defaults(handler=_set_reader_password)
    reviewer_password = report_commands.add_parser(
        "set-reviewer-password",
        help="let fraud_report_reviewer log in with REVIEW_DATABASE_URL's password",
    )
    reviewer_password.set_defaults(handler=_set_reviewer_password)

    audit = commands.add_parser("audit", help="the audit trail: verify its chain, apply retention")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    audit_commands.add_parser("verify", help="check the hash chain; name the first broken row")
    audit_commands.add_parser("purge", help="delete rows older than AUDIT_RETENTION_DAYS (365+)")
    audit.set_defaults(handler=_audit)

    users = commands.add_parser("users", help="the report's accounts (one per person) and roles")
    users_commands = users.add_subparsers(dest="users_command", required=True)
    add = users_commands.add_parser("add", help="a new account; prints its one-time password")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=["viewer", "analyst", "lead", "admin"])
    for name, text in (
        ("disable", "disable an account (never deleted: the audit trail names it)"),
        ("reset-password", "a new one-time password (enables the account again)"),
    ):
        users_commands.add_parser(name, help=text).add_argument("username")
    users_commands.add_parser("list", help="every account, its role and state")
    users.set_defaults(handler=_users)

    rules = commands.add_parser("rules", help="rules beside the model: write, backtest, shadow")
    rules.add_argument("--by", help="the lead's account (audited); default cli:<os user>")
    rules.add_argument("--days", type=int, default=7, help="backtest / measure window (days)")
    rules_commands = rules.add_subparsers(dest="rules_command", required=True)
    rules_commands.add_parser("list", help="every rule, its version, mode, hits and precision")
    rules_commands.add_parser("fields", help="the fields a rule may read, and their types")
    rules_commands.add_parser("check", help="parse an expression").add_argument("expression")
    for name, text in (("add", "a new rule, in draft"), ("edit", "a new version, back to draft")):
        change = rules_commands.add_parser(name, help=text)
        change.add_argument("name")
        change.add_argument("expression", help="e.g. 'amt > 800 and category == \"shopping_net\"'")
        change.add_argument("--description")
    for name, text in (
        ("backtest", "the rule on the last --days days of stored payments (figures stored)"),
        ("shadow", "evaluate and record, do not alert (needs a backtest)"),
        ("enable", "alert on what it flags (from shadow)"),
        ("disable", "stop evaluating it"),
        ("draft", "back to draft"),
    ):
        rules_commands.add_parser(name, help=text).add_argument("name")
    rules.set_defaults(handler=_rules)

    lists = commands.add_parser("lists", help="block and allow lists (merchant, card, category)")
    lists.add_argument("--by", help="the lead's account (audited); default cli:<os user>")
    lists_commands = lists.add_subparsers(dest="lists_command", required=True)
    lists_commands.add_parser("list", help="the entries in force")
    add_entry = lists_commands.add_parser("add", help="put a value on a list")
    add_entry.add_argument("list", choices=["block", "allow"])
    add_entry.add_argument("field", choices=["merchant", "card_token", "category"])
    add_entry.add_argument("value")
    add_entry.add_argument("--note", default="")
    remove_entry = lists_commands.add_parser("remove", help="take an entry off (kept, stamped)")
    remove_entry.add_argument("entry_id", type=int)
    lists.set_defaults(handler=_lists)

    return parser


def main(
    argv: Sequence[str] | None = None, *, parser: argparse.ArgumentParser | None = None
) -> int:
    """Run one command: `parser` is this CLI's, or the dev CLI's (`fraud_devstack.cli`)."""
    args = (parser or build_parser()).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    log_masking.install()  # the handlers basicConfig just added get the card-number filter
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        # The clear line; the traceback only with -v (it may quote data, and buries the line).
        detail = mask_card_numbers(str(error)) or type(error).__name__
        logging.getLogger("fraud_pipeline.cli").debug("traceback", exc_info=True)
        print(f"ERROR: {args.command}: {detail}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
