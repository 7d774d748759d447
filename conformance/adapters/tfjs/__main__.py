"""``python -m conformance.adapters.tfjs [--install]``: show or install the tfjs port's node modules."""

import sys

from .install import main

sys.exit(main())
