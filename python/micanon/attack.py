"""A re-identification attack on a whole dataset (the ``group`` level; docs/identity.md).

The literature measures anonymization by attacking it: face recognition matches each anonymized
render against a gallery of the cohort's faces and counts rank-1 hits (Schwarz et al. 2021,
2022, 2024). Here the attacker holds the strongest gallery there is, the unmodified inputs'
own renders (every subject, every session), plus the atlas face as a distractor identity, and
uses micanon's own face recognition (dlib HOG then CNN detector, ResNet descriptor:
:mod:`micanon.face`) on the QC renders the participant level saved.

Protocols (one probe = the render set of one image: an input, or one method's output):

- ``cross_view``, the same for every probe kind: a probe's face in view *v* is compared with the
  gallery's faces in every view but *v*, so an input never meets its own picture;
- ``same_view``, outputs only: view *v* against the gallery's view *v*, the attacker's best case
  (the output and its input were rendered by one camera on one head frame). An input would meet
  itself there, so inputs have no same-view rate.

Per probe view, an identity's distance is the smallest over its gallery faces allowed in that
view; an identity's score is the mean of those over the probe's face views; the nearest identity
is the rank-1 answer. A probe with no face in any view is a miss, counted apart as ``no_face``.

The matching and the rates take plain descriptor vectors (:class:`FaceSet`) so they are tested
without renders; :func:`attack_dataset` is the rim that reads the figures and renders the atlas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

INPUT = "input"
OUTPUT_KINDS = ("deface", "reface", "warpface")
KINDS = (INPUT, *OUTPUT_KINDS)
CROSS_VIEW = "cross_view"
SAME_VIEW = "same_view"
PROTOCOLS = (CROSS_VIEW, SAME_VIEW)
# The gallery identity of the atlas face (a BIDS label is alphanumeric, so it cannot clash).
ATLAS_IDENTITY = "atlas-face"
CONFIDENCE = 0.95
# The attack re-identifies "most inputs" only above this rate; otherwise it proves nothing.
MAJORITY = 0.5
# Views this far round or more (profiles) are left out: dlib's descriptor is trained on frontal
# faces, and on our renders the profiles of different heads lie nearer each other (0.38-0.43)
# than the frontal views of one head (docs/identity.md).
PROFILE_YAW_DEG = 90.0


@dataclass(frozen=True)
class FaceSet:
    """The faces of one render set: ``descriptors`` maps view name -> 128-d descriptor for the
    views where a face was found; ``views`` is how many views were rendered (0: no head surface).

    ``identity`` is the person (subject label, or :data:`ATLAS_IDENTITY`); ``kind`` one of
    :data:`KINDS` (the atlas face is an "input" of the gallery); ``image`` names the input image
    (relative to bids_dir), shared by an input and its outputs.
    """

    identity: str
    kind: str
    image: str
    session: str | None = None
    descriptors: dict[str, np.ndarray] = field(default_factory=dict)
    views: int = 0


@dataclass(frozen=True)
class ProbeResult:
    """One probe's answer under one protocol: the nearest identity (None: no face, or nothing in
    the gallery to compare with), its score, and the probe's own identity's score (None when the
    gallery has nothing of it in the allowed views)."""

    probe: FaceSet
    protocol: str
    nearest: str | None
    nearest_score: float | None
    own_score: float | None
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def hit(self) -> bool:
        return self.nearest is not None and self.nearest == self.probe.identity

    def to_json(self) -> dict[str, Any]:
        """A JSON-able row (for logs/group_attack_probes.tsv)."""
        p = self.probe
        return {
            "protocol": self.protocol, "kind": p.kind, "subject": p.identity, "session": p.session, "input": p.image,
            "views": p.views, "face_views": len(p.descriptors), "nearest": self.nearest,
            "nearest_score": _round(self.nearest_score), "own_score": _round(self.own_score), "hit": self.hit,
            "scores": {identity: _round(score) for identity, score in sorted(self.scores.items())},
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def identity_scores(probe: FaceSet, gallery: Iterable[FaceSet], protocol: str = CROSS_VIEW) -> dict[str, float]:
    """Score of every gallery identity for ``probe`` (lower is nearer; see the module docstring).

    ``cross_view``: the probe's view *v* meets the gallery's views other than *v*; ``same_view``:
    only view *v*. An identity with no gallery face in any allowed view gets no score.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; known: {PROTOCOLS}")
    per_view: dict[str, list[float]] = {}
    for view, vector in probe.descriptors.items():
        nearest: dict[str, float] = {}
        for entry in gallery:
            for gallery_view, other in entry.descriptors.items():
                if (gallery_view == view) != (protocol == SAME_VIEW):
                    continue
                distance = float(np.linalg.norm(np.asarray(vector) - np.asarray(other)))
                nearest[entry.identity] = min(distance, nearest.get(entry.identity, np.inf))
        for identity, distance in nearest.items():
            per_view.setdefault(identity, []).append(distance)
    return {identity: float(np.mean(distances)) for identity, distances in per_view.items()}


