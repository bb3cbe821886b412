"""What every step leans on, and nothing above it: processes, files, names, secrets.

- ``procs``: child servers (start, wait until ready, stop); ``reaper``: the
  sidecar that stops what a killed run left running.
- ``durable``: atomic files, fsync, the run folder's lock.
- ``ids``: the one id rule and the NATS name builder; ``redact``: the one
  redaction of secrets; ``console``: what a run's console shows.
"""
