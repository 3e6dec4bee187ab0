"""Model tarballs are extracted safely on every Python 3.11, with or without `data_filter`.

`TarFile.extractall(filter=...)` exists from 3.11.4 only (Debian 12 ships 3.11.2): the one helper,
`model.tarballs.safe_extractall`, refuses a hostile tarball whole before anything is written,
then extracts with the `data` filter where it exists and writes the checked members itself where
it does not. Both paths are run here; the helper is also run by Debian's /usr/bin/python3 when
that is a 3.11 (it is standard library only).
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from fraud_pipeline.config import PACKAGE_ROOT, get_settings
from fraud_pipeline.model.checksums import ArtifactError
from fraud_pipeline.model.tarballs import UnsafeTarball, read_member, safe_extractall


def _tarball(path: Path, *members: tuple[str, bytes | None, bytes]) -> Path:
    """A .tar.gz of (name, link target or None, content) members."""
    with tarfile.open(path, "w:gz") as tar:
        for name, link, content in members:
            info = tarfile.TarInfo(name)
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link.decode()
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return path


GOOD = ("xgboost-model", None, b"booster bytes")
HOSTILE = {
    "parent": ("../evil", None, b"outside"),
    "absolute": ("/tmp/evil-absolute", None, b"outside"),
    "nested parent": ("model/../../evil", None, b"outside"),
    "symlink": ("link", b"/etc/passwd", b""),
}


@pytest.fixture(params=["data_filter", "no_data_filter"])
def python_311_flavour(request, monkeypatch):
    """Run each test as on Python >= 3.11.4 (data_filter) and as on 3.11.0-3.11.3."""
    if request.param == "no_data_filter":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    elif not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python has no tarfile.data_filter")
    return request.param


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_hostile_member_is_refused_and_nothing_is_written(tmp_path, python_311_flavour, kind):
    tarball = _tarball(tmp_path / "model.tar.gz", GOOD, HOSTILE[kind])
    target = tmp_path / "deep" / "out"
    with tarfile.open(tarball) as tar, pytest.raises(UnsafeTarball, match="refusing"):
        safe_extractall(tar, target)
    assert not target.exists()
    assert not (tmp_path / "deep" / "evil").exists() and not (tmp_path / "evil").exists()
    assert not Path("/tmp/evil-absolute").exists()


def test_a_device_member_is_refused(tmp_path, python_311_flavour):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("null")
        info.type = tarfile.CHRTYPE
        tar.addfile(info)
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as tar, pytest.raises(UnsafeTarball, match="device"):
        safe_extractall(tar, tmp_path / "out")


def test_the_committed_model_tarball_extracts(tmp_path, python_311_flavour):
    artifacts = get_settings().artifacts_dir
    with tarfile.open(artifacts / "model.tar.gz") as tar:
        safe_extractall(tar, tmp_path / "opt-ml-model")
    extracted = tmp_path / "opt-ml-model" / "xgboost-model"
    assert extracted.read_bytes() == (artifacts / "model.ubj").read_bytes()
    assert extracted.stat().st_mode & 0o7777 == 0o644


def test_the_server_never_reads_the_booster_through_a_link(tmp_path):
    tarball = _tarball(tmp_path / "model.tar.gz", ("xgboost-model", b"../secret", b""))
    with pytest.raises(ArtifactError, match="no regular file"):
        read_member(tarball, "xgboost-model")
    good = _tarball(tmp_path / "good.tar.gz", GOOD)
    assert read_member(good, "xgboost-model") == b"booster bytes"


def test_the_helper_runs_on_the_system_python_3_11(tmp_path):
    """Debian 12's python3 (3.11.2: no data_filter) runs the stdlib-only helper as is."""
    system = Path("/usr/bin/python3")
    if not system.exists():
        pytest.skip("no /usr/bin/python3")
    version = subprocess.run(
        [system, "-c", "import sys; print(sys.version_info[:2] == (3, 11))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if version != "True":
        pytest.skip("/usr/bin/python3 is not a Python 3.11")
    hostile = _tarball(tmp_path / "hostile.tar.gz", GOOD, HOSTILE["parent"])
    good = _tarball(tmp_path / "good.tar.gz", GOOD, ("sub/dir/file", None, b"x"))
    script = f"""
import tarfile
from fraud_pipeline.model.tarballs import UnsafeTarball, safe_extractall
with tarfile.open({str(good)!r}) as tar:
    safe_extractall(tar, {str(tmp_path / "good")!r})
try:
    with tarfile.open({str(hostile)!r}) as tar:
        safe_extractall(tar, {str(tmp_path / "hostile")!r})
except UnsafeTarball as error:
    print("refused:", error)
print("data_filter:", hasattr(tarfile, "data_filter"))
"""
    out = subprocess.run(
        [
            system,
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(PACKAGE_ROOT / 'src')!r})\n" + script,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "refused: refusing to extract" in out.stdout and "'../evil'" in out.stdout
    assert (tmp_path / "good" / "xgboost-model").read_bytes() == b"booster bytes"
    assert (tmp_path / "good" / "sub" / "dir" / "file").read_bytes() == b"x"
    assert not (tmp_path / "hostile").exists() and not (tmp_path / "evil").exists()
    print(out.stdout, file=sys.stderr)
