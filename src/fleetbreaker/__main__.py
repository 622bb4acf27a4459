"""``python -m fleetbreaker``: the command line (see ``fleetbreaker.cli``)."""

from fleetbreaker.cli import main

if __name__ == "__main__":  # spawned demo workers import this module too: run nothing then
    raise SystemExit(main())
