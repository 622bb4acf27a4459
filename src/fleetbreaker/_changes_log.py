"""The log line of each persisted change of a circuit, with the stable ``extra`` fields JSON
log pipelines index: ``circuit``, ``from_state``, ``to_state``, ``rule``, ``epoch``,
``actor``, ``reason`` (and ``shadow``). WARNING when a circuit opens (a trip,
a failed probe, a forced open, a trip an override kept back), INFO otherwise.

One function, so that a transition written by a breaker, an operator's override and a
forced-closed circuit's "would have tripped" read alike in every pipeline.
"""

from __future__ import annotations

import logging

__all__ = ["log_change"]

logger = logging.getLogger("fleetbreaker")


def log_change(
    circuit: str,
    from_state: str,
    to_state: str,
    *,
    epoch: int,
    actor: str | None,
    reason: str | None,
    rule: str | None = None,
    opening: bool,
    shadow: bool = False,
    what: str = "",
) -> None:
    """Log one change of ``circuit`` (``opening``: at WARNING); ``what`` adds to the
    message."""
    level = logging.WARNING if opening else logging.INFO
    logger.log(
        level,
        "%scircuit %r: %s -> %s%s by %s: %s (epoch %d)",
        "[shadow] " if shadow else "",
        circuit,
        from_state,
        to_state,
        f" {what}" if what else "",
        actor,
        reason,
        epoch,
        extra={
            "circuit": circuit,
            "from_state": from_state,
            "to_state": to_state,
            "rule": rule,
            "epoch": epoch,
            "actor": actor,
            "reason": reason,
            "shadow": shadow,
        },
    )
