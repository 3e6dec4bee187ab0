"""Promotion and rollback on a real local model server process (`serve-model --reload`): the
registry's champion is swapped in while threads keep scoring; no request fails, every answer
carries one of the two versions, and a tampered artifact is refused while the old model serves."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import requests

from fraud_pipeline.cli import main
from fraud_pipeline.config import get_settings
from fraud_pipeline.model.artifacts import read_metadata
from fraud_pipeline.net import free_port, wait_for_port
from fraud_pipeline.registry import versions
from fraud_pipeline.registry.rollout import RolloutError, reload_local_server, roll_out
from fraud_pipeline.registry.store import LocalStore
from fraud_pipeline.registry.versions import set_up_database
from tests.support.registry import model_version_copy, tamper


def _score(url: str, body: bytes) -> tuple[int, str]:
    response = requests.post(
        f"{url}/invocations",
        data=body,
        headers={"Content-Type": "application/x-npy", "Accept": "text/csv"},
        timeout=30,
    )
    return response.status_code, response.headers.get("x-amzn-sagemaker-custom-attributes", "")


@pytest.mark.slow
def test_swaps_under_load_never_fail_a_request(clean_db, conn, tmp_path, monkeypatch, capsys):
    set_up_database(clean_db)  # the committed model: the first champion
    committed = versions.champion(conn)
    assert committed is not None
    store = LocalStore(tmp_path / "store")
    challenger = versions.register(conn, store, model_version_copy(tmp_path / "v2", "xgb-v2"))
    features = len(read_metadata(get_settings().artifacts_dir)["feature_names"])
    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(0).random((50, features), dtype=np.float32))
    body = buffer.getvalue()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = get_settings().model_copy(update={"sagemaker_endpoint_url": url})
    cli = str(Path(sys.executable).with_name("fraud-pipeline"))
    log = tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [
                cli,
                "serve-model",
                "--reload",
                "--port",
                str(port),
                "--model-dir",
                committed.location,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    answers: list[tuple[int, str]] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                answers.append(_score(url, body))
            except requests.RequestException as error:
                answers.append((0, repr(error)))

    clients = [threading.Thread(target=client) for _ in range(4)]
    try:
        wait_for_port("127.0.0.1", port, timeout=60)
        for thread in clients:
            thread.start()
        monkeypatch.setenv("MODEL_STORE", str(store.root))  # the CLI's settings
        monkeypatch.setenv("SAGEMAKER_ENDPOINT_URL", url)
        get_settings.cache_clear()
        assert main(["model", "promote", "xgb-v2", "--by", "alice"]) == 0
        assert f"model server {url} now serves xgb-v2" in capsys.readouterr().out
        expected = ["xgb-v2"]
        for turn in range(5):  # a rollback, then the retired version promoted again
            seen = len(answers)
            if turn % 2 == 0:
                back = versions.rollback(conn, "bob")
            else:
                back = versions.promote(conn, "xgb-v2", "alice", "served again")
            expected.append(back.version)
            assert f"now serves {back.version}" in roll_out(
                versions.fetch_verified(store, back), back, settings
            )
            while len(answers) < seen + 20:  # some requests on each model before the next swap
                assert server.poll() is None, log.read_text()
                stop.wait(0.01)
        assert expected == ["xgb-v2", committed.version] * 3

        unchecked = {"model_dir": str(tmp_path / "v2")}  # no registry checksums: refused
        assert requests.post(f"{url}/reload", json=unchecked, timeout=30).status_code == 400
        tamper(tmp_path / "store" / "xgb-v2" / "model.tar.gz")
        with pytest.raises(RolloutError, match=r"refused.*SHA-256"):
            reload_local_server(url, tmp_path / "store" / "xgb-v2", challenger)
        assert _score(url, body) == (200, f"model_version={committed.version}")
    finally:
        stop.set()
        for thread in clients:
            if thread.is_alive():
                thread.join(timeout=60)
        server.terminate()
        server.wait(timeout=30)
        get_settings.cache_clear()

    failures = [answer for answer in answers if answer[0] != 200]
    assert not failures, failures[:5]
    versions_seen = {attributes for _, attributes in answers}
    assert versions_seen == {f"model_version={v}" for v in ("xgb-v2", committed.version)}
    assert len(answers) > 100
    server_log = log.read_text()
    assert server_log.count("reloaded: serving model") == 6
    assert "reload of" in server_log and "refused, still serving" in server_log
