"""Face detection and face identity on rendered head views (dlib; weights shipped in wheels).

Inputs are the uint8 grey surface renders of ``micanon.render.render_views`` (any 2-D uint8
image works). Nothing is downloaded: the HOG detector is built into dlib, the CNN detector,
the 5-point landmark model and the ResNet face descriptor come from the installed
``face_recognition_models`` package. Models are loaded once, on first use.

Two checks use this module (rules in :mod:`micanon.qc`): after deface no face may be found in any
view (by ``DEFACE_CHECK_DETECTORS``); after reface/warpface the output, described inside the
input's face box and its own (:func:`paired_distance`), must be farther than ``IDENTITY_THRESHOLD``
from the input in every view where the input shows a face (see docs/qc-calibration.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Iterable

import dlib
import face_recognition_models
import numpy as np

# Calibrated on shaded renders (docs/qc-calibration.md, scripts/calibrate_identity.py): the same
# head re-rendered after rotation, re-slicing, noise or another contrast stays below it; a
# different head lies above it. dlib's own 0.6 rule is for photographs and far too loose here.
IDENTITY_THRESHOLD = 0.42
# Distances depend on the renderer as well as on the network; bump when either changes.
# "paired-1": the output is also described inside the input's face box (see qc.identity_check).
MODEL_VERSION = "dlib_face_recognition_resnet_model_v1+shape_predictor_5+micanon-render-1+paired-1"

DETECTORS = ("hog", "cnn")
# "No face after deface" is judged by the CNN detector only: HOG fires (scores up to ~1.1) on
# the orbits and nasal cavity that a planar face cut exposes, as strongly as on an intact face
# whose field of view ends below the nose (docs/qc-calibration.md).
DEFACE_CHECK_DETECTORS = ("cnn",)


@dataclass(frozen=True)
class Detection:
    """One face found in a view: ``box`` is (left, top, right, bottom) in pixels."""

    detector: str
    box: tuple[int, int, int, int]
    score: float

    def to_json(self) -> dict:
        """A JSON-able dict of this detection."""
        return {"detector": self.detector, "box": list(self.box), "score": round(self.score, 4)}


@cache
def _hog() -> "dlib.fhog_object_detector":
    return dlib.get_frontal_face_detector()


@cache
def _cnn() -> "dlib.cnn_face_detection_model_v1":
    return dlib.cnn_face_detection_model_v1(face_recognition_models.cnn_face_detector_model_location())


@cache
def _landmarks() -> "dlib.shape_predictor":
    return dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())


@cache
def _recogniser() -> "dlib.face_recognition_model_v1":
    return dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())


def load_models() -> None:
    """Load every model now (they are otherwise loaded on first use); raises if one is missing."""
    _hog(), _cnn(), _landmarks(), _recogniser()


def _grey(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3:
        image = image[..., :3].mean(axis=2)
    return np.ascontiguousarray(image, dtype=np.uint8)


def _box(rect: "dlib.rectangle") -> tuple[int, int, int, int]:
    return (rect.left(), rect.top(), rect.right(), rect.bottom())


def detect(
    view_image: np.ndarray,
    detectors: Iterable[str] = DETECTORS,
    hog_threshold: float = 0.0,
    cnn_threshold: float = 0.0,
) -> list[Detection]:
    """Faces in one rendered view (uint8 grey or RGB, pixels), by dlib's HOG and/or CNN detector.

    Thresholds are on each detector's own score (HOG SVM margin, CNN MMOD confidence); 0 is
    dlib's default for both. No upsampling: renders are sized so faces exceed both detectors'
    ~80 px minimum. Returns detections of all detectors, best score first.
    """
    grey = _grey(view_image)
    found: list[Detection] = []
    for name in detectors:
        if name == "hog":
            rects, scores, _ = _hog().run(grey, 0, hog_threshold)
            found += [Detection("hog", _box(r), float(s)) for r, s in zip(rects, scores)]
        elif name == "cnn":
            found += [
                Detection("cnn", _box(d.rect), float(d.confidence)) for d in _cnn()(grey, 0) if d.confidence >= cnn_threshold
            ]
        else:
            raise ValueError(f"unknown detector {name!r}; known: {DETECTORS}")
    return sorted(found, key=lambda d: -d.score)


def descriptor(view_image: np.ndarray, detection: Detection) -> np.ndarray:
    """The 128-d dlib ResNet descriptor of the face in ``detection`` (float64, unit-scale space)."""
    grey = _grey(view_image)
    left, top, right, bottom = detection.box
    shape = _landmarks()(grey, dlib.rectangle(left, top, right, bottom))
    rgb = np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    return np.asarray(_recogniser().compute_face_descriptor(rgb, shape), dtype=np.float64)


def paired_distance(reference_descriptor: np.ndarray, other: np.ndarray, box: Detection,
                    other_detections: list[Detection]) -> tuple[float, str]:
    """Identity distance of the view ``other`` to a reference face, and which box decided it.

    ``reference_descriptor`` is the reference's face in ``box``. Both images are renders of the same camera view of heads on the same frame (an input and
    its anonymized output; or a copy registered to it), so the reference's face ``box`` frames
    the other's face too. The other head is described inside that box and inside its own best
    detection, if any; the smaller distance counts. A face the detectors no longer find is
    still compared, so "no face found" can never pass as "not the same person".
    """
    candidates = [(float(np.linalg.norm(descriptor(other, box) - reference_descriptor)), "input box")]
    own = _best(other_detections)
    if own is not None:
        candidates.append((float(np.linalg.norm(descriptor(other, own) - reference_descriptor)), f"own {own.detector} box"))
    return min(candidates)


def _best(detections: list[Detection]) -> Detection | None:
    # The landmark model was trained on HOG-style boxes; prefer them when both detectors agree.
    hog = [d for d in detections if d.detector == "hog"]
    return (hog or detections or [None])[0]
