"""Helpers that tests, benchmarks and examples share: generated worlds, hostile media, strategies.

- :mod:`~mmrec.testing.worlds` — clustered interaction worlds, fast encoder settings
- :mod:`~mmrec.testing.media_corpus` — broken, odd and huge media files with their expected outcome
- :mod:`~mmrec.testing.strategies` — hypothesis strategies (needs the ``dev`` extra)
"""
