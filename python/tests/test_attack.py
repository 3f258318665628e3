"""The re-identification attack: its matching and rates on made-up descriptors, then the rim on
real renders of the atlas head (and of person A where the licensed data is present)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from micanon import attack, render
from micanon.attack import ATLAS_IDENTITY, CROSS_VIEW, SAME_VIEW, FaceSet

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / ".atlas" / "micanon-head-v1" / "tpl-micanon_T1w.nii.gz"
PERSON_A = REPO.parent / "shared" / "data" / "bids-person-a" / "sub-A" / "ses-01" / "anat" / "sub-A_ses-01_T1w.nii.gz"
VIEWS = ("front", "left34", "right34", "low", "high")


def _unit(rng: np.random.Generator, n: int = 128) -> np.ndarray:
    v = rng.normal(size=n)
    return v / np.linalg.norm(v)


def _person(identity: str, centre: np.ndarray, rng, spread: float, kind: str = "input", session: str = "01") -> FaceSet:
    """A render set whose face in every view lies near ``centre`` (``spread``: per-view noise)."""
    return FaceSet(identity, kind, f"sub-{identity}/ses-{session}/anat/sub-{identity}_ses-{session}_T1w.nii.gz", session,
                   {v: centre + spread * _unit(rng) for v in VIEWS}, views=len(VIEWS))


def _rows(result, protocol):
    return {row["kind"]: row for row in result["table"] if row["protocol"] == protocol}


def test_wilson_interval_is_the_textbook_one():
    z = 1.959963984540054
    for hits, n in [(8, 10), (0, 5), (5, 5), (1, 2)]:
        p = hits / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        low, high = attack.wilson_interval(hits, n)
        assert low == pytest.approx(max(centre - half, 0.0), abs=1e-9)
        assert high == pytest.approx(min(centre + half, 1.0), abs=1e-9)
    assert attack.wilson_interval(0, 0) is None
    assert attack.wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)


def test_an_attack_that_knows_every_face_reidentifies_every_input_and_the_methods_are_scored_apart():
    rng = np.random.default_rng(0)
    centres = {f"s{i}": _unit(rng) for i in range(6)}
    atlas_centre = _unit(rng)
    inputs = [_person(s, c, rng, 0.05) for s, c in centres.items()]
    # warpface keeps the person (a nudge), reface becomes the atlas face, deface leaves no face at all
    warped = [_person(s, c + 0.1 * _unit(rng), rng, 0.05, kind="warpface") for s, c in centres.items()]
    refaced = [_person(s, atlas_centre, rng, 0.05, kind="reface") for s in centres]
    defaced = [FaceSet(s, "deface", f"sub-{s}/ses-01/anat/sub-{s}_ses-01_T1w.nii.gz", "01", {}, views=len(VIEWS)) for s in centres]
    atlas_face = FaceSet(ATLAS_IDENTITY, "input", "tpl.nii.gz", None, {v: atlas_centre + 0.05 * _unit(rng) for v in VIEWS}, 5)

    result = attack.run_attack(inputs, [*defaced, *refaced, *warped], [atlas_face])

    cross = _rows(result, CROSS_VIEW)
    assert (cross["input"]["hits"], cross["input"]["probes"], cross["input"]["no_face"]) == (6, 6, 0)
    assert cross["input"]["chance"] == pytest.approx(1 / 7, abs=1e-4)  # six people and the atlas face
    assert cross["input"]["ci_low"] == pytest.approx(attack.wilson_interval(6, 6)[0], abs=1e-4)
    assert (cross["warpface"]["hits"], cross["warpface"]["probes"]) == (6, 6)
    assert (cross["reface"]["hits"], cross["reface"]["to_atlas"]) == (0, 6)
    assert (cross["deface"]["hits"], cross["deface"]["no_face"], cross["deface"]["rate"]) == (0, 6, 0.0)
    # inputs have no same-view row: they would meet their own picture
    assert set(_rows(result, SAME_VIEW)) == {"deface", "reface", "warpface"}
    assert result["conclusive"] is True
    assert "6 of 6 inputs" in result["verdict"]
    assert result["gallery"]["identities"] == sorted([*centres, ATLAS_IDENTITY])
    probes = [p for p in result["probes"] if p["kind"] == "deface"]
    assert all(p["nearest"] is None and p["hit"] is False and p["face_views"] == 0 for p in probes)


def test_an_attack_that_cannot_tell_inputs_apart_says_it_proves_nothing():
    rng = np.random.default_rng(1)
    # every view of every person an unrelated face: the other views say nothing about this one
    inputs = [FaceSet(f"s{i}", "input", f"sub-s{i}_T1w.nii.gz", None, {v: _unit(rng) for v in VIEWS}, 5) for i in range(10)]
    result = attack.run_attack(inputs, [])
    row = _rows(result, CROSS_VIEW)["input"]
    assert row["probes"] == 10 and row["rate"] <= 0.5
    assert result["conclusive"] is False
    assert "proves nothing" in result["verdict"]


def test_a_gallery_of_two_people_is_conclusive_only_with_a_warning():
    rng = np.random.default_rng(2)
    inputs = [_person(s, _unit(rng), rng, 0.05) for s in ("A", "B")]
    result = attack.run_attack(inputs, [])
    assert result["conclusive"] is True
    assert "2 person(s)" in result["verdict"] and "84-182" in result["verdict"]
    assert _rows(result, CROSS_VIEW)["input"]["chance"] == 0.5


def test_cross_view_never_compares_a_view_with_the_same_view():
    own, other = np.zeros(4), np.ones(4)
    probe = FaceSet("A", "reface", "a.nii.gz", None, {"front": own.copy()}, 1)
    gallery = [
        FaceSet("A", "input", "a.nii.gz", None, {"front": own.copy(), "left34": own + 3.0}, 2),
        FaceSet("B", "input", "b.nii.gz", None, {"left34": other}, 1),
    ]
    assert attack.match(probe, gallery, SAME_VIEW).nearest == "A"
    assert attack.identity_scores(probe, gallery, SAME_VIEW) == {"A": 0.0}
    cross = attack.match(probe, gallery, CROSS_VIEW)
    assert cross.nearest == "B" and not cross.hit
    assert cross.own_score == pytest.approx(6.0)  # |0 - 3| over 4 dimensions
    assert cross.nearest_score == pytest.approx(2.0)
    assert cross.to_json()["scores"] == {"A": 6.0, "B": 2.0}


def test_scores_average_the_probes_face_views():
    probe = FaceSet("A", "warpface", "a.nii.gz", None, {"front": np.zeros(2), "low": np.zeros(2)}, 2)
    gallery = [FaceSet("A", "input", "a.nii.gz", None, {"front": np.array([1.0, 0.0]), "low": np.array([3.0, 0.0])}, 2)]
    # front meets low (3), low meets front (1): mean 2
    assert attack.identity_scores(probe, gallery, CROSS_VIEW) == {"A": pytest.approx(2.0)}
    with pytest.raises(ValueError, match="unknown protocol"):
        attack.identity_scores(probe, gallery, "best")


# ----------------------------------------------------------------------------- real renders

# QC's record names of the render views (python/micanon/qc.py REPORT_VIEWS), profiles included
VIEW_NAMES = {"front": "front", "left45": "left34", "right45": "right34", "left90": "left", "right90": "right",
              "front_low": "low", "left_low": "left_low", "right_low": "right_low", "front_high": "high"}


@pytest.fixture(scope="module")
def atlas_renders(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The atlas head rendered as QC renders an input, saved as the figures QC writes."""
    if not TEMPLATE.is_file():
        pytest.skip(f"atlas not built at {TEMPLATE} (npm run setup)")
    qc_dir = tmp_path_factory.mktemp("qc")
    renders = render.render_views(TEMPLATE, views=tuple(VIEW_NAMES))
    figures = {}
    for view, picture in renders.views.items():
        path = render.save_png(picture, qc_dir / "sub-tpl" / "figures" / f"sub-tpl_T1w_input_{VIEW_NAMES[view]}.png")
        figures[VIEW_NAMES[view]] = str(path.relative_to(qc_dir))
    blank = render.save_png(np.zeros((320, 320), np.uint8), qc_dir / "sub-tpl" / "figures" / "blank.png")
    figures_blank = {name: str(blank.relative_to(qc_dir)) for name in figures}
    return qc_dir, {"input": figures, "blank": figures_blank}


