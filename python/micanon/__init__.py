"""micanon engine: face anonymization of anatomical MRI, brain untouched.

The TypeScript side calls :mod:`micanon.api` only; every other module works on images.
"""

__version__ = "0.1.0"
