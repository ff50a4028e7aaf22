"""The simulator's bad cards for fleet rehearsals (backend.sim.slow_cards, hot_cards,
leaky_cards; docs/fleet.md): what an entry may be."""

from __future__ import annotations

import re
from typing import Any

from jobs.checks import ConfigError

CARD = re.compile(r"\d+:\d+")
SIM_CARD_KEYS = ("slow_cards", "hot_cards", "leaky_cards")


def check_sim_cards(o: Any, serving: bool) -> None:
    """backend.sim.{slow,hot,leaky}_cards (``o``: the SimOptions): lists of NODE:CARD, for
    static cells only (``serving``: the cell is a serving cell)."""
    for name in SIM_CARD_KEYS:
        cards = getattr(o, name)
        bad = [c for c in cards if not isinstance(c, str) or not CARD.fullmatch(c)]
        if bad:
            raise ConfigError(
                f"backend.sim.{name}={cards!r} is not allowed: a list of NODE:CARD (node "
                f"index : card id, whole numbers >= 0), e.g. [1:3]; bad: {bad[0]!r}"
            )
        if cards and serving:
            raise ConfigError(
                f"backend.sim.{name} is not allowed with workload=serve: the simulated "
                "cards act on static cells only"
            )
