"""Transcoding without peer programs: refusals, syntax choice, lossy bookkeeping, attributes."""

from __future__ import annotations

import copy
import io
import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels.utils import pixel_array
from pydicom.uid import UID

from openpacs.dicom import codecs
from openpacs.dicom.codecs import TranscodeError, choose_syntax, transcode, transcode_file
from openpacs.dicom.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION
from tests import codec_samples as samples
from tests.conftest import sample
from tests.generators import ct_series

# What a transcode may change; every other attribute must come out as it went in.
PIXEL_KEYWORDS = {
    "PixelData",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "LossyImageCompression",
    "LossyImageCompressionRatio",
    "LossyImageCompressionMethod",
}


def read(name: str) -> pydicom.FileDataset:
    return pydicom.dcmread(sample(name))


def written(ds: Dataset) -> pydicom.FileDataset:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    buffer.seek(0)
    return pydicom.dcmread(buffer)


def fragments(ds: Dataset) -> list[bytes]:
    return list(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1))))


# --- refusals ------------------------------------------------------------------------------


def test_lossy_needs_consent() -> None:
    ds = read("CT_small.dcm")
    with pytest.raises(TranscodeError) as caught:
        transcode(ds, samples.J2K)
    error = caught.value
    assert isinstance(error, ValueError)
    assert (error.source, error.target) == (samples.EXPLICIT, samples.J2K)
    assert "allow_lossy" in error.reason
    assert samples.J2K in str(error)


@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("CT_small.dcm", samples.BASELINE),  # 16-bit signed in lossy 8-bit JPEG
        ("MR2_UNCR.dcm", samples.BASELINE),  # 12-bit
        ("CT_small.dcm", samples.EXTENDED),  # more than 12 bits
        ("SC_rgb.dcm", samples.EXTENDED),  # no colour in JPEG Extended
        ("OBXXXX1A.dcm", samples.JLS_NEAR),  # palette indices may not be lossy
        ("OBXXXX1A.dcm", samples.BASELINE),
        ("liver.dcm", samples.RLE),  # 1 bit allocated
        ("rtdose.dcm", samples.JLS),  # 32 bits
        ("rtdose.dcm", samples.J2K_LL),  # more than OpenJPEG's 24 bits
        ("JPEGLSNearLossless_16.dcm", samples.J2K_LL),  # 10 columns: too small for OpenJPEG
    ],
)
def test_impossible_conversions_are_refused(name: str, target: str) -> None:
    with pytest.raises(TranscodeError) as caught:
        transcode(read(name), target, allow_lossy=True)
    assert caught.value.target == target
    assert caught.value.source == str(read(name).file_meta.TransferSyntaxUID)


@pytest.mark.parametrize(
    "target",
    ["1.2.3.4", samples.IMPLICIT + ".0", "1.2.840.10008.1.2.2", samples.HTJ2K_LOSSLESS],
)
def test_unknown_or_read_only_targets(target: str) -> None:
    with pytest.raises(TranscodeError, match=r"read only|not a supported"):
        transcode(read("CT_small.dcm"), target)


def broken(syntax: str) -> Dataset:
    ds = read("CT_small.dcm")
    ds.PixelData = encapsulate([b"\xff\xd8 not a codestream \xff\xd9"])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    return ds


@pytest.mark.parametrize("syntax", [samples.JPEG_SV1, samples.JLS, samples.J2K_LL, "1.2.3.4.5"])
def test_undecodable_sources(syntax: str) -> None:
    with pytest.raises(TranscodeError) as caught:
        transcode(broken(syntax), samples.EXPLICIT)
    assert caught.value.source == syntax
    assert "decode" in caught.value.reason


def test_dataset_that_does_not_say_its_encoding() -> None:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.Rows = ds.Columns = 2
    ds.PixelData = b"\0" * 4
    with pytest.raises(TranscodeError, match="does not say"):
        transcode(ds, samples.JLS)


def test_quality_range() -> None:
    with pytest.raises(ValueError, match="quality"):
        transcode(read("CT_small.dcm"), samples.J2K, allow_lossy=True, quality=0)


# --- no pixel work when none is needed -------------------------------------------------------


