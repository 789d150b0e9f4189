"""Clustering: several reports of one attack are one incident; far away or hours later is another one."""

from datetime import timedelta

from services.alert.incidents import ClusterPolicy, choose_incident, merge, open_incident
from tests.alert.events import T0, TILLABERI, event, vbied_niamey_en, vbied_niamey_fr

POLICY = ClusterPolicy(radius_km=25, window=timedelta(hours=6))


def test_english_and_french_reports_of_one_car_bomb_are_one_incident() -> None:
    incident = open_incident("inc-1", vbied_niamey_en())
    assert choose_incident([incident], vbied_niamey_fr(), POLICY) is incident
    merged = merge(incident, vbied_niamey_fr())
    assert merged.tactics == ["suicide_attack", "vbied"]
    assert merged.killed == 3
    assert merged.first_seen_at == T0 and merged.last_seen_at == T0 + timedelta(hours=1)


def test_same_perpetrator_other_tactic_joins() -> None:
    incident = open_incident("inc-1", vbied_niamey_en())
    follow_up = event("e2", tactics=("armed_assault",), at=T0 + timedelta(minutes=30))
    assert choose_incident([incident], follow_up, POLICY) is incident


def test_sub_unit_and_parent_share_an_incident() -> None:
    first = event("e1", actors=(("KATIBA_MACINA", "perpetrator"),), tactics=("ambush",))
    second = event("e2", actors=(("JNIM", "perpetrator"),), tactics=("armed_assault",))
    assert choose_incident([open_incident("i", first)], second, POLICY) is not None


def test_far_away_opens_a_new_incident() -> None:
    incident = open_incident("inc-1", vbied_niamey_en())
    assert choose_incident([incident], event("e2", place=TILLABERI), POLICY) is None


def test_hours_later_opens_a_new_incident() -> None:
    incident = open_incident("inc-1", vbied_niamey_en())
    assert choose_incident([incident], event("e2", at=T0 + timedelta(hours=7)), POLICY) is None


def test_nothing_in_common_opens_a_new_incident() -> None:
    incident = open_incident("inc-1", vbied_niamey_en())
    other = event("e2", actors=(("NIGER_FDS", "perpetrator"),), tactics=("drone_strike",))
    assert choose_incident([incident], other, POLICY) is None


def test_closest_incident_wins() -> None:
    near = open_incident("near", event("a", place=("Niamey", 13.52, 2.11, "NE")))
    farther = open_incident("farther", event("b", place=("Niamey east", 13.55, 2.25, "NE")))
    assert choose_incident([farther, near], event("c", place=("Niamey", 13.515, 2.11, "NE")), POLICY) is near


def test_merging_the_same_report_twice_changes_nothing() -> None:
    once = merge(open_incident("inc-1", vbied_niamey_en()), vbied_niamey_fr())
    assert merge(once, vbied_niamey_fr()) == once
