"""Where micanon's time goes: one session through the real engine, every stage timed.

Runs ``micanon.session.anonymize_session`` in this process with timers wrapped around the
functions it calls (the engine itself is not changed), then runs the CLI's QC step on every
output (``micanon.qc.check_outputs``: surface renders, face detection, identity, slice figures). Prints or writes JSON: {"stages": {name: seconds}, "session_seconds", "qc": {...}, ...}.

    .venv/bin/python bench/profile.py --bids DIR --subject A --methods deface reface warpface --json out.json
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Stages, cpu_seconds, peak_rss_mb, session_images, session_parser, set_threads, short_name, versions, write_json  # noqa: E402


def instrument(stages: Stages, output_paths: set[str]) -> None:
    """Wrap the functions micanon.session calls so each call is timed under its stage."""
    from micanon import session
    from micanon.anonymize import guard
    from micanon.anonymize import methods as face_methods
    from micanon.anonymize import warp as warps

    state = {"current": "T1w"}

    def read_name(path, *_a, **_k):
        if str(path) in output_paths:
            return "check (read output back)"
        state["current"] = short_name(str(path))
        return f"load {state['current']}"

    def reface_name(*_a, **_k):
        # the T1w is refaced once as the warp's target before any output is made
        return None if stages.depth else "warp: reface T1w as target"

    session.read_image = stages.wrap(read_name, session.read_image)
    session.load_atlas_images = stages.wrap(lambda *a, **k: "load atlas", session.load_atlas_images)
    session.register_to_atlas = stages.wrap(lambda *a, **k: "register T1w->atlas", session.register_to_atlas)
    session.register_to_t1w = stages.wrap(lambda *a, **k: f"register {state['current']}->T1w", session.register_to_t1w)
    session._prepare = stages.wrap(lambda stored, *a, **k: f"masks {short_name(stored.path)}", session._prepare)
    session._apply = stages.wrap(lambda item, method, *a, **k: f"apply {method}", session._apply)
    session.write_like = stages.wrap(lambda *a, **k: "write", session.write_like)
    face_methods.reface = stages.wrap(reface_name, face_methods.reface)
    warps.face_warp = stages.wrap(lambda *a, **k: "warp: SyN face warp", warps.face_warp)
    warps.warp_sampling = stages.wrap(lambda *a, **k: "apply warpface", warps.warp_sampling)
    guard.protect = stages.wrap(lambda *a, **k: "guard", guard.protect)
    guard.count_changed = stages.wrap(lambda *a, **k: "guard", guard.count_changed)


def run_qc(records: list[dict], bids: str, out_dir: str, stages: Stages) -> dict:
    """The CLI's QC step itself (``qc.check_outputs``, one request for the session, items built as
    src/pipeline/session.ts builds them), with its renders, detectors, descriptors and slices timed."""
    from micanon import face, qc, render

    render.render_views = stages.wrap(lambda *a, **k: "QC: surface renders", render.render_views)
    face.detect = stages.wrap(lambda *a, **k: "QC: face detection", face.detect)
    face.descriptor = stages.wrap(lambda *a, **k: "QC: identity descriptors", face.descriptor)
    render.slice_plane = stages.wrap(lambda *a, **k: "QC: slice figures", render.slice_plane)
    with stages.stage("QC: load face models"):
        face.load_models()
    items = [{
        "input": os.path.abspath(r["input"]), "output": os.path.abspath(r["output"]), "output_name": Path(r["output"]).name, "method": r["method"],
        "brain_voxels_changed": r["brain_voxels_changed"], "guard_voxels": r["guard_voxels"],
        "brain_guard": r.get("brain_guard_mask"), "face_roi": r.get("face_roi_mask"),
        "head_affine": r.get("image_to_atlas"), "atlas_head": r.get("atlas_head_image"), "registration": {"flag": "ok", **(r.get("registration") or {})},
    } for r in records if "output" in r]
    reply = qc.check_outputs(qc.QcRequest.from_json({
        "output_dir": out_dir, "bids_dir": os.path.abspath(bids), "subject": "bench", "session": None,
        "figures_dir": os.path.join(out_dir, "figures"), "items": items,
    }))
    return {"outputs": len(items), "failed": sum(r["status"] == "FAILED" for r in reply["records"])}


def main(argv: list[str] | None = None) -> int:
    parser = session_parser(__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["deface", "reface", "warpface"])
    parser.add_argument("--no-qc", action="store_true", help="skip the QC step")
    args = parser.parse_args(argv)
    set_threads(args.threads)

    wall_start = time.perf_counter()
    stages = Stages()
    with stages.stage("import engine"):
        from micanon.atlas.load import load_atlas
        from micanon.session import anonymize_session

    images = session_images(args.bids, args.subject)
    with tempfile.TemporaryDirectory(prefix="micanon-profile-") as tmp:
        outputs = {
            path: {m: os.path.join(tmp, f"{Path(path).name.split('.')[0]}_desc-{m}.nii.gz") for m in args.methods}
            for path in [images["t1w"], *images["others"]]
        }
        instrument(stages, {p for wanted in outputs.values() for p in wanted.values()})
        with stages.stage("load atlas"):
            atlas = load_atlas(args.atlas)
        log: list[str] = []
        start = time.perf_counter()
        result = anonymize_session(
            images["t1w"], [{"path": p} for p in images["others"]], args.methods, atlas, outputs,
            work_dir=os.path.join(tmp, "work"), log=log.append,
            dilate=6.0, seed=1,  # micanon's defaults (src/config.ts); the engine has none of its own
        )
        session_seconds = time.perf_counter() - start
        engine_rss = peak_rss_mb()
        qc = None
        if not args.no_qc:
            qc_start = time.perf_counter()
            counts = run_qc(result["images"], args.bids, os.path.join(tmp, "qc"), stages)
            qc = {"seconds": round(time.perf_counter() - qc_start, 2), **counts}

    write_json(args.json, {
        "methods": args.methods,
        "threads": args.threads,
        "stages": stages.as_dict(),
        "session_seconds": round(session_seconds, 2),
        "wall_seconds": round(time.perf_counter() - wall_start, 2),
        "cpu_seconds": round(cpu_seconds(), 2),
        "peak_rss_mb_engine": round(engine_rss, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "qc": qc,
        "records": [
            {k: r.get(k) for k in ("input", "method", "brain_voxels_changed", "guard_voxels", "seconds", "error")}
            for r in result["images"]
        ],
        "engine_log": log,
        "versions": versions(),
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
