"""Where micanon's time goes: one session through the real engine, every stage timed.

Runs ``micanon.session.anonymize_session`` in this process with timers wrapped around the
functions it calls (the engine itself is not changed), then times what the QC step will do per
output (surface renders, face detection and identity, slice figures), which the CLI does not
run yet. Prints or writes JSON: {"stages": {name: seconds}, "session_seconds", "qc": {...}, ...}.

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
    from micanon import guard, methods, session

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
    methods.reface = stages.wrap(reface_name, methods.reface)
    methods.face_warp = stages.wrap(lambda *a, **k: "warp: SyN face warp", methods.face_warp)
    methods.warp_sampling = stages.wrap(lambda *a, **k: "apply warpface", methods.warp_sampling)
    guard.protect = stages.wrap(lambda *a, **k: "guard", guard.protect)
    guard.count_changed = stages.wrap(lambda *a, **k: "guard", guard.count_changed)


def qc_projection(records: list[dict], stages: Stages) -> dict:
    """Time what a QC record per output needs: renders + face identity of input and output, slices."""
    from micanon import face, render

    described: dict[str, dict] = {}
    counts = {"renders": 0, "outputs": 0}

    def views_of(path: str) -> dict:
        if path not in described:
            with stages.stage("QC: surface renders"):
                renders = render.render_views(path)
            counts["renders"] += 1
            with stages.stage("QC: face detection + identity"):
                described[path] = face.describe_views(renders.views) if renders.views else {}
            with stages.stage("QC: slice figures"):
                render.render_slices(path)
        return described[path]

    with stages.stage("QC: load face models"):
        face.load_models()
    for record in records:
        if "output" not in record:
            continue
        counts["outputs"] += 1
        before = views_of(record["input"])
        after = views_of(record["output"])
        if record["method"] != "deface" and before and after:
            with stages.stage("QC: face detection + identity"):
                face.identity_distance(before, after)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = session_parser(__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["deface", "reface", "warpface"])
    parser.add_argument("--no-qc", action="store_true", help="skip the projected QC step")
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
        )
        session_seconds = time.perf_counter() - start
        engine_rss = peak_rss_mb()
        qc = None
        if not args.no_qc:
            qc_start = time.perf_counter()
            counts = qc_projection(result["images"], stages)
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
