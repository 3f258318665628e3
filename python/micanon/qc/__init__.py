"""Per-output quality control: each anonymized image kept its brain and header and lost its face.

Spaces. An output shares its input's voxel grid and scanner space; the native brain guard and
face ROI masks the caller passes are on that grid too. Surface renders and slices are drawn in
the viewing frame of :mod:`micanon.render` (scanner RAS turned by the rotation of
``head_affine``, scanner -> atlas), so every head is seen upright.

Checks, per output, one module each (numbers behind the face rules: docs/qc-calibration.md):

- :mod:`.brain`: raw stored values of input file vs output file inside the brain guard, bit for
  bit (re-read from disk, independent of the count the engine reported, which must be 0 too);
- :mod:`.header`: shape, affine, qform/sform and their codes, stored dtype, scl_slope/scl_inter,
  voxel sizes and units equal to the input's;
- :mod:`.face_checks`, deface: no face found by the CNN in any view of the output, and every eye
  and nose tip found in the input volume removed; inconclusive when neither shows a face;
- :mod:`.identity`, reface/warpface: identity distance between input and output faces above
  ``face.IDENTITY_THRESHOLD`` in every view where the input shows a face; inconclusive when no
  view does;
- :mod:`.registration`: judged by the caller; "poor" fails, "scanner" (not registered, scanner
  coordinates) warns.

:mod:`.verdict` turns the checks into the output's status and reason; :mod:`.seeing` renders a
head and finds its faces, :mod:`.figures` draws the slices, :mod:`.request` parses the bridge
request and :mod:`.run` checks every output of one call.
"""

from micanon.qc.brain import brain_changes
from micanon.qc.face_checks import deface_check, face_landmarks_removed
from micanon.qc.figures import SeenImage, see_image
from micanon.qc.header import header_differences, shape_text
from micanon.qc.identity import face_removed_head, identity_check
from micanon.qc.request import METHODS, REGISTRATION_FLAGS, QcItem, QcRequest, Registration
from micanon.qc.run import check_outputs
from micanon.qc.seeing import CNN_SIZE, REPORT_VIEWS, Head

__all__ = [
    "CNN_SIZE",
    "METHODS",
    "REGISTRATION_FLAGS",
    "REPORT_VIEWS",
    "Head",
    "QcItem",
    "QcRequest",
    "Registration",
    "SeenImage",
    "brain_changes",
    "check_outputs",
    "deface_check",
    "face_landmarks_removed",
    "face_removed_head",
    "header_differences",
    "identity_check",
    "see_image",
    "shape_text",
]
