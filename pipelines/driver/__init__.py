"""A run from start to record, on the driver: the layer that calls all the others.

- ``pipeline``: :func:`run_pipeline`: load → feed (``flow`` or
  ``deliberation``) → score (``scoring``) → settle (the sink) → record
  (``runinfo``: run.json, ``report``, ``trackers``).
- ``feeders``: the run's plan (one round, or a deliberation's) behind its
  cache gate, fed by ``flow.feed``'s one loop.
- ``preflight``: fail fast on the set-up before any cluster or engine starts.
- ``summary``: the console's summary; ``verdict``: the ``fail_on`` rules that
  make the exit status.
"""