def test_same_syntax_returns_the_dataset_itself() -> None:
    ds = read("SC_rgb_jpeg_dcmtk.dcm")
    assert transcode(ds, samples.BASELINE) is ds


def test_same_syntax_file_is_copied_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "copy.dcm"
    transcode_file(sample("JPEG-LL.dcm"), out, samples.JPEG_SV1)
    assert out.read_bytes() == sample("JPEG-LL.dcm").read_bytes()
    stream = io.BytesIO()
    transcode_file(sample("JPEG-LL.dcm"), stream, samples.JPEG_SV1)
    assert stream.getvalue() == out.read_bytes()


def test_native_to_native_keeps_pixel_bytes_and_planar_configuration() -> None:
    ds = read("color-pl.dcm")
    out = written(transcode(ds, samples.IMPLICIT))
    assert out.PlanarConfiguration == 1
    assert out.PixelData == ds.PixelData


def test_input_is_never_modified() -> None:
    ds = read("color-pl.dcm")
    before = copy.deepcopy(ds)
    for target in (samples.BASELINE, samples.JLS, samples.J2K_LL, samples.RLE, samples.IMPLICIT):
        transcode(ds, target, allow_lossy=True)
    assert ds == before
    assert ds.file_meta == before.file_meta


def test_object_without_pixel_data_is_relabelled() -> None:
    ds = read("rtplan.dcm")
    out = written(transcode(ds, samples.JLS))
    assert out.file_meta.TransferSyntaxUID == samples.JLS
    assert out.BeamSequence[0].BeamName == ds.BeamSequence[0].BeamName


# --- pixel layout ------------------------------------------------------------------------------


def test_planar_configuration_rewritten_for_compression() -> None:
    ds = read("color-pl.dcm")
    for target in (samples.RLE, samples.JLS, samples.JPEG_SV1, samples.J2K_LL):
        out = written(transcode(ds, target))
        assert out.PlanarConfiguration == 0, target
        assert np.array_equal(out.pixel_array, ds.pixel_array), target


def test_ybr_full_422_jpeg_decodes_to_rgb() -> None:
    ds = read("SC_rgb_dcmtk_+eb+cy+np.dcm")
    out = written(transcode(ds, samples.EXPLICIT))
    assert out.PhotometricInterpretation == "RGB"
    assert out.PlanarConfiguration == 0
    assert np.array_equal(out.pixel_array, ds.pixel_array)  # pydicom shows the JPEG as RGB


def test_native_ybr_full_422_is_expanded_not_converted() -> None:
    ds = read("SC_ybr_full_422_uncompressed.dcm")
    out = written(transcode(ds, samples.RLE))
    assert out.PhotometricInterpretation == "YBR_FULL"
    assert np.array_equal(pixel_array(out, as_rgb=False), pixel_array(ds, as_rgb=False))


def test_lossy_jpeg_of_colour_is_labelled_ybr_full_422() -> None:
    out = written(transcode(read("SC_rgb.dcm"), samples.BASELINE, allow_lossy=True))
    assert out.PhotometricInterpretation == "YBR_FULL_422"
    assert out.PlanarConfiguration == 0


def test_rgb_jpeg_2000_uses_the_component_transform() -> None:
    ds = read("US1_UNCR.dcm")
    lossless = written(transcode(ds, samples.J2K_LL))
    assert lossless.PhotometricInterpretation == "YBR_RCT"
    assert np.array_equal(lossless.pixel_array, ds.pixel_array)
    lossy = transcode(ds, samples.J2K, allow_lossy=True)
    assert lossy.PhotometricInterpretation == "YBR_ICT"


def test_12_bit_jpeg_extended_has_12_bit_precision() -> None:
    ds = read("emri_small.dcm")
    out = transcode(ds, samples.EXTENDED, allow_lossy=True)
    frames = fragments(out)
    assert len(frames) == 10
    sof = frames[0].index(b"\xff\xc1")
    assert frames[0][sof + 4] == 12  # GDCM alone would write an invalid 16-bit lossy stream
    assert (out.BitsStored, out.HighBit) == (12, 11)


