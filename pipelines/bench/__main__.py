"""``python -m pipelines.bench``: the executors against raw vLLM (see the package)."""

import sys

from pipelines.bench import main

sys.exit(main())
