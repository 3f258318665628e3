"""The head atlas: built from pinned registry wheels (:mod:`.build`), found and checked (:mod:`.load`).

An atlas is a folder of NIfTI images on one template grid (RAS+): the template T1w, the face
ROI, the brain, brain_neck (what stays), the face to paste and, optionally, the ears.
"""
