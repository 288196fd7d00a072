"""`python -m hastack.sim ...` is `hastack sim ...`."""

import sys

from hastack.sim.cli import main

sys.exit(main())