def match(probe: FaceSet, gallery: Iterable[FaceSet], protocol: str = CROSS_VIEW) -> ProbeResult:
    """The rank-1 answer for one probe (ties go to the first identity in name order)."""
    scores = identity_scores(probe, gallery, protocol)
    if not scores:
        return ProbeResult(probe, protocol, None, None, None)
    nearest = min(sorted(scores), key=lambda identity: scores[identity])
    return ProbeResult(probe, protocol, nearest, scores[nearest], scores.get(probe.identity), scores)


@dataclass(frozen=True)
class Rate:
    """Rank-1 re-identification of one probe kind under one protocol, with its Wilson interval.

    ``rate`` and the interval are None when there were no probes; ``chance`` is 1 / the number of
    gallery identities (what guessing would score).
    """

    protocol: str
    kind: str
    probes: int
    hits: int
    no_face: int
    to_atlas: int
    gallery_identities: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None

    @property
    def chance(self) -> float | None:
        return None if self.gallery_identities == 0 else 1.0 / self.gallery_identities

    def to_json(self) -> dict[str, Any]:
        """A JSON-able row of the rank-1 table."""
        return {
            "protocol": self.protocol, "kind": self.kind, "probes": self.probes, "hits": self.hits,
            "no_face": self.no_face, "to_atlas": self.to_atlas, "gallery_identities": self.gallery_identities,
            "rate": _round(self.rate), "ci_low": _round(self.ci_low), "ci_high": _round(self.ci_high),
            "chance": _round(self.chance),
        }


