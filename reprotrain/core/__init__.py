"""The pure core: run records, the pin policy, config canonicalisation and digests.

Nothing in this package imports git, DVC, MLflow or Hydra; it works on plain data that the
adapters hand it, so it is unit-tested with in-memory values alone.
"""
