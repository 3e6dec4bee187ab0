"""Switches that cannot half-happen, any version reachable, every switch recorded (issue 33).

Promote, rollback and roll-out reach the model server of the stack they belong to; the registry
changes only together with a successful reload (else it is left as it was and the command says
so); a retired version can be promoted again; a challenger that failed its gate needs
`--override-gate` and a reason; the append-only history keeps every event with its original
reason. Real PostgreSQL and real model servers (in-process, and a `make run --free-ports` stack).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess

import numpy as np
import psycopg2
import pytest
import requests

from fraud_pipeline.cli import main
from fraud_pipeline.config import get_settings
from fraud_pipeline.model.artifacts import load_model, read_metadata
from fraud_pipeline.registry import versions
from fraud_pipeline.registry.rollout import deployer, endpoint_url, served_status
from fraud_pipeline.registry.store import LocalStore
from fraud_pipeline.registry.versions import set_up_database
from fraud_pipeline.security import audit
from fraud_pipeline.serving import model_server
from tests.support.registry import model_version_copy, tamper
from tests.support.servers import serve_app

COMMITTED = str(read_metadata(get_settings().artifacts_dir)["model_version"])


def served_version(url: str) -> str:
    """The version the model server at `url` scores with (its custom attribute)."""
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((1, len(load_model().feature_names)), dtype=np.float32))
    response = requests.post(
        f"{url}/invocations",
        data=buffer.getvalue(),
        headers={"Content-Type": "application/x-npy", "Accept": "text/csv"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.headers["x-amzn-sagemaker-custom-attributes"].split("model_version=")[1]


def reloadable_server():
    """The real model server with POST /reload open, on the committed model."""
    app = model_server.build_app(get_settings().artifacts_dir, reloadable=True)
    return serve_app(app)


def registered(conn, tmp_path, monkeypatch, *names: str) -> LocalStore:
    """The committed model as champion, and `names` registered as challengers; the store is
    the MODEL_STORE the commands read."""
    store = LocalStore(tmp_path / "store")
    for name in names:
        versions.register(conn, store, model_version_copy(tmp_path / name, name), "test")
    monkeypatch.setenv("MODEL_STORE", str(store.root))
    get_settings.cache_clear()
    return store


def state(conn) -> list[tuple[str, str]]:
    return [(row.version, row.status) for row in versions.list_versions(conn)]


def test_a_failed_reload_leaves_the_registry_as_it_was(
    clean_db, conn, tmp_path, monkeypatch, capsys
):
    set_up_database(clean_db)
    store = registered(conn, tmp_path, monkeypatch, "xgb-v2", "xgb-v3")
    before = state(conn)
    events = len(versions.history(conn))
    # A server that cannot reload (started without --reload): 404.
    fixed = serve_app(model_server.build_app(get_settings().artifacts_dir))
    reloadable = reloadable_server()
    nobody = "http://127.0.0.1:9"
    try:
        with pytest.raises(versions.SwitchError, match="registry is unchanged"):
            deploy = deployer(get_settings(), store, model_url=fixed.url)
            versions.promote(conn, "xgb-v2", "alice", "try", deploy=deploy)
        assert state(conn) == before
        # The CLI says so and exits 1.
        assert main(["model", "promote", "xgb-v2", "--model-url", fixed.url]) == 1
        assert "registry is unchanged" in capsys.readouterr().out
        assert state(conn) == before
        assert main(["model", "promote", "xgb-v3", "--model-url", reloadable.url]) == 0
        after = state(conn)
        # A rollback whose reload fails keeps xgb-v3 the champion, served.
        assert main(["model", "rollback", "--model-url", nobody]) == 1
        assert f"{COMMITTED} is not the champion" in capsys.readouterr().out
        assert state(conn) == after and served_version(reloadable.url) == "xgb-v3"
        # A server that refuses the artifact (altered in the store): the same.
        tamper(tmp_path / "store" / "xgb-v2" / "model.tar.gz")
        assert main(["model", "promote", "xgb-v2", "--model-url", reloadable.url]) == 1
        assert state(conn) == after and served_version(reloadable.url) == "xgb-v3"
        assert main(["model", "rollout", "--model-url", nobody]) == 1
        assert state(conn) == after
    finally:
        fixed.stop()
        reloadable.stop()
        get_settings.cache_clear()
    failed = [(e.version, e.event) for e in versions.history(conn)[events:]]
    assert failed.count(("xgb-v2", "switch_failed")) == 3
    assert failed.count((COMMITTED, "switch_failed")) == 1
    reasons = [e.reason for e in versions.history(conn) if e.event == "switch_failed"]
    assert "cannot reload" in reasons[0] and "no model server" in reasons[2]


def test_any_version_reachable_and_rollback_walks_back(clean_db, conn, tmp_path, monkeypatch):
    set_up_database(clean_db)
    store = registered(conn, tmp_path, monkeypatch, "xgb-v2", "xgb-v3")
    server = reloadable_server()
    deploy = deployer(get_settings(), store, model_url=server.url)
    try:
        versions.promote(conn, "xgb-v2", "alice", "v2 first", deploy=deploy)
        versions.promote(conn, "xgb-v3", "alice", "then v3", deploy=deploy)
        assert served_version(server.url) == "xgb-v3"
        assert versions.rollback(conn, "bob", deploy=deploy).version == "xgb-v2"
        assert served_version(server.url) == "xgb-v2"
        # A second rollback goes one step further back: the committed model, not v3 again.
        assert versions.rollback(conn, "bob", deploy=deploy).version == COMMITTED
        assert served_version(server.url) == COMMITTED
        with pytest.raises(versions.RegistryError, match="no earlier champion"):
            versions.rollback(conn, "bob", deploy=deploy)
        # A retired version is promoted again, and served.
        again = versions.promote(conn, "xgb-v3", "carol", "v3 was fine after all", deploy=deploy)
        assert (again.version, again.status) == ("xgb-v3", "champion")
        assert served_version(server.url) == "xgb-v3"
        assert versions.rollback(conn, "bob", deploy=deploy).version == COMMITTED
    finally:
        server.stop()
        get_settings.cache_clear()


def _fail_gate(conn, version: str) -> None:
    gate = {"passed": False, "reason": "stays challenger: PR-AUC gain -0.0100"}
    versions.record_evaluation(conn, version, {"gate": gate}, gate["reason"])


def test_a_gate_failed_challenger_needs_the_override(clean_db, conn, tmp_path, monkeypatch, capsys):
    set_up_database(clean_db)
    registered(conn, tmp_path, monkeypatch, "xgb-weak")
    _fail_gate(conn, "xgb-weak")
    with pytest.raises(versions.RegistryError, match=r"failed its gate.*--override-gate"):
        versions.promote(conn, "xgb-weak", "alice", "looks fine")
    with pytest.raises(versions.RegistryError, match="needs a --reason"):
        versions.promote(conn, "xgb-weak", "alice", override_gate=True)
    try:
        assert main(["model", "promote", "xgb-weak", "--no-rollout"]) == 1
        assert "failed its gate" in capsys.readouterr().out
        assert versions.champion(conn).version == COMMITTED
        assert (
            main(
                [
                    "model",
                    "promote",
                    "xgb-weak",
                    "--no-rollout",
                    "--override-gate",
                    "--reason",
                    "the holdout week was a holiday",
                    "--by",
                    "lead",
                ]
            )
            == 0
        )
    finally:
        get_settings.cache_clear()
    assert versions.champion(conn).version == "xgb-weak"
    promoted = [e for e in versions.history(conn, "xgb-weak") if e.event == "promoted"]
    assert len(promoted) == 1 and promoted[0].actor == "lead"
    assert promoted[0].reason.startswith("the holdout week was a holiday (gate overridden")
    assert promoted[0].metrics["override_gate"] is True


def test_the_history_keeps_every_event_with_its_original_reason(
    clean_db, conn, tmp_path, monkeypatch, capsys
):
    set_up_database(clean_db)
    registered(conn, tmp_path, monkeypatch, "xgb-new")
    gate = {"passed": True, "reason": "passed the gate: PR-AUC 0.9564 vs 0.9457"}
    versions.record_evaluation(conn, "xgb-new", {"gate": gate}, None)
    versions.promote(conn, "xgb-new", "fraud_retrain", gate["reason"])
    versions.rollback(conn, "bob", "alerts doubled overnight")
    versions.promote(conn, "xgb-new", "carol", "the alerts were a real burst")
    got = [(e.version, e.event, e.actor, e.reason) for e in versions.history(conn)]
    assert got == [
        (COMMITTED, "registered", "db migrate", None),
        (COMMITTED, "promoted", "db migrate", "the committed model, the first champion"),
        ("xgb-new", "registered", "test", got[2][3]),
        ("xgb-new", "gate_passed", "fraud_retrain", gate["reason"]),
        ("xgb-new", "promoted", "fraud_retrain", gate["reason"]),
        (COMMITTED, "retired", "fraud_retrain", f"replaced by xgb-new: {gate['reason']}"),
        (COMMITTED, "rolled_back", "bob", "alerts doubled overnight"),
        ("xgb-new", "retired", "bob", "replaced by " + COMMITTED + ": alerts doubled overnight"),
        ("xgb-new", "promoted", "carol", "the alerts were a real burst"),
        (COMMITTED, "retired", "carol", "replaced by xgb-new: the alerts were a real burst"),
    ]
    assert [
        e.previous for e in versions.history(conn) if e.event in ("promoted", "rolled_back")
    ] == [None, COMMITTED, "xgb-new", COMMITTED]
    # Each event is in the audit trail too (issue 29's), in order, and the chain holds.
    with conn, conn.cursor() as cur:
        audited = [e for e in reversed(audit.recent(cur)) if e.action.startswith("model.")]
        assert audit.verify(cur).ok
    assert [(e.target, e.action, e.actor, e.detail["reason"]) for e in audited] == [
        (version, f"model.{event}", actor, reason) for version, event, actor, reason in got
    ]
    # Nothing overwrites it, whatever the SQL.
    for statement in ("UPDATE model_events SET reason = 'edited'", "DELETE FROM model_events"):
        with pytest.raises(psycopg2.errors.InsufficientPrivilege), conn, conn.cursor() as cur:
            cur.execute(statement)
    assert main(["model", "history", "xgb-new"]) == 0
    out = capsys.readouterr().out
    assert "gate_passed" in out and "passed the gate: PR-AUC 0.9564 vs 0.9457" in out


@pytest.mark.slow
def test_switches_reach_the_stack_on_free_ports(
    clean_db, conn, tmp_path, monkeypatch, launch_stack, capsys
):
    """`make run --free-ports` serves the model on a port of its own, recorded in its
    stack.json: promote, rollback and rollout from a shell reload that server, not whatever
    listens at SAGEMAKER_ENDPOINT_URL (here another model server, left untouched)."""
    set_up_database(clean_db)
    registered(conn, tmp_path, monkeypatch, "xgb-v2")
    decoy = reloadable_server()
    monkeypatch.setenv("SAGEMAKER_ENDPOINT_URL", decoy.url)
    state_dir = tmp_path / "state"
    stack = launch_stack(state_dir, "--free-ports", "--no-backfill", "--only", "sagemaker-local")
    try:
        url = stack.wait_for_state()["urls"]["model"]
        assert url != decoy.url and served_version(url) == COMMITTED
        monkeypatch.setenv("LOCAL_STATE_DIR", str(state_dir))  # the shell's settings
        get_settings.cache_clear()
        assert main(["model", "promote", "xgb-v2", "--reason", "better", "--by", "alice"]) == 0
        assert served_version(url) == "xgb-v2"
        assert main(["model", "rollback", "--reason", "too many alerts"]) == 0
        assert served_version(url) == COMMITTED
        assert main(["model", "promote", "xgb-v2", "--no-rollout", "--reason", "later"]) == 0
        assert served_version(url) == COMMITTED
        assert main(["model", "rollout"]) == 0
        assert served_version(url) == "xgb-v2"
        assert served_version(decoy.url) == COMMITTED  # never reached
        stack.stop(signal.SIGTERM)
    finally:
        decoy.stop()
        get_settings.cache_clear()
    out = capsys.readouterr().out
    assert f"model server {url} now serves xgb-v2" in out


def test_the_status_line_names_the_served_model_and_a_mismatch():
    server = serve_app(model_server.build_app(get_settings().artifacts_dir))
    url = server.url
    try:
        assert served_status(url, COMMITTED) == f"model: {COMMITTED}"
        assert served_status(url, "xgb-new") == (
            f"model: ! serves {COMMITTED}, the champion is xgb-new: runs wait "
            "(`fraud-pipeline model rollout`)"
        )
    finally:
        server.stop()
    assert served_status(url, None).startswith("model: ? (no answer from")


def test_a_stack_file_names_the_endpoint_while_its_supervisor_lives(tmp_path):
    """stack.json of a running stack wins over SAGEMAKER_ENDPOINT_URL; a left-over one (its
    supervisor gone) is ignored; --model-url wins over both."""
    settings = get_settings().model_copy(
        update={"local_state_dir": tmp_path, "sagemaker_endpoint_url": "http://127.0.0.1:8080"}
    )
    assert endpoint_url(settings) == "http://127.0.0.1:8080"
    gone = subprocess.Popen(["true"])
    gone.wait()
    for pid, expected in ((gone.pid, "http://127.0.0.1:8080"), (os.getpid(), "http://127.0.0.1:5")):
        state = {"supervisor_pid": pid, "urls": {"model": "http://127.0.0.1:5"}}
        (tmp_path / "stack.json").write_text(json.dumps(state))
        assert endpoint_url(settings) == expected
    assert endpoint_url(settings, "http://127.0.0.1:7") == "http://127.0.0.1:7"
