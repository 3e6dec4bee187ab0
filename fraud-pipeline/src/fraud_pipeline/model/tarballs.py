"""Reading and extracting model tarballs safely, on every Python 3.11 (standard library only).

`TarFile.extractall(filter="data")` exists from Python 3.11.4 (and 3.12) only: without a filter,
a tarball member named `../x` or `/etc/x`, or a link, writes outside the target directory. Here
every member is checked first, and a tarball holding anything but plain files and directories
under relative, `..`-free names is refused whole; then the `data` filter extracts it where the
interpreter has it, else the checked members are written out one by one (no links, devices,
owners or special permission bits ever reach the disk).
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path, PurePosixPath, PureWindowsPath

from fraud_pipeline.model.checksums import ArtifactError


class UnsafeTarball(ArtifactError):
    """A tarball member could write outside the target or is not a plain file or directory."""


def unsafe_reason(member: tarfile.TarInfo) -> str | None:
    """Why `member` may not be extracted, or None when it is a plain file or directory."""
    name = member.name
    if not (member.isreg() or member.isdir()):
        kind = "link" if member.issym() or member.islnk() else "device or special file"
        return f"{name!r} is a {kind}"
    if not name or "\0" in name:
        return f"{name!r} is not a file name"
    if name.startswith(("/", "\\")) or PureWindowsPath(name).drive:
        return f"{name!r} is an absolute path"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return f"{name!r} leaves the target directory"
    return None


def safe_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """Every member of `tar`, after checking all of them; UnsafeTarball names the first bad one."""
    members = tar.getmembers()
    for member in members:
        reason = unsafe_reason(member)
        if reason is not None:
            source = os.fsdecode(tar.name) if tar.name else "the tarball"
            raise UnsafeTarball(f"refusing to extract {source}: {reason}")
    return members


def safe_extractall(tar: tarfile.TarFile, target: Path) -> None:
    """Extract `tar` into `target` if every member is safe (else UnsafeTarball, nothing written)."""
    members = safe_members(tar)
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4
        tar.extractall(target, members=members, filter="data")
        return
    root = target.resolve()
    for member in members:  # Python 3.11.0-3.11.3: write the checked members ourselves
        path = (root / member.name).resolve()
        if path != root and root not in path.parents:
            raise UnsafeTarball(f"refusing to extract {member.name!r}: outside {root}")
        if member.isdir():
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(member)
        if source is None:  # pragma: no cover - a regular member always has a file
            raise UnsafeTarball(f"cannot read {member.name!r}")
        with source, path.open("wb") as out:
            shutil.copyfileobj(source, out)
        path.chmod(0o755 if member.mode & 0o100 else 0o644)


def read_member(tarball: Path, name: str) -> bytes:
    """The bytes of the regular file `name` in `tarball` (never through a link)."""
    with tarfile.open(tarball) as tar:
        try:
            member = tar.getmember(name)
        except KeyError:
            member = None
        if member is None or not member.isreg():
            raise ArtifactError(f"{tarball} holds no regular file {name!r}")
        stream = tar.extractfile(member)
        if stream is None:  # pragma: no cover - a regular member always has a file
            raise ArtifactError(f"{tarball} holds no regular file {name!r}")
        with stream:
            return stream.read()
