"""``python -m pyspark_experiments.sync``: the same as ``pyspark-experiments sync``."""

import sys

from .cli import main

sys.exit(main())
