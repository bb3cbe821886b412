"""The steps of one run: tasks → council → stage → stream (feed and land).

- ``tasks``: the role's JSONL tasks, validated (file, line, field).
- ``council``: task x agent requests (temperatures, seeds), cut into batches;
  ``scaling``: the same tasks with councils of 1, 3, 5 … agents.
- ``stage``: the batch UDF every executor maps (one engine per replica).
- ``feed``: the one loop that feeds a run's plan to the engines (the first
  wave through ``Executor.map``, what landed answers make ready through
  ``Executor.submitter``) behind one ``cache`` gate; ``stream`` lands each
  batch as it finishes: a part on disk (``parts``) and its messages on the
  sink; ``embed_ahead`` embeds a batch's proposals as it lands; ``phases``
  says where the time and the driver's memory went.

``pipelines.driver`` runs these steps in order; ``pipelines.deliberation``
builds on them when the council deliberates.
"""
