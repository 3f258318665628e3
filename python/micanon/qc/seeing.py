"""Seeing a head as QC does: one image rendered once, its views searched for faces (cached).

Renders are drawn in the viewing frame of :mod:`micanon.render` (scanner RAS turned by the
rotation of ``head_affine``, scanner -> atlas), so every head is seen upright. Record view names
are the report's (``REPORT_VIEWS``), render view names are :data:`micanon.render.VIEWS`'s.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
from PIL import Image

from micanon import face, render
from micanon.io import StoredImage

# Render view -> view name in QC records: exactly the names of src/engine/qc-record.ts
# RENDER_VIEWS, the one definition (src/engine/qc-record.test.ts checks it), which orders the report.
REPORT_VIEWS = {
    "front": "front",
    "left45": "left34",
    "right45": "right34",
    "left90": "left",
    "right90": "right",
    "front_low": "low",
    "left_low": "left_low",
    "right_low": "right_low",
    "front_high": "high",
}

# The CNN looks at renders shrunk to this size (px): it finds a face in the same views at 140-320
# px and a quarter of the cost at 160 (docs/qc-calibration.md). HOG and the face descriptor keep
# the 320 px render the identity threshold was calibrated on.
CNN_SIZE = 160


class Head:
    """One image file, read and rendered once, with the faces found in its views (cached)."""

    def __init__(self, stored: StoredImage, head_affine: np.ndarray | None, threshold: float | None = None,
                 volume: np.ndarray | None = None, camera: tuple[np.ndarray, float] | None = None):
        self.stored = stored
        # Volume 0 in real units on the native grid (or ``volume`` on the same grid), shared by
        # the renders and the slices (the renderer zeroes NaNs in it, harmless to both).
        self.nifti = nib.Nifti1Image(stored.real(0) if volume is None else volume, stored.affine)
        # ``camera``: another head's framing (render.HeadRenders.camera), to be seen exactly as it is.
        self.renders = render.render_views(self.nifti, head_affine=head_affine, threshold=threshold, camera=camera)
        self._found: dict[tuple[str, str], list[face.Detection]] = {}
        self._descriptors: dict[str, np.ndarray | None] = {}

    @property
    def has_surface(self) -> bool:
        return self.renders.skin.ok

    def detections(self, view: str, detector: str) -> list[face.Detection]:
        """Faces one detector finds in one view (boxes in render pixels), computed once."""
        key = (view, detector)
        if key not in self._found:
            image = self.renders.views[view]
            if detector == "cnn":
                self._found[key] = _cnn_on_shrunk(image)
            else:
                self._found[key] = face.detect(image, (detector,))
        return self._found[key]

    def fired(self) -> dict[str, list[str]]:
        """Report view -> detectors that fired, for every view some detector has looked at."""
        out: dict[str, list[str]] = {}
        for view in self.renders.views:
            run = [d for d in face.DETECTORS if (view, d) in self._found]
            if run:
                out[view_name(view)] = [d for d in run if self._found[(view, d)]]
        return out

    def descriptor(self, view: str) -> np.ndarray | None:
        """Face descriptor of one view: on the best HOG box, else the best CNN box (None: no face).

        HOG boxes first, as face._best picks them (the landmark model was trained on them);
        the CNN only runs where HOG finds nothing.
        """
        if view not in self._descriptors:
            best = self.best(view)
            self._descriptors[view] = None if best is None else face.descriptor(self.renders.views[view], best)
        return self._descriptors[view]

    def best(self, view: str) -> face.Detection | None:
        """The face box the descriptor uses in one view: best HOG, else best CNN (None: no face)."""
        return (self.detections(view, "hog") or self.detections(view, "cnn") or [None])[0]


def _cnn_on_shrunk(image: np.ndarray) -> list[face.Detection]:
    """The CNN detector on a copy shrunk to CNN_SIZE px; boxes scaled back to ``image``'s pixels."""
    if image.shape[0] <= CNN_SIZE:
        return face.detect(image, ("cnn",))
    scale = image.shape[0] / CNN_SIZE
    small = np.asarray(Image.fromarray(image).resize((CNN_SIZE, CNN_SIZE), Image.BILINEAR))
    return [
        face.Detection("cnn", tuple(int(round(v * scale)) for v in d.box), d.score)  # type: ignore[arg-type]
        for d in face.detect(small, ("cnn",))
    ]


def view_name(view: str) -> str:
    """The record's name of a render view."""
    return REPORT_VIEWS.get(view, view)


def views_text(views) -> str:
    """Render views by their record names, comma separated ("none" when there are none)."""
    return ", ".join(view_name(v) for v in views) or "none"
