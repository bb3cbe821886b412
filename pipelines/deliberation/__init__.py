"""A deliberation: rounds of answers, then rankings, a chair and a judge.

- ``plan``: which request becomes ready when (the protocol's steps); the run's
  feed (``pipelines.flow.feed``) takes it to the engines.
- ``prompts``: the prompts of each step, built from the answers before it.
- ``rounds``: the round, ranking, chair and judge tables and their figures.
"""
