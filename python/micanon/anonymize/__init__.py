"""Anonymize: atlas masks on the native grid, the subject's own brain, the guard, the face warp
and the three methods. Arrays in, arrays out; files are read and written by micanon.session."""
