"""The DICOM JSON model (PS3.18 Annex F), both ways.

pydicom's `Dataset.to_json_dict` keeps insertion order, writes DS and IS as JSON numbers (so
"0.50" comes back as 0.5) and reads them back the same way; DICOMweb clients compare text, so
this module writes its own:

- keys are the 8-hex tags in tag order; every element carries its `vr`; an empty element has
  no `Value` (an empty value inside a multi-valued one is `null`);
- PN values are objects with the non-empty `Alphabetic`, `Ideographic` and `Phonetic` groups;
- DS and IS values are JSON strings holding the stored text (CP-1861 allows Number or String;
  a string is the only form that keeps "0.50" or "+1");
- AT values are 8-hex strings; SQ values are arrays of item objects;
- binary values (OB, OD, OF, OL, OV, OW, UN) longer than `threshold` bytes get a
  `BulkDataURI` from the caller's `bulk_uri(path)` and otherwise an `InlineBinary` (base64);
  `path` names the element: 8-hex tags joined by '.', with the item index after a sequence
  tag (`7FE00010`, `00540016.0.00181072`), and `bulk_value` reads the element it names;
- text is Python str, so the JSON is UTF-8 whatever character set the object was stored in;
  Specific Character Set is therefore given as ISO_IR 192 wherever the object had one.

Group lengths and the file meta (group 0002) are not part of the model and are left out.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement, empty_value_for_VR
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.valuerep import PersonName

from openpacs.dicom.charset import apply_charset, decide_charset

__all__ = [
    "DEFAULT_THRESHOLD",
    "BulkUri",
    "JsonModelError",
    "bulk_value",
    "dumps",
    "from_json",
    "read_dataset",
    "to_json",
]

DEFAULT_THRESHOLD = 1024
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_NUMBER_TEXT_VRS = frozenset({"DS", "IS"})
_INT_VRS = frozenset({"US", "SS", "UL", "SL", "SV", "UV"})
_FLOAT_VRS = frozenset({"FL", "FD"})
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
_CHARSET = BaseTag(0x00080005)
_UTF8 = "ISO_IR 192"

BulkUri = Callable[[str], str | None]


class JsonModelError(ValueError):
    """A DICOM JSON object that does not follow PS3.18 Annex F; the message says where."""


# --- reading stored objects -----------------------------------------------------------------


def read_dataset(path: str | Path, *, defer_size: int = DEFAULT_THRESHOLD) -> Dataset:
    """A stored file read for the JSON model: values over `defer_size` bytes stay on disk
    (so a large Pixel Data costs nothing), and the text is decoded with the character set the
    text really uses (`openpacs.dicom.charset`), whatever the file declares."""
    ds = dcmread(path, defer_size=defer_size)
    apply_charset(ds, decide_charset(ds))
    return ds


# --- to JSON --------------------------------------------------------------------------------


def to_json(
    ds: Dataset,
    *,
    bulk_uri: BulkUri | None = None,
    threshold: int = DEFAULT_THRESHOLD,
    include: Callable[[int], bool] | None = None,
) -> dict[str, Any]:
    """`ds` as a DICOM JSON object. `include(tag)`, when given, chooses top-level elements."""
    return _dataset(ds, "", bulk_uri, threshold, include)


def dumps(objects: list[dict[str, Any]] | dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON, non-ASCII text written as itself."""
    return json.dumps(objects, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _dataset(
    ds: Dataset,
    prefix: str,
    bulk_uri: BulkUri | None,
    threshold: int,
    include: Callable[[int], bool] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tag in sorted(ds.keys()):
        if tag.element == 0 or tag.group == 0x0002:
            continue
        if include is not None and not include(int(tag)):
            continue
        key = f"{int(tag):08X}"
        out[key] = _element(ds, tag, prefix + key, bulk_uri, threshold)
    return out


def _element(
    ds: Dataset, tag: BaseTag, path: str, bulk_uri: BulkUri | None, threshold: int
) -> dict[str, Any]:
    raw = ds.get_item(tag, keep_deferred=True)
    vr = _vr(ds, tag, raw)
    out: dict[str, Any] = {"vr": vr}
    if vr in BINARY_VRS:
        _binary(out, ds, tag, raw, path, bulk_uri, threshold)
        return out
    if vr in _NUMBER_TEXT_VRS and isinstance(raw, RawDataElement) and not _deferred(raw):
        values: list[Any] = _raw_number_text(raw)
    else:
        elem = ds[tag]
        if vr == "SQ":
            values = [
                _dataset(item, f"{path}.{index}.", bulk_uri, threshold)
                for index, item in enumerate(elem.value or ())
            ]
        else:
            values = _values(elem, vr)
    if tag == _CHARSET and values:
        values = [_UTF8]
    if values and any(v is not None for v in values):
        out["Value"] = values
    return out


def _vr(ds: Dataset, tag: BaseTag, raw: DataElement | RawDataElement | None) -> str:
    vr = raw.VR if raw is not None else None
    if vr is None:
        # Implicit VR: the dictionary says, without reading a value that was left on disk.
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            vr = ds[tag].VR if not _deferred(raw) else "UN"
    if " or " in vr:
        vr = _resolve_ambiguous(ds, vr, raw)
    return str(vr)


def _deferred(raw: DataElement | RawDataElement | None) -> bool:
    return isinstance(raw, RawDataElement) and raw.value is None and raw.length != 0


def _resolve_ambiguous(ds: Dataset, vr: str, raw: DataElement | RawDataElement | None) -> str:
    """PS3.5 Annex A rules for the VRs the dictionary leaves open, from the object's own
    Image Pixel values (as pydicom would, but without loading the value)."""
    options = vr.split(" or ")
    if "SS" in options and "US" in options:
        return "SS" if int(ds.get("PixelRepresentation") or 0) == 1 else "US"
    if "OB" in options and "OW" in options:
        if isinstance(raw, RawDataElement) and raw.length == 0xFFFFFFFF:
            return "OB"  # encapsulated
        return "OW" if int(ds.get("BitsAllocated") or 16) > 8 else "OB"
    return options[0]


def _binary(
    out: dict[str, Any],
    ds: Dataset,
    tag: BaseTag,
    raw: DataElement | RawDataElement | None,
    path: str,
    bulk_uri: BulkUri | None,
    threshold: int,
) -> None:
    length = _length(raw)
    if length == 0:
        return
    if bulk_uri is not None and (length is None or length > threshold):
        uri = bulk_uri(path)
        if uri is not None:
            out["BulkDataURI"] = uri
            return
    value = _binary_bytes(ds[tag].value)
    if value:
        out["InlineBinary"] = base64.b64encode(value).decode("ascii")


def _length(raw: DataElement | RawDataElement | None) -> int | None:
    """The value's length in bytes without reading a deferred value; None when undefined."""
    if raw is None:
        return 0
    if isinstance(raw, RawDataElement):
        if raw.length == 0xFFFFFFFF:
            return None  # encapsulated pixel data: large by nature
        return int(raw.length)
    if raw.value is None:
        return 0
    if isinstance(raw.value, bytes | bytearray):
        return len(raw.value)
    return None


def _binary_bytes(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, list | tuple | MultiValue):
        # An encapsulated value held as a list of fragments, or a pydicom value list.
        return b"".join(bytes(v) for v in value)
    return bytes(value)


def _raw_number_text(raw: RawDataElement) -> list[Any]:
    data = raw.value
    if not data:
        return []
    text = bytes(data).decode("ascii", "replace")
    return [part.strip(" \0") or None for part in text.split("\\")]


def _values(elem: DataElement, vr: str) -> list[Any]:
    value = elem.value
    if value is None or value == "" or value == b"":
        return []
    many = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    return [_one(v, vr) for v in many]


def _one(value: Any, vr: str) -> Any:
    if value is None or value == "":
        return None
    if vr == "PN":
        return _person_name(value)
    if vr == "AT":
        return f"{int(Tag(value)):08X}"
    if vr in _INT_VRS:
        return int(value)
    if vr in _FLOAT_VRS:
        number = float(value)
        return number if math.isfinite(number) else None  # JSON has no NaN or infinity
    if vr in _NUMBER_TEXT_VRS:
        return str(getattr(value, "original_string", None) or value).strip()
    return str(value)


def _person_name(value: Any) -> dict[str, str] | None:
    name = value if isinstance(value, PersonName) else PersonName(str(value))
    groups = {
        key: str(group)
        for key, group in zip(
            _PN_GROUPS, (name.alphabetic, name.ideographic, name.phonetic), strict=True
        )
        if group
    }
    return groups or None


# --- bulk data ------------------------------------------------------------------------------


def parse_path(path: str) -> list[int]:
    """A bulk data path as [tag, item, tag, item, ..., tag]; JsonModelError if malformed."""
    parts = path.split(".")
    if len(parts) % 2 == 0:
        raise JsonModelError(f"bulk data path {path!r} does not end with a tag")
    out = []
    for index, part in enumerate(parts):
        if index % 2 == 0:
            if len(part) != 8:
                raise JsonModelError(f"{part!r} in {path!r} is not an 8-hex tag")
            try:
                out.append(int(part, 16))
            except ValueError:
                raise JsonModelError(f"{part!r} in {path!r} is not an 8-hex tag") from None
        else:
            if not part.isdigit():
                raise JsonModelError(f"{part!r} in {path!r} is not an item number")
            out.append(int(part))
    return out


def bulk_value(ds: Dataset, path: str) -> bytes:
    """The bytes of the binary element `path` names (see the module docstring).

    Raises KeyError when the object has no such element and JsonModelError when the path is
    malformed or names a value that is not binary."""
    steps = parse_path(path)
    current = ds
    for position in range(0, len(steps) - 1, 2):
        tag, item = steps[position], steps[position + 1]
        if tag not in current:
            raise KeyError(f"{tag:08X}")
        seq = current[tag]
        if seq.VR != "SQ":
            raise JsonModelError(f"{tag:08X} is not a sequence")
        if item >= len(seq.value):
            raise KeyError(f"{tag:08X} item {item}")
        current = seq.value[item]
    last = steps[-1]
    if last not in current:
        raise KeyError(f"{last:08X}")
    elem = current[last]
    if _vr(current, elem.tag, elem) not in BINARY_VRS:
        raise JsonModelError(f"{last:08X} holds {elem.VR} values, not bulk data")
    return _binary_bytes(elem.value)


# --- from JSON ------------------------------------------------------------------------------


def from_json(
    obj: Mapping[str, Any], *, bulk_data: Callable[[str], bytes] | None = None
) -> Dataset:
    """A Dataset from a DICOM JSON object; DS and IS keep their text.

    `bulk_data(uri)` fetches a BulkDataURI's bytes; without it such elements stay empty."""
    if not isinstance(obj, Mapping):
        raise JsonModelError(f"a DICOM JSON dataset is an object, not {type(obj).__name__}")
    ds = Dataset()
    for key, attr in obj.items():
        tag = _key_tag(key)
        ds.add(_from_attribute(key, tag, attr, bulk_data))
    return ds


def _key_tag(key: str) -> BaseTag:
    if len(key) != 8:
        raise JsonModelError(f"key {key!r} is not an 8-hex tag")
    try:
        return BaseTag(int(key, 16))
    except ValueError:
        raise JsonModelError(f"key {key!r} is not an 8-hex tag") from None


def _from_attribute(
    key: str, tag: BaseTag, attr: Any, bulk_data: Callable[[str], bytes] | None
) -> DataElement:
    if not isinstance(attr, Mapping):
        raise JsonModelError(f"{key}: an attribute is an object")
    vr = attr.get("vr")
    if not isinstance(vr, str):
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            raise JsonModelError(f"{key}: no vr and not in the dictionary") from None
    if vr in BINARY_VRS:
        return DataElement(tag, vr, _binary_from(key, attr, bulk_data))
    values = attr.get("Value")
    if values is None:
        return DataElement(tag, vr, empty_value_for_VR(vr))
    if not isinstance(values, list):
        raise JsonModelError(f"{key}: Value is an array")
    if vr == "SQ":
        return DataElement(
            tag, vr, Sequence([from_json(item, bulk_data=bulk_data) for item in values])
        )
    converted = [_from_value(key, vr, v) for v in values]
    return DataElement(tag, vr, converted[0] if len(converted) == 1 else converted)


def _binary_from(
    key: str, attr: Mapping[str, Any], bulk_data: Callable[[str], bytes] | None
) -> bytes:
    if "InlineBinary" in attr:
        try:
            return base64.b64decode(attr["InlineBinary"], validate=True)
        except (binascii.Error, TypeError) as exc:
            raise JsonModelError(f"{key}: InlineBinary is not base64") from exc
    uri = attr.get("BulkDataURI")
    if uri is not None and bulk_data is not None:
        return bulk_data(str(uri))
    return b""


def _from_value(key: str, vr: str, value: Any) -> Any:
    if value is None:
        return ""
    if vr == "PN":
        if not isinstance(value, Mapping):
            raise JsonModelError(f"{key}: a PN value is an object")
        groups = [str(value.get(group) or "") for group in _PN_GROUPS]
        while groups and not groups[-1]:
            groups.pop()
        return PersonName("=".join(groups))
    if vr == "AT":
        return _key_tag(str(value))
    if vr in _NUMBER_TEXT_VRS:
        # A JSON number loses nothing once turned back into its shortest text.
        return str(value) if not isinstance(value, bool) else None
    if vr in _INT_VRS:
        return int(value)
    if vr in _FLOAT_VRS:
        return float(value)
    return str(value)


def iter_bulk_paths(ds: Dataset, prefix: str = "") -> Iterator[str]:
    """The paths of every binary element in `ds`, nested ones included (tests, tools)."""
    for tag in sorted(ds.keys()):
        if tag.group == 0x0002 or tag.element == 0:
            continue
        key = prefix + f"{int(tag):08X}"
        raw = ds.get_item(tag, keep_deferred=True)
        vr = _vr(ds, tag, raw)
        if vr == "SQ":
            for index, item in enumerate(ds[tag].value or ()):
                yield from iter_bulk_paths(item, f"{key}.{index}.")
        elif vr in BINARY_VRS:
            yield key
