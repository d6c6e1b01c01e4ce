"""Config-file runs behind the command line.

- :mod:`~mmrec.jobs.train` — ``mmrec train``: split, fit a two-tower model, save model and vectors
- :mod:`~mmrec.jobs.evaluate` — ``mmrec evaluate``: every model of a config on one split, one table
"""
