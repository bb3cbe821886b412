"""A deliberation: rounds of answers, then rankings, a chair and a judge.

- ``plan``: which request becomes ready when (the protocol's steps).
- ``prompts``: the prompts of each step, built from the answers before it.
- ``feed``: feeds a plan's ready requests to the engines and lands them.
- ``rounds``: the round, ranking, chair and judge tables and their figures.
"""
