"""``python -m pipelines.stopping [--timeout S]``: SIGTERM every council-eval
driver of this user on this host and wait for them to exit (a pod's ``preStop``
hook). See :mod:`pipelines.runtime.stopping`."""

import sys

from pipelines.runtime.stopping import main

if __name__ == "__main__":
    sys.exit(main())