def test_multi_frame_has_one_fragment_per_frame_and_an_offset_table() -> None:
    out = transcode(read("emri_small.dcm"), samples.JPEG_SV1)
    assert len(fragments(out)) == 10
    offsets = written(out).PixelData
    bot_length = struct.unpack("<I", offsets[4:8])[0]
    assert bot_length == 4 * 10


@pytest.mark.parametrize(
    ("big", "little"),
    [
        ("OBXXXX1A_expb_2frame.dcm", "OBXXXX1A_2frame.dcm"),
        ("gdcm-US-ALOKA-16_big.dcm", "gdcm-US-ALOKA-16.dcm"),
        ("rtdose_expb.dcm", "rtdose.dcm"),
        ("liver_expb.dcm", "liver.dcm"),
        ("emri_small_big_endian.dcm", "emri_small.dcm"),
    ],
)
def test_big_endian_becomes_its_little_endian_twin(big: str, little: str) -> None:
    out = written(transcode(read(big), samples.EXPLICIT))
    twin = read(little)
    binary = [e.tag for e in twin.iterall() if e.VR in ("OW", "OB", "OF", "OD", "OL")]
    assert binary
    for tag in binary:
        assert out[tag].value == twin[tag].value, tag


@pytest.mark.parametrize(
    "syntax", [samples.HTJ2K_LOSSLESS, samples.HTJ2K_LOSSLESS_RPCL, samples.HTJ2K]
)
def test_htj2k_is_read(syntax: str) -> None:
    out = written(transcode(samples.htj2k_dataset(syntax), samples.EXPLICIT))
    colour = syntax == samples.HTJ2K_LOSSLESS_RPCL
    reference = samples.htj2k_rgb_pixels() if colour else samples.htj2k_mono_pixels()
    error = np.abs(out.pixel_array.astype(np.int64) - reference).max()
    assert error == 0 if syntax != samples.HTJ2K else error < 16
    assert out.PhotometricInterpretation == ("RGB" if colour else "MONOCHROME2")


def test_quality_controls_the_loss() -> None:
    ds = read("CT_small.dcm")
    sizes = [
        len(transcode(ds, samples.J2K, allow_lossy=True, quality=q).PixelData) for q in (50, 95)
    ]
    assert sizes[0] < sizes[1]
    near = written(transcode(ds, samples.JLS_NEAR, allow_lossy=True, quality=50))
    error = np.abs(near.pixel_array.astype(np.int64) - ds.pixel_array).max()
    assert 1 < error <= 5  # NEAR = (100 - 50) // 10
    jpeg = [
        len(transcode(read("SC_rgb.dcm"), samples.BASELINE, allow_lossy=True, quality=q).PixelData)
        for q in (20, 95)
    ]
    assert jpeg[0] < jpeg[1]


# --- lossy bookkeeping (PS3.3 C.7.6.1.1.5) -------------------------------------------------


def as_list(value: object) -> list[str]:
    return (
        [str(v) for v in value]
        if isinstance(value, list | pydicom.multival.MultiValue)
        else [str(value)]
    )


def test_first_lossy_step_is_recorded() -> None:
    ds = read("CT_small.dcm")
    out = transcode(ds, samples.JLS_NEAR, allow_lossy=True)
    assert out.LossyImageCompression == "01"
    assert out.LossyImageCompressionMethod == "ISO_14495_1"
    compressed = sum(len(f) for f in fragments(out))
    assert float(out.LossyImageCompressionRatio) == pytest.approx(
        len(ds.PixelData) / compressed, 0.01
    )


def test_lossy_steps_are_appended() -> None:
    out = transcode(read("SC_rgb_jpeg_dcmtk.dcm"), samples.J2K, allow_lossy=True)
    assert out.LossyImageCompression == "01"
    assert as_list(out.LossyImageCompressionMethod) == ["ISO_10918_1", "ISO_15444_1"]
    ratios = as_list(out.LossyImageCompressionRatio)
    assert ratios[0] == "17.401" and float(ratios[1]) > 1


def test_missing_method_of_a_recorded_ratio_is_named_from_the_source() -> None:
    out = transcode(read("JPGExtended.dcm"), samples.J2K, allow_lossy=True)
    assert as_list(out.LossyImageCompressionMethod) == ["ISO_10918_1", "ISO_15444_1"]
    assert as_list(out.LossyImageCompressionRatio)[0] == "76"


