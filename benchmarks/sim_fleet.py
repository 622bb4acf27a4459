"""The fleet simulation, now ``fleetbreaker simulate`` (docs/simulate.md): this script passes
its arguments on, so ``python benchmarks/sim_fleet.py --compare powertools --check`` still works.
"""

from __future__ import annotations

import sys

from fleetbreaker.cli import main

if __name__ == "__main__":
    sys.exit(main(["simulate", *sys.argv[1:]]))
