"""``python -m pyspark_experiments``: the same as the ``pyspark-experiments`` command."""

import sys

from .cli import main

sys.exit(main())