def wilson_interval(hits: int, probes: int, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The Wilson score interval of ``hits`` / ``probes`` (None when there are no probes)."""
    if probes == 0:
        return None
    from scipy.stats import binomtest

    ci = binomtest(hits, probes).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def rate_of(results: list[ProbeResult], protocol: str, kind: str, gallery_identities: int) -> Rate:
    """The rank-1 rate of the results of one kind under one protocol."""
    chosen = [r for r in results if r.protocol == protocol and r.probe.kind == kind]
    hits = sum(r.hit for r in chosen)
    ci = wilson_interval(hits, len(chosen))
    return Rate(
        protocol, kind, len(chosen), hits,
        no_face=sum(not r.probe.descriptors for r in chosen),
        to_atlas=sum(r.nearest == ATLAS_IDENTITY for r in chosen),
        gallery_identities=gallery_identities,
        rate=None if not chosen else hits / len(chosen),
        ci_low=None if ci is None else ci[0], ci_high=None if ci is None else ci[1],
    )


def run_attack(inputs: Sequence[FaceSet], outputs: Sequence[FaceSet], distractors: Sequence[FaceSet] = ()) -> dict[str, Any]:
    """The whole attack on descriptors: every input and output probed, the gallery being every
    input plus the distractors. Returns {"table": [Rate rows], "probes": [ProbeResult rows],
    "gallery": {...}, "conclusive": bool, "verdict": str}.

    An input probe meets only the cross-view protocol (same-view would match it to itself).
    """
    gallery = [*inputs, *distractors]
    identities = sorted({g.identity for g in gallery if g.descriptors})
    results = [match(p, gallery, CROSS_VIEW) for p in (*inputs, *outputs)]
    results += [match(p, gallery, SAME_VIEW) for p in outputs]
    table = [rate_of(results, CROSS_VIEW, kind, len(identities)) for kind in KINDS]
    table += [rate_of(results, SAME_VIEW, kind, len(identities)) for kind in OUTPUT_KINDS]
    table = [row for row in table if row.probes > 0 or row.kind == INPUT]
    conclusive, verdict = judge(table[0], len({i for i in identities if i != ATLAS_IDENTITY}))
    return {
        "table": [row.to_json() for row in table],
        "probes": [r.to_json() for r in results],
        "gallery": {
            "identities": identities,
            "subjects": sorted({g.identity for g in inputs}),
            "images": len(inputs),
            "faces": sum(len(g.descriptors) for g in gallery),
            "distractors": sorted({d.identity for d in distractors}),
        },
        "conclusive": conclusive,
        "verdict": verdict,
    }


def judge(inputs: Rate, subjects: int) -> tuple[bool, str]:
    """Whether the attack can speak on this dataset: it must re-identify most inputs (else it
    proves nothing), and a gallery of one or two people is near chance by construction."""
    if inputs.probes == 0 or inputs.rate is None:
        return False, "no input could be probed: the attack proves nothing on this dataset"
    chance = inputs.chance or 0.0
    head = f"the attack re-identified {inputs.hits} of {inputs.probes} inputs ({inputs.rate:.0%}, chance {chance:.0%})"
    if inputs.rate <= MAJORITY:
        return False, f"{head}: not a majority, so it proves nothing on this dataset"
    if subjects <= 2:
        return True, (f"{head}, but the gallery holds {subjects} person(s): a rate here says little about "
                      "a cohort (published galleries hold 84-182 people)")
    return True, head


# ----------------------------------------------------------------------------- the rim


def faces_in(picture: np.ndarray) -> np.ndarray | None:
    """The descriptor of the face in one render (HOG's best box, else the CNN's; None: no face),
    as QC describes a view (:func:`micanon.face.descriptor`)."""
    from micanon import face

    found = face.detect(picture, ("hog",)) or face.detect(picture, ("cnn",))
    return None if not found else face.descriptor(picture, found[0])


def read_face_set(identity: str, kind: str, image: str, session: str | None, renders: dict[str, str],
                  qc_dir: Path, cache: dict[Path, np.ndarray | None]) -> FaceSet:
    """The faces of one record's render set (view -> PNG path relative to ``qc_dir``)."""
    from PIL import Image

    descriptors = {}
    for view, relative in sorted(renders.items()):
        path = (qc_dir / relative).resolve()
        if path not in cache:
            if not path.is_file():
                raise FileNotFoundError(f"{path}: render named by a QC record is missing (re-run the participant level)")
            cache[path] = faces_in(np.asarray(Image.open(path).convert("L")))
        if cache[path] is not None:
            descriptors[view] = cache[path]
    return FaceSet(identity, kind, image, session, descriptors, views=len(renders))


def attack_views(view_names: dict[str, str]) -> dict[str, str]:
    """The render views the attack uses (render name -> record name): all but the profiles."""
    from micanon import render

    return {v: name for v, name in view_names.items() if abs(render.VIEWS[v].yaw_deg) < PROFILE_YAW_DEG}


def atlas_face_set(template: str | Path, view_names: dict[str, str]) -> FaceSet:
    """The atlas template rendered as QC renders a head (atlas space is the viewing frame, so no
    head affine), in the render views ``view_names`` maps to record view names."""
    from micanon import render

    renders = render.render_views(template, views=tuple(view_names))
    descriptors = {}
    for view, picture in renders.views.items():
        vector = faces_in(picture)
        if vector is not None:
            descriptors[view_names[view]] = vector
    return FaceSet(ATLAS_IDENTITY, INPUT, Path(template).name, None, descriptors, views=len(renders.views))


def attack_dataset(records: list[dict[str, Any]], qc_dir: str | Path, atlas_template: str | Path | None,
                   view_names: dict[str, str]) -> dict[str, Any]:
    """The attack on a dataset's QC records (subject, session, input, method, renders.input and
    renders.output: record view -> PNG relative to ``qc_dir``). Every input image is one probe and
    one gallery entry (its renders are shared by its records); every record's output is a probe.
    ``view_names`` maps render views to record view names; the attack uses those of
    :func:`attack_views` (the atlas is rendered in them). Returns :func:`run_attack`'s result,
    with the record views used under "views".
    """
    qc_dir = Path(qc_dir)
    view_names = attack_views(view_names)
    used = set(view_names.values())

    def usable(renders: dict[str, str] | None) -> dict[str, str]:
        return {view: path for view, path in (renders or {}).items() if view in used}

    cache: dict[Path, np.ndarray | None] = {}
    inputs: dict[str, FaceSet] = {}
    outputs = []
    for record in records:
        subject, session, image = record["subject"], record.get("session"), record["input"]
        renders = record.get("renders") or {}
        if image not in inputs:
            inputs[image] = read_face_set(subject, INPUT, image, session, usable(renders.get("input")), qc_dir, cache)
        if record["method"] not in OUTPUT_KINDS:
            raise ValueError(f"unknown method {record['method']!r} in the QC record of {image}")
        outputs.append(read_face_set(subject, record["method"], image, session, usable(renders.get("output")), qc_dir, cache))
    distractors = [] if atlas_template is None else [atlas_face_set(atlas_template, view_names)]
    return {**run_attack(list(inputs.values()), outputs, distractors), "views": sorted(used)}
