"""The garbage collector's settings for a long-running service process.

Measured in the alert worker at 500 posts/s (bench/throughput.py): with CPython's defaults it ran a full
collection every ~2 s, each walking ~320,000 objects (the gazetteer, rules, imports) for 150-200 ms, during
which no event, webhook or sweep moved: the POST-to-webhook p99's spikes. A batch's rows (ORM objects,
messages) live for one transaction; with the default young-generation threshold (700 allocations) many
survive two young collections and pile up towards the next full one.
"""

import functools
import gc

YOUNG_THRESHOLD = 20_000
"""Allocations between young collections: a batch's short-lived objects die before they are promoted."""


@functools.cache
def settle() -> None:
    """Call once what lives as long as the process is loaded: freezes it out of every later collection, and
    raises the young generation's threshold. Reference counting still frees acyclic garbage at once; only
    cycles wait a little longer. Once per process (`up` starts alert and classify in one; tests start many
    services): a frozen object is never collected, so freezing again would keep whatever is alive by then."""
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(YOUNG_THRESHOLD, young), middle, old)
