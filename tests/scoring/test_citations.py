"""Every table entry of configs/scoring.yaml names a known source; explanations cite them."""

from __future__ import annotations

import copy

import pytest

from pipeline.errors import ConfigError
from pipeline.scoring import score_case
from pipeline.scoring.tables import check_citations, iter_cited_entries, load_tables, parse_tables

T = load_tables()


def test_every_entry_has_a_known_source() -> None:
    entries = iter_cited_entries({k: v for k, v in T.raw.items() if k != "sources"})
    assert len(entries) > 100
    for path, entry in entries:
        assert entry.get("source") in T.raw["sources"], path
        assert T.source(entry["source"]).strip(), path


@pytest.mark.parametrize(
    "section",
    [
        "sins",
        "tokuhashi",
        "tomita",
        "modified_bauer",
        "nesms",
        "noms",
        "escc",
        "performance",
        "histology",
        "conventions",
    ],
)
def test_each_section_is_covered(section: str) -> None:
    paths = [p for p, _ in iter_cited_entries({section: T.raw[section]})]
    assert paths, section


def test_uncited_entry_is_refused() -> None:
    raw = copy.deepcopy(T.raw)
    del raw["sins"]["pain"]["mechanical"]["source"]
    with pytest.raises(ConfigError) as exc:
        check_citations(raw)
    assert exc.value.code == "CONFIG_UNCITED"
    raw = copy.deepcopy(T.raw)
    raw["tomita"]["growth"]["rapid"]["source"] = "nowhere2020"
    with pytest.raises(ConfigError):
        parse_tables(raw)


def test_every_sins_level_is_in_exactly_one_class() -> None:
    seen: dict[str, str] = {}
    for cls, row in T.raw["sins"]["location"].items():
        for lv in row["levels"]:
            assert lv not in seen, (lv, cls, seen.get(lv))
            seen[lv] = cls
    expected = {
        "C0",
        *(f"C{i}" for i in range(1, 8)),
        *(f"T{i}" for i in range(1, 13)),
        *(f"L{i}" for i in range(1, 6)),
        *(f"S{i}" for i in range(1, 6)),
    }
    assert set(seen) == expected


def test_explanation_gives_rule_and_source_for_every_point() -> None:
    out = score_case(
        {
            "sins": {
                "levels": ["T12"],
                "pain": "mechanical",
                "lesion": "lytic",
                "alignment": "normal",
                "collapse": "lt50",
                "posterolateral": "unilateral",
            },
            "tokuhashi": {
                "kps": 80,
                "extraspinal_bone_mets": 0,
                "vertebral_body_mets": 1,
                "visceral_major_organs": "none",
                "primary": "kidney",
                "frankel": "D",
            },
        },
        explain=True,
    )
    items = out["explanation"]
    sins_pts = sum(i["points"] for i in items if i["system"] == "sins")
    toku_pts = sum(i["points"] for i in items if i["system"] == "tokuhashi")
    assert (sins_pts, toku_pts) == (out["sins_total"], out["tokuhashi_total"]) == (11, 12)
    for i in items:
        assert (
            i["rule"] and i["source"] in T.raw["sources"] and i["citation"] == T.source(i["source"])
        )


def test_conventions_are_checked() -> None:
    with pytest.raises(ConfigError):
        T.with_conventions(sins_collapse_noise_floor_pct="abc")
    with pytest.raises(ConfigError):
        T.with_conventions(escc_1c_class="maybe")
    with pytest.raises(ConfigError):
        T.with_conventions(no_such_rule=1)
    assert (
        T.with_conventions(sins_collapse_noise_floor_pct=5).convention(
            "sins_collapse_noise_floor_pct"
        )
        == 5
    )
