"""Decoding media into arrays: images (:mod:`.images`), audio (:mod:`.audio`) and video frames (:mod:`.video`).

The ground floor: models and pipelines import from here; this package imports neither.
"""
