"""The ``fleetbreaker`` command's parts: ``fleetbreaker.cli`` is its entry point.

``times`` reads durations and shows times; ``views`` turns circuits into tables, blocks and
JSON; ``commands`` runs list, show and the operator's writes; ``watch`` is the live view;
``parser`` declares the command line; ``simulate`` runs the fleet simulator (``fleetbreaker._sim``);
``status`` is the deprecated ``status`` command.
"""
