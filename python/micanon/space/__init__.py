"""Space: grids and resampling, the ANTs wrapper, similarity measures, registrations.

Transforms are plain 4x4 matrices in RAS world millimetres (the NIfTI convention), named
``<from>_to_<to>``: a matrix that maps a point of the ``from`` scanner space to the matching
point of the ``to`` space. Only :mod:`micanon.space.ants` imports ANTsPy.
"""
