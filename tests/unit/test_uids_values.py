from __future__ import annotations

import pytest

from openpacs.dicom import values
from openpacs.dicom.uids import InvalidUID, check_uid


@pytest.mark.parametrize("uid", ["1.2.3", "1.2.840.10008.5.1.4.1.1.2", "1.2.3\0", "1.2.03 "])
def test_valid_uids(uid: str) -> None:
    assert check_uid(uid, "X") == uid.rstrip("\0 ")


@pytest.mark.parametrize(
    "uid",
    ["../../x", "/etc/x", "1..2", ".1.2", "1.2.", "1.2.3/4", "1.2.a", "1" * 65, "", None, "1\\2"],
)
def test_hostile_or_malformed_uids(uid: str | None) -> None:
    with pytest.raises(InvalidUID):
        check_uid(uid, "SOPInstanceUID")


def test_dates_and_times_become_sortable() -> None:
    assert values.da("20240131") == "20240131"
    assert values.da("2024.01.31") == "20240131"
    assert values.da("20241331") is None
    assert values.da("") is None
    assert values.tm("0930") == "093000.000000"
    assert values.tm("093015.5") == "093015.500000"
    assert values.tm("09:30:15") == "093015.000000"
    assert values.tm("2561") is None
    assert values.tm("0930") < values.tm("093000.1")  # type: ignore[operator]


def test_person_name_groups() -> None:
    groups = values.person_name("Wang^XiaoMing=王^小明=wang^xiao ming")
    assert groups.full == "Wang^XiaoMing=王^小明=wang^xiao ming"
    assert groups.alphabetic == "Wang^XiaoMing"
    assert groups.ideographic == "王^小明"
    assert groups.phonetic == "wang^xiao ming"
    assert values.person_name(None).full is None


def test_text_joins_multiple_values_and_drops_padding() -> None:
    assert values.text(["CT", "PT"]) == "CT\\PT"
    assert values.text("  ") is None
    assert values.integer("12 ") == 12
    assert values.integer("x") is None


@pytest.mark.parametrize(
    ("name", "folded"),
    [
        ("Müller^Jürgen", " muller jurgen "),
        # East Asian groups also run together, as people type them
        ("Zhang^San=张^三=チョウ^サン", " zhang san 张 三 チョウ サン 张三 チョウサン "),
        ("王^小明", " 王 小明 王小明 "),
        ("王小明", " 王小明 "),
        ("Wang^Xiaoming", " wang xiaoming "),
        ("  ", None),
        (None, None),
        ("ÅSTRÖM^ÉLISE^^DR", " astrom elise dr "),
    ],
)
def test_fold_name(name: str | None, folded: str | None) -> None:
    assert values.fold_name(name) == folded


def test_a_folded_query_is_only_split() -> None:
    assert values.fold_name("zha 张^三", stored=False) == " zha 张 三 "
