"""Chinese in pinyin for modalities that read only ASCII or Latin-1."""

from __future__ import annotations

import pytest
from pydicom import Dataset

from openpacs.dicom.romanise import romanise_dataset, romanise_name, romanise_text


def ascii_only(text: str) -> bool:
    return text.isascii()


def latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeError:
        return False
    return True


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("张三", "Zhang^San"),
        ("张^三", "Zhang^San"),
        ("王小东", "Wang^Xiaodong"),
        ("欧阳娜娜", "Ouyang^Nana"),  # a two-character surname
        ("单田芳", "Shan^Tianfang"),  # a surname reading
        ("曾小贤", "Zeng^Xiaoxian"),
        ("Wang^XiaoDong=王^小东", "Wang^XiaoDong"),  # the romanised group given wins
        ("=李^四", "Li^Si"),
        ("Müller^Jürgen", "Muller^Jurgen"),
    ],
)
def test_names_in_pn_form(name: str, expected: str) -> None:
    assert romanise_name(name, ascii_only) == expected


def test_what_fits_is_kept() -> None:
    assert romanise_name("Müller^Jürgen", latin1) == "Müller^Jürgen"
    assert romanise_text("胸部CT平扫", ascii_only) == "Xiong Bu CT Ping Sao"
    assert romanise_text("头颅 MR 增强", ascii_only) == "Tou Lu MR Zeng Qiang"
    assert romanise_text("Ω", ascii_only) == "?"  # nothing else left to do


def test_a_dataset_and_its_sequences() -> None:
    ds = Dataset()
    ds.PatientName = "张^三"
    ds.PatientID = "P1"
    step = Dataset()
    step.ScheduledProcedureStepDescription = "胸部"
    step.ScheduledPerformingPhysicianName = "李四"
    ds.ScheduledProcedureStepSequence = [step]
    assert romanise_dataset(ds, ascii_only)
    assert str(ds.PatientName) == "Zhang^San"
    assert step.ScheduledProcedureStepDescription == "Xiong Bu"
    assert str(step.ScheduledPerformingPhysicianName) == "Li^Si"
    assert not romanise_dataset(ds, ascii_only)  # nothing left to change