def test_decoding_an_unmarked_lossy_source_marks_it() -> None:
    out = transcode(read("JPEGLSNearLossless_16.dcm"), samples.EXPLICIT)
    assert out.LossyImageCompression == "01"
    assert out.LossyImageCompressionMethod == "ISO_14495_1"


def test_lossless_steps_add_nothing_and_00_is_replaced() -> None:
    out = transcode(read("CT_small.dcm"), samples.RLE)
    assert "LossyImageCompression" not in out
    was_lossless = transcode(read("JPEG-LL.dcm"), samples.JLS_NEAR, allow_lossy=True)
    assert was_lossless.LossyImageCompression == "01"
    assert was_lossless.LossyImageCompressionMethod == "ISO_14495_1"


# --- attributes and file meta ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("CT_small.dcm", samples.JLS),  # private tags, GE sequences
        ("color-pl.dcm", samples.BASELINE),
        ("emri_small_big_endian.dcm", samples.IMPLICIT),  # enhanced MR functional groups
        ("US1_J2KR.dcm", samples.DEFLATED),
    ],
)
def test_every_other_attribute_survives(name: str, target: str) -> None:
    ds = read(name)
    out = written(transcode(ds, target, allow_lossy=True))
    # Group lengths (gggg,0000), retired, are dropped by pydicom's writer: they would be wrong.
    kept = {e.tag for e in ds if e.keyword not in PIXEL_KEYWORDS and e.tag.element != 0}
    assert kept == {e.tag for e in out if e.keyword not in PIXEL_KEYWORDS}
    for tag in kept:
        assert out[tag].value == ds[tag].value, ds[tag].keyword or tag


@pytest.mark.parametrize("target", [samples.JPEG_SV1, samples.DEFLATED, samples.IMPLICIT])
def test_file_meta_is_rewritten(target: str, tmp_path: Path) -> None:
    src = sample("MR_small_RLE.dcm")
    out_path = tmp_path / "out.dcm"
    transcode_file(src, out_path, target)
    raw = out_path.read_bytes()
    assert raw[128:132] == b"DICM"
    # Group length: the bytes of the (0002,xxxx) elements that follow it.
    group_length = struct.unpack("<I", raw[140:144])[0]
    end = 144
    while raw[end : end + 2] == b"\x02\x00":
        vr = raw[end + 4 : end + 6]
        if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT", b"UC", b"UR"):
            end += 12 + struct.unpack("<I", raw[end + 8 : end + 12])[0]
        else:
            end += 8 + struct.unpack("<H", raw[end + 6 : end + 8])[0]
    assert group_length == end - 144
    out = pydicom.dcmread(out_path)
    source = pydicom.dcmread(src)
    meta = out.file_meta
    assert meta.TransferSyntaxUID == target
    assert meta.MediaStorageSOPClassUID == source.SOPClassUID
    assert meta.MediaStorageSOPInstanceUID == source.SOPInstanceUID == out.SOPInstanceUID
    assert meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert meta.ImplementationVersionName == IMPLEMENTATION_VERSION
    assert np.array_equal(out.pixel_array, source.pixel_array)


def test_dataset_without_file_meta_is_read_by_its_encoding() -> None:
    ds = read("MR_small_implicit.dcm")
    del ds.file_meta
    assert codecs.source_syntax(ds) == samples.IMPLICIT
    out = written(transcode(ds, samples.JLS))
    assert np.array_equal(out.pixel_array, read("MR_small_implicit.dcm").pixel_array)


# --- capabilities and choice -----------------------------------------------------------------


def test_capability_sets() -> None:
    assert not codecs.LOSSLESS & codecs.LOSSY
    assert codecs.WRITABLE < codecs.READABLE == codecs.LOSSLESS | codecs.LOSSY
    assert set(samples.ALL_TARGETS) == codecs.WRITABLE
    assert all(codecs.can_encode(uid) for uid in codecs.WRITABLE)
    assert all(codecs.can_decode(uid) for uid in codecs.READABLE)
    assert not codecs.can_encode(samples.HTJ2K_LOSSLESS)
    assert not codecs.can_encode("1.2.840.10008.1.2.2")
    assert not codecs.can_decode("1.2.3.4")


