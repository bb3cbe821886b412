"""What the run's parts agree on, stated once: the deliberation protocol
(``protocol``: which answers a council owes and when, the chair's stand-in),
the run folder (``run_folder``: every file's name, reading older versions,
the final-round filter) and the exit statuses (``exits``). Nothing here
starts a component or imports another part of ``pipelines``.
"""