def test_the_atlas_head_is_a_face_the_attack_knows_from_its_other_views(atlas_renders):
    qc_dir, figures = atlas_renders
    record = {"subject": "tpl", "session": None, "input": "sub-tpl/anat/sub-tpl_T1w.nii.gz", "method": "deface",
              "renders": {"input": figures["input"], "output": figures["blank"]}}
    result = attack.attack_dataset([record], qc_dir, TEMPLATE, VIEW_NAMES)
    atlas_faces = [p for p in result["probes"] if p["kind"] == "input"][0]["face_views"]
    assert atlas_faces >= 3, "the average head shows a face in most frontal views"
    cross = _rows(result, CROSS_VIEW)
    # The same head twice in the gallery (as sub-tpl and as the atlas distractor): the input's
    # other views and the atlas rendering of the same views are equally near, so the rank-1
    # answer is one of the two, and the distance to itself is ~0.
    probe = [p for p in result["probes"] if p["kind"] == "input"][0]
    assert probe["nearest"] in ("tpl", ATLAS_IDENTITY)
    assert cross["deface"]["no_face"] == 1 and cross["deface"]["hits"] == 0
    assert result["gallery"]["identities"] == [ATLAS_IDENTITY, "tpl"]
    # profiles are left out (the descriptor is trained on frontal faces)
    assert result["views"] == sorted(set(VIEW_NAMES.values()) - {"left", "right"})


