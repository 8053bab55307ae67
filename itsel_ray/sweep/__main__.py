"""`python -m itsel_ray.sweep STAGE`: the study as a resumable Ray Tune sweep (see --help)."""

import sys

from itsel_ray.sweep.cli import main

sys.exit(main())