ALL = codecs.WRITABLE | {samples.HTJ2K_LOSSLESS}


@pytest.mark.parametrize(
    ("stored", "accepted", "allow_lossy", "expected"),
    [
        (samples.J2K, ALL, False, samples.J2K),  # as stored, even lossy
        (samples.HTJ2K_LOSSLESS, ALL, False, samples.HTJ2K_LOSSLESS),
        (samples.EXPLICIT, ALL - {samples.EXPLICIT}, False, samples.JLS),
        (samples.JLS, {samples.J2K_LL, samples.JPEG_SV1, samples.RLE}, False, samples.JPEG_SV1),
        (samples.JLS, {samples.J2K_LL, samples.RLE}, False, samples.J2K_LL),
        (samples.BASELINE, {samples.IMPLICIT, samples.EXPLICIT}, False, samples.EXPLICIT),
        (samples.BASELINE, {samples.IMPLICIT, samples.DEFLATED}, False, samples.IMPLICIT),
        (samples.BASELINE, {samples.J2K, samples.EXPLICIT}, True, samples.EXPLICIT),
        (samples.BASELINE, {samples.J2K, samples.EXTENDED}, False, None),
        (samples.BASELINE, {samples.BASELINE + "\0", samples.EXPLICIT}, False, samples.BASELINE),
        (samples.EXPLICIT, {samples.J2K, samples.JLS_NEAR}, True, samples.JLS_NEAR),
        ("1.2.3.4", {samples.EXPLICIT}, False, None),  # nobody decodes it
        ("1.2.3.4", {"1.2.3.4"}, False, "1.2.3.4"),
        (samples.EXPLICIT, {"1.2.840.10008.1.2.2"}, False, None),  # big endian is not written
    ],
)
def test_choose_syntax(
    stored: str, accepted: set[str], allow_lossy: bool, expected: str | None
) -> None:
    assert choose_syntax(stored, accepted, allow_lossy=allow_lossy) == expected


def test_choose_syntax_skips_what_the_image_rules_out() -> None:
    ct = read("CT_small.dcm")  # 16-bit signed
    lossy = {samples.BASELINE, samples.EXTENDED, samples.J2K}
    assert choose_syntax(samples.EXPLICIT, lossy, allow_lossy=True) == samples.J2K
    assert choose_syntax(samples.EXPLICIT, lossy - {samples.J2K}, allow_lossy=True, ds=ct) is None
    mr = read("emri_small.dcm")  # 12-bit
    choice = choose_syntax(samples.EXPLICIT, lossy - {samples.J2K}, allow_lossy=True, ds=mr)
    assert choice == samples.EXTENDED
    rtdose = read("rtdose.dcm")  # 32-bit: no compressed syntax here holds it
    accepted = {samples.JLS, samples.RLE, samples.IMPLICIT}
    assert choose_syntax(samples.IMPLICIT, accepted - {samples.IMPLICIT}, ds=rtdose) is None
    assert choose_syntax(samples.EXPLICIT, accepted, ds=rtdose) == samples.IMPLICIT


@pytest.mark.parametrize(
    "target", [codecs.JPEG_LS_LOSSLESS, codecs.JPEG_2000_LOSSLESS, codecs.RLE_LOSSLESS]
)
def test_signed_12_bit_ct_round_trips(tmp_path: Path, target: str) -> None:
    # A CT as scanners write it: signed, 12 bits stored in 16. pydicom 3.0's decompress() fails
    # on these after JPEG-LS/J2K (sign correction of a read-only array).
    (source,) = ct_series(tmp_path, 1, rows=64, columns=64)
    original = pydicom.dcmread(source)
    assert (original.PixelRepresentation, original.BitsStored) == (1, 12)
    encoded = written(transcode(original, target))
    decoded = written(transcode(encoded, codecs.EXPLICIT_VR_LE))
    assert decoded.PixelRepresentation == 1
    np.testing.assert_array_equal(decoded.pixel_array, original.pixel_array)