@pytest.mark.skipif(not PERSON_A.is_file(), reason=f"person A's data not found at {PERSON_A} (licence: not in repo)")
def test_person_a_is_told_from_the_atlas_face_across_views(atlas_renders, tmp_path):
    qc_dir = tmp_path
    renders = render.render_views(PERSON_A, views=tuple(VIEW_NAMES))
    figures = {VIEW_NAMES[v]: str(render.save_png(p, qc_dir / f"a_{v}.png").relative_to(qc_dir)) for v, p in renders.views.items()}
    record = {"subject": "A", "session": "01", "input": "sub-A/ses-01/anat/sub-A_ses-01_T1w.nii.gz", "method": "reface",
              "renders": {"input": figures, "output": {}}}
    result = attack.attack_dataset([record], qc_dir, TEMPLATE, VIEW_NAMES)
    probe = [p for p in result["probes"] if p["kind"] == "input"][0]
    assert probe["face_views"] >= 1
    assert probe["nearest"] == "A"  # across views: its own other views, not the average face
    reface = _rows(result, CROSS_VIEW)["reface"]
    assert (reface["probes"], reface["no_face"], reface["hits"]) == (1, 1, 0)


@pytest.mark.skipif(not PERSON_A.is_file(), reason=f"person A's data not found at {PERSON_A} (licence: not in repo)")
def test_the_evidence_dataset_files_stress_copies_as_sessions_of_their_person(tmp_path):
    import nibabel as nib

    from tests.stress_dataset import write_dataset

    written = write_dataset(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        "sub-A/ses-01/anat/sub-A_ses-01_T1w.nii.gz", "sub-A/ses-02/anat/sub-A_ses-02_T1w.nii.gz",
        "sub-B/ses-01/anat/sub-B_ses-01_T1w.nii.gz", "sub-B/ses-02/anat/sub-B_ses-02_T1w.nii.gz",
    ]
    assert (tmp_path / "participants.tsv").read_text().split() == ["participant_id", "sub-A", "sub-B"]
    # the copy is the same person on another grid (thick slices), not a new one
    assert nib.load(str(written[1])).header.get_zooms() == pytest.approx((1.0, 1.0, 4.0), abs=0.05)
