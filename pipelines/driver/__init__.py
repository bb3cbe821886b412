"""A run from start to record, on the driver: the layer that calls all the others.

- ``pipeline``: :func:`run_pipeline`: load → feed (``flow`` or
  ``deliberation``) → score (``scoring``) → settle (the sink) → record
  (``runinfo``: run.json, ``report``, ``trackers``).
- ``feeders``: what the run feeds its engines, behind one protocol: a
  single-answer run's batches (``Executor.map``) or a deliberation's plan.
- ``preflight``: fail fast on the set-up before any cluster or engine starts.
- ``summary``: the console's summary; ``verdict``: the ``fail_on`` rules that
  make the exit status.
"""
