"""The subject's own brain: an extraction that fails or is implausible is said so, never used."""

from __future__ import annotations

import numpy as np
import pytest

from micanon.anonymize import native_brain


def _head(shape=(72, 80, 72), voxel=3.0):
    affine = np.diag([voxel, voxel, voxel, 1.0])
    affine[:3, 3] = -np.asarray(shape) * voxel / 2
    ijk = np.indices(shape).reshape(3, -1).T
    r = np.linalg.norm((ijk - np.asarray(shape) / 2) * voxel, axis=1).reshape(shape)
    volume = np.where(r < 100, 100.0, 0.0) + np.where(r < 60, 50.0, 0.0)
    return volume.astype(np.float32), affine, r


@pytest.fixture
def fake_robex(monkeypatch, tmp_path):
    """ROBEX replaced by a function of the head copy it is given; counts its runs."""
    monkeypatch.setenv(native_brain.CACHE_VAR, str(tmp_path / "cache"))
    monkeypatch.setattr(native_brain, "_DONE", {})
    calls = []

    def install(answer):
        def fake(volume, affine, work_dir=None):
            calls.append(volume.shape)
            return answer(volume, affine)

        monkeypatch.setattr(native_brain, "robex", fake)
        return calls

    return install


def test_a_plausible_brain_is_used_and_extracted_once_per_head(fake_robex):
    volume, affine, r = _head()
    calls = fake_robex(lambda v, a: v > 120)  # the inner sphere: r < 60 mm, about 900 ml
    brain = native_brain.extract(volume, affine)
    assert brain.ok and 600 < brain.volume_ml < 1200, brain.as_dict()
    again = native_brain.extract(volume, affine)
    assert again is brain and len(calls) == 1
    native_brain._DONE.clear()  # a new process: the folder cache answers
    from_disk = native_brain.extract(volume, affine)
    assert len(calls) == 1 and from_disk.ok and np.array_equal(from_disk.mask, brain.mask)


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (lambda v, a: v > 50, "outside"),  # the whole head: a failed extraction
        (lambda v, a: np.zeros(v.shape, bool), "outside"),
    ],
)
def test_an_implausible_brain_is_not_used(fake_robex, answer, why):
    volume, affine, _ = _head()
    fake_robex(answer)
    brain = native_brain.extract(volume, affine)
    assert not brain.ok and why in brain.note
    assert not brain.on_grid(volume.shape, affine).any()


def test_a_failed_extraction_says_why(fake_robex):
    volume, affine, _ = _head()

    def broken(v, a):
        raise RuntimeError("ROBEX failed (exit 1): bad input")

    fake_robex(broken)
    brain = native_brain.extract(volume, affine)
    assert not brain.ok and "ROBEX failed" in brain.note


def test_on_grid_keeps_every_voxel_that_touches_the_brain(fake_robex):
    volume, affine, r = _head()
    fake_robex(lambda v, a: v > 120)
    brain = native_brain.extract(volume, affine)
    fine_affine = affine.copy()
    fine_affine[:3, :3] /= 3.0
    fine_shape = tuple(n * 3 for n in volume.shape)
    mask = brain.on_grid(fine_shape, fine_affine)
    centres = np.indices(fine_shape).reshape(3, -1).T @ fine_affine[:3, :3].T + fine_affine[:3, 3]
    radius = np.linalg.norm(centres, axis=1).reshape(fine_shape)
    assert mask[radius < 58].all()  # the whole brain (r < 60 mm, less a coarse voxel's reach) is kept
    assert not mask[radius > 66].any()  # and it grows by at most about one coarse voxel


def test_robex_dies_with_the_engine(tmp_path):
    """A SIGKILLed engine leaves no ROBEX behind (the child has a parent-death signal)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    volume, affine, _ = _head()
    np.save(tmp_path / "head.npy", volume)
    np.save(tmp_path / "affine.npy", affine)
    script = (
        "import numpy as np, time\n"
        "from micanon.anonymize import native_brain\n"
        f"native_brain.extract_later(np.load({str(tmp_path / 'head.npy')!r}), np.load({str(tmp_path / 'affine.npy')!r}),"
        f" work_dir={str(tmp_path)!r})\n"
        "time.sleep(120)\n"
    )
    env = {**os.environ, native_brain.CACHE_VAR: ""}
    engine = subprocess.Popen([sys.executable, "-c", script], env=env)

    def robex_pids():
        found = subprocess.run(["pgrep", "-f", f"ROBEX {tmp_path}"], capture_output=True, text=True).stdout.split()
        return [int(p) for p in found]

    try:
        deadline = time.monotonic() + 60
        while not robex_pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert robex_pids(), "ROBEX never started"
    finally:
        engine.send_signal(signal.SIGKILL)
        engine.wait()
    deadline = time.monotonic() + 5
    while robex_pids() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not robex_pids()
