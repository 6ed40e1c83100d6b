"""Readable default run names, like `brave-heron-42`."""

from __future__ import annotations

import random

_ADJ = ("amber", "bold", "brave", "bright", "calm", "clever", "crisp", "daring", "eager", "fair", "fleet",
        "gentle", "grand", "keen", "lively", "lucid", "merry", "nimble", "noble", "quiet", "rapid", "sharp",
        "silent", "steady", "swift", "tidy", "vivid", "wise")
_NOUN = ("anchor", "barge", "bow", "caravel", "compass", "dock", "galley", "gondola", "harbor", "hull", "keel",
         "lagoon", "lantern", "mast", "oar", "pier", "prow", "rudder", "sail", "schooner", "stern", "tide",
         "wharf", "yard")


def run_name() -> str:
    rng = random.SystemRandom()
    return f"{rng.choice(_ADJ)}-{rng.choice(_NOUN)}-{rng.randint(1, 999)}"
