"""In which character set a modality gets its worklist, and Chinese in pinyin when it cannot
take Chinese characters (PS3.5 6.1: a query's SpecificCharacterSet says what the requester reads).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydicom import Dataset

from openpacs.config import NamesPolicy, WorklistStation
from openpacs.dicom.charset import answer_charset, can_encode
from openpacs.dicom.romanise import romanise_dataset

# A text that only a character set holding Chinese characters can write.
_CHINESE_PROBE = "中"


@dataclass(frozen=True)
class Policy:
    """What one modality gets: a forced character set (or none) and the names rule."""

    charset: tuple[str, ...] = ()
    names: NamesPolicy = NamesPolicy.auto


def policy_for(calling_ae: str, stations: Sequence[WorklistStation]) -> Policy:
    for station in stations:
        if station.ae_title == calling_ae:
            terms = tuple(term.strip() for term in station.charset.split("\\") if term.strip())
            return Policy(terms, station.names)
    return Policy()


def encode_for(ds: Dataset, requested: Sequence[str], policy: Policy) -> tuple[str, ...]:
    """Make `ds` (decoded text) writable for the requester and return the SpecificCharacterSet
    to write it with. Romanises the text that does not fit when the requester cannot read
    Chinese characters (no charset or Latin-1 asked, and names = auto) or always (romanise)."""
    terms = policy.charset or tuple(requested)
    takes_chinese = can_encode(_CHINESE_PROBE, terms)
    if policy.names is NamesPolicy.romanise or (
        policy.names is NamesPolicy.auto and not takes_chinese
    ):
        romanise_dataset(ds, lambda text: can_encode(text, terms))
        return terms
    return answer_charset(ds, terms)
