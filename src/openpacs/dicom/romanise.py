"""Chinese text in Latin letters (Hanyu Pinyin, without tones) for peers that only take ASCII or
Latin-1: person names as proper PN (`张三` → `Zhang^San`, `王小东` → `Wang^Xiaodong`), other text
word by word (`胸部CT` → `Xiong Bu CT`). What fits the peer's character set is kept as it is; other
letters lose their accents; only what still does not fit becomes '?'.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable

from pydicom import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName
from pypinyin import Style, lazy_pinyin

# Surnames of two characters: the given name starts after them.
COMPOUND_SURNAMES = frozenset(
    (
        "欧阳",
        "司马",
        "诸葛",
        "上官",
        "东方",
        "皇甫",
        "尉迟",
        "公孙",
        "慕容",
        "令狐",
        "长孙",
        "宇文",
        "司徒",
        "夏侯",
        "轩辕",
        "端木",
        "独孤",
        "南宫",
        "西门",
        "百里",
        "呼延",
        "赫连",
        "澹台",
        "公冶",
        "宗政",
        "濮阳",
        "太叔",
        "申屠",
        "钟离",
        "闻人",
        "万俟",
        "拓跋",
        "第五",
    )
)
# Characters read differently as a surname than in common words.
SURNAME_READINGS = {
    "单": "shan",
    "曾": "zeng",
    "解": "xie",
    "区": "ou",
    "仇": "qiu",
    "查": "zha",
    "朴": "piao",
    "乐": "yue",
    "盖": "ge",
    "覃": "qin",
    "繁": "po",
    "员": "yun",
    "尉迟": "yuchi",
    "万俟": "moqi",
    "长孙": "zhangsun",
}
_TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "UC"})

Fits = Callable[[str], bool]


def is_han(char: str) -> bool:
    return "CJK UNIFIED IDEOGRAPH" in unicodedata.name(char, "") or "\u3400" <= char <= "\u9fff"


@functools.lru_cache(maxsize=65536)
def _syllables(text: str) -> tuple[str, ...]:
    # Names and descriptions recur in every worklist answer; pypinyin's lookup does not.
    return tuple(lazy_pinyin(text, style=Style.NORMAL, errors="default"))


def _surname(text: str) -> str:
    reading = SURNAME_READINGS.get(text)
    if reading is None and text and text[0] in SURNAME_READINGS:
        reading = SURNAME_READINGS[text[0]] + "".join(_syllables(text[1:]))
    return (reading or "".join(_syllables(text))).capitalize()


def _given(text: str) -> str:
    return "".join(_syllables(text)).capitalize()


def romanise_name(name: str, fits: Fits) -> str:
    """A PN value for a peer whose character set takes what `fits` says: its alphabetic group
    when that fits, else the ideographic (or alphabetic) group spelt in pinyin."""
    groups = str(name).split("=")
    alphabetic = groups[0]
    if alphabetic and fits(alphabetic):
        return alphabetic
    source = next((g for g in groups[1:2] if g), alphabetic)
    components = source.split("^")
    if len(components) == 1 and components[0] and all(is_han(c) for c in components[0]):
        whole = components[0]
        cut = 2 if len(whole) > 2 and whole[:2] in COMPOUND_SURNAMES else 1
        components = [whole[:cut], whole[cut:]] if len(whole) > 1 else [whole]
    spelt = []
    for index, component in enumerate(components):
        if component and any(is_han(c) for c in component):
            spelt.append(_surname(component) if index == 0 else _given(component))
        else:
            spelt.append(_fallback(component, fits))
    return "^".join(spelt).rstrip("^")


def romanise_text(text: str, fits: Fits) -> str:
    """Free text for such a peer: each run of Chinese characters as capitalised syllables
    separated by spaces, the rest kept where it fits."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            words = " ".join(s.capitalize() for s in _syllables("".join(run)))
            if out and out[-1] and not out[-1].endswith(" "):
                words = " " + words
            out.append(words)
            run.clear()

    for char in text:
        if is_han(char):
            run.append(char)
            continue
        if run:
            flush()
            if not char.isspace():
                out.append(" ")
        out.append(_fallback(char, fits))
    flush()
    return "".join(out)


def _fallback(text: str, fits: Fits) -> str:
    """Keep what fits; letters with accents lose them; the rest becomes '?'."""
    if fits(text):
        return text
    kept = []
    for char in text:
        if fits(char):
            kept.append(char)
            continue
        plain = "".join(
            c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
        )
        kept.append(plain if plain and fits(plain) else "?")
    return "".join(kept)


def romanise_dataset(ds: Dataset, fits: Fits) -> bool:
    """Romanise, in place, every PN and text value of `ds` (sequence items too) that does not
    fit; whether anything changed."""
    changed = False
    for element in ds:
        if element.VR == "SQ":
            for item in element.value or ():
                changed = romanise_dataset(item, fits) or changed
            continue
        if element.VR != "PN" and element.VR not in _TEXT_VRS:
            continue
        if element.value is None or element.value == "":
            continue
        many = isinstance(element.value, MultiValue | list)
        old = [str(v) for v in element.value] if many else [str(element.value)]
        if all(fits(v) for v in old):
            continue
        if element.VR == "PN":
            new: list[str | PersonName] = [PersonName(romanise_name(v, fits)) for v in old]
        else:
            new = [romanise_text(v, fits) for v in old]
        element.value = new if many else new[0]
        changed = True
    return changed
