"""Which pydicom-data files the codec tests use, and small HTJ2K objects pydicom-data lacks.

Files are named one by one (`tests.conftest.sample`), never globbed. Together they cover every
source syntax pydicom-data has (native LE, big endian, deflate, JPEG .50/.51/.70, JPEG-LS
.80/.81, J2K .90/.91, RLE) and the pixel layouts that trip codecs: signed, 8/12/16/32-bit,
1-bit, RGB with planar configuration 0 and 1, YBR_FULL, YBR_FULL_422 (native and JPEG),
YBR_RCT/YBR_ICT, PALETTE COLOR (8 and 16-bit), multi-frame. JPEG Lossless .57 is not in
pydicom-data: the peer tests make one with dcmcjpeg. HTJ2K is not either: the codestreams below
were made once with OpenJPH (`ojph_compress`, Debian openjph-tools 0.9) from the patterns
`htj2k_mono_pixels` and `htj2k_rgb_pixels`, so they are decoded here by a different codec
(OpenJPEG) than the one that wrote them.
"""

from __future__ import annotations

import base64

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import UID, SecondaryCaptureImageStorage, generate_uid

IMPLICIT = "1.2.840.10008.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"
DEFLATED = "1.2.840.10008.1.2.1.99"
BASELINE = "1.2.840.10008.1.2.4.50"
EXTENDED = "1.2.840.10008.1.2.4.51"
JPEG_LL = "1.2.840.10008.1.2.4.57"
JPEG_SV1 = "1.2.840.10008.1.2.4.70"
JLS = "1.2.840.10008.1.2.4.80"
JLS_NEAR = "1.2.840.10008.1.2.4.81"
J2K_LL = "1.2.840.10008.1.2.4.90"
J2K = "1.2.840.10008.1.2.4.91"
RLE = "1.2.840.10008.1.2.5"

ALL_TARGETS = (
    IMPLICIT,
    EXPLICIT,
    DEFLATED,
    BASELINE,
    EXTENDED,
    JPEG_LL,
    JPEG_SV1,
    JLS,
    JLS_NEAR,
    J2K_LL,
    J2K,
    RLE,
)

# Sources run against every writable target: (file, targets that must be refused).
FULL_MATRIX: dict[str, frozenset[str]] = {
    # Explicit LE, MONOCHROME2 signed 16/16
    "CT_small.dcm": frozenset({BASELINE, EXTENDED}),
    # big endian, 12 bits in 16, 10 frames (enhanced MR)
    "emri_small_big_endian.dcm": frozenset({BASELINE}),
    # RGB, planar configuration 1
    "color-pl.dcm": frozenset({EXTENDED}),
    # native YBR_FULL_422 (subsampled)
    "SC_ybr_full_422_uncompressed.dcm": frozenset({EXTENDED}),
    # deflated, 8-bit MONOCHROME2
    "image_dfl.dcm": frozenset(),
    # JPEG baseline YBR_FULL
    "SC_rgb_jpeg_dcmtk.dcm": frozenset({EXTENDED}),
    # RLE PALETTE COLOR: no lossy syntax may hold palette indices
    "OBXXXX1A_rle.dcm": frozenset({BASELINE, EXTENDED, JLS_NEAR, J2K}),
    # RLE RGB 16-bit, 2 frames
    "SC_rgb_rle_16bit_2frame.dcm": frozenset({BASELINE, EXTENDED}),
}

# Further sources, each against a few targets (all of them lossless-decodable here).
SOME_TARGETS: dict[str, tuple[str, ...]] = {
    "MR_small_implicit.dcm": (EXPLICIT, JLS),  # Implicit LE, signed
    "693_UNCR.dcm": (JLS, J2K_LL, JPEG_SV1, RLE),  # signed 14 bits in 16
    "ExplVR_BigEnd.dcm": (EXPLICIT, JPEG_SV1, J2K_LL),  # big endian RGB, planar configuration 1
    "OBXXXX1A_expb_2frame.dcm": (EXPLICIT, JLS),  # big endian PALETTE COLOR, OW LUTs, 2 frames
    "gdcm-US-ALOKA-16.dcm": (JLS, RLE),  # 16-bit PALETTE COLOR
    "SC_ybr_full_uncompressed.dcm": (RLE, JLS, JPEG_LL),  # native YBR_FULL
    "SC_rgb_16bit_2frame.dcm": (J2K_LL, JPEG_LL),  # RGB 16-bit, 2 frames
    "liver.dcm": (IMPLICIT, DEFLATED),  # 1 bit, 3 frames
    "rtdose.dcm": (EXPLICIT, DEFLATED),  # 32-bit, 15 frames
    "SC_rgb_dcmtk_+eb+cy+np.dcm": (EXPLICIT, J2K_LL),  # JPEG baseline YBR_FULL_422
    "examples_ybr_color.dcm": (RLE,),  # JPEG baseline YBR_FULL_422, 30 frames
    "JPGExtended.dcm": (EXPLICIT, JLS),  # JPEG extended 12-bit
    "JPEG-lossy.dcm": (EXPLICIT,),  # JPEG extended only IJG-based decoders read (GDCM here)
    "JPEG-LL.dcm": (RLE, J2K_LL),  # JPEG lossless SV1, signed 16
    "JPGLosslessP14SV1_1s_1f_8b.dcm": (JLS,),  # JPEG lossless SV1 8-bit
    "SC_rgb_jpeg_gdcm.dcm": (RLE, JPEG_LL),  # JPEG lossless SV1 RGB
    "MR_small_jpeg_ls_lossless.dcm": (JPEG_SV1, EXPLICIT),  # JPEG-LS signed
    "emri_small_jpeg_ls_lossless.dcm": (J2K_LL,),  # JPEG-LS, 10 frames
    "JPEGLSNearLossless_16.dcm": (EXPLICIT, RLE),  # JPEG-LS near-lossless 16-bit
    "SC_rgb_jls_lossy_line.dcm": (JPEG_SV1,),  # JPEG-LS near-lossless RGB
    "MR_small_jp2klossless.dcm": (JLS, JPEG_LL),  # J2K lossless signed
    "US1_J2KR.dcm": (JLS, EXPLICIT),  # J2K lossless YBR_RCT
    "693_J2KI.dcm": (EXPLICIT, RLE),  # J2K lossy signed
    "US1_J2KI.dcm": (EXPLICIT,),  # J2K lossy YBR_ICT
    "SC_rgb_gdcm_KY.dcm": (JPEG_SV1,),  # J2K lossy RGB
    "MR_small_RLE.dcm": (J2K_LL, IMPLICIT),  # RLE signed
    "SC_rgb_rle_2frame.dcm": (JLS, J2K_LL),  # RLE RGB, 2 frames
    "rtdose_rle.dcm": (EXPLICIT,),  # RLE 32-bit, 15 frames
}

# Big endian files and the little endian files pydicom-data holds with the same content.
BIG_ENDIAN_TWINS: dict[str, str] = {
    "OBXXXX1A_expb_2frame.dcm": "OBXXXX1A_2frame.dcm",
    "gdcm-US-ALOKA-16_big.dcm": "gdcm-US-ALOKA-16.dcm",
    "rtdose_expb.dcm": "rtdose.dcm",
    "liver_expb.dcm": "liver.dcm",
    "emri_small_big_endian.dcm": "emri_small.dcm",
    "ExplVR_BigEnd.dcm": "ExplVR_LitEndNoMeta.dcm",
}

HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
HTJ2K_LOSSLESS_RPCL = "1.2.840.10008.1.2.4.202"
HTJ2K = "1.2.840.10008.1.2.4.203"

# ojph_compress -i mono.pgm -reversible true -num_decomps 3
_MONO_LOSSLESS = (
    "/0//UQApQAAAAAAgAAAAIAAAAAAAAAAAAAAAIAAAACAAAAAAAAAAAAABCwEB/1AACAACAAAACP9SAAwAAgABAAMEBEAB/1wA"
    "DSBweHiAeHh4cHB4/2QAFgABT3BlbkpQSCBWZXIgMC45LjAu/5AACgAAAAADbQAB/5PAAW8A/T+b2T67ZK0sxHxKpsBWcFo2"
    "1BAiyv4QOiEA1zcAwAC1YABa0AAWqLgqDMhobJYpMhCgQv5AAjlIxLc4AGhmK+5QgTUCvRk0IxDxABCABj5CmADC83S/NPCt"
    "o4CACBTc8gACWmTblwDAALvIABeiQAC9EKWEEU2JJBsG+xYVElwAgGZaEOgkUmkYEF0ik4BxSPqV+WatLfJwEZSYwKw6mSA1"
    "O1nvcSpkhjgEsRNQAYMp6AQLMtVRlGLNp6KGU8JbzZpIAklQrgAQAdjIl3DTQC6xBqA2niGdwK0E+DIOhfmAgQJAgAALHA80"
    "ApCHBAtQA1MBF6BTUgw03oCKzlT1AthiebJtkTANxyCI4fb385kAqGRDbABvzAtbArCbMoR4mKG4wv2AAlSqHHlvJCxqEUA+"
    "SHAAUgHAAX1rAAX15AAL6nBCMkI5WixHiwWiFr+uV1HEBTF7WNa1IBhX7FWx+L2vsojKcV2HO0IUC+QVhCmFRXSsiii+L3xd"
    "r3tc40kdv+xjoVCvwuFxCPFe130RC9sUdqpQECZFQa2i42qJ73PuPef2jgfhA2Aw4PhdUAcL9lgs6is6FHfcQeeCox3nRYCC"
    "ivTDgAQCpUWfR5xDTzXtYsO9ZR9w9dvVfbcveJqL/ILznqhoX9OyGnfowxfC6sIDoAvmX3UDChYExa0wZVA4flOFwnD8rstf"
    "q0JcHOzFMVUoqIsBdSGesi6/qyIqL6WsRUf24mhRLEeLsojIW4oQ3wf5cRWtl/qSLEu5juvCO4R4z7l3uMqoo8VyWNZ1jC7k"
    "dY/n3HvO7Z0HR2QmlLrAIrkKsIV/wY6oSKyFvAPaRXAIOM7RMtlLDfTMAZABSpUlAQYoB5d5r2s2SPIwhDY9Fr9Yvxww4u3P"
    "UeeCHRr5H3PQCOoZn/fvuplFBrzAC+SnWgMQAnOBXTDw6/t1kC8voAv7vi/Evb5fF0jY/VyQ1wsMdoFdL8jLBRLicr1ej68L"
    "AnN9X94g6Pq6Xt8HBNLFBYG4vCBgr3O5wC73c70gL5cL4nJBIC4ukJDH+4LBX/Ar+AJDwP9/iP9v+cEIBgD+9ppAAAPrfyVO"
    "4If8/h5eOwgANj6oe2vCI+xZK66OtbYQ3tVVenAJ5YhHdqEIHbAE58VhAbEFwA96A//Z"
)
# ojph_compress -i rgb.ppm -reversible true -num_decomps 3 -prog_order RPCL (colour transform on)
_RGB_LOSSLESS = (
    "/0//UQAvQAAAAAAYAAAAGAAAAAAAAAAAAAAAGAAAABgAAAAAAAAAAAADBwEBBwEBBwEB/1AACAACAAAABf9SAAwAAgABAQME"
    "BEAB/1wADSBYYGBoYGBgWFhg/2QAFgABT3BlbkpQSCBWZXIgMC45LjAu/5AACgAAAAABpQAB/5PAC0D9mWC3z04S6wAQW6CB"
    "fzgAwArQT6dKa7X9AR/BEF13AMAK8J+eVraqav0AVfwgAF14AMAFRABVQAJAIACAD+ALdgBs2/4AAAB/rGcA/mBjAMAFRABU"
    "gCxjgA/gC3YAbdv+wAAB/rYAwAVMAFSAWk37gI/gi3YA2Wz2wBCB/rYAwAWjABacAFaAAAAAAAAAAHAJNnThrFivuQAAAABg"
    "YGBgYOAGA8gMcDRUr7oAAAAAAPAAA0BorKs4AMAFTABVgERERNynp8J2ALWqqv70DPfJ7LcAwAVcAFYAjDHG2NwKenACdwDr"
    "Wmut9AD2AAHsuADAC0IAWrABdOAAKSIif+Cnp6enp7nu7mwAAFQlSZKkd5m7Env2Se/ZJ7zAAG8AAAAAAAAAAAAAAKqqqq91"
    "VVVVe6qqqqvdVVVVXuqqqqr3mmmmmd4BwAr4AWiAAAAAAPDz+Kenp6enQnoAmSRJkuT/YgSe/ZJ79knsvADAC0IAWmAiIiIi"
    "IiLz+Kenp6enwnoAc2ZmZmZm/v9iHJ798nv3yey8AP/Z"
)
# ojph_compress -i mono.pgm -qstep 0.002 -num_decomps 3
_MONO_LOSSY = (
    "/0//UQApQAAAAAAgAAAAIAAAAAAAAAAAAAAAIAAAACAAAAAAAAAAAAABCwEB/1AACAACAAAAI/9SAAwAAgABAAMEBEAA/1wA"
    "FyJvk2+qb6pvwlg1WDVYeFAaUBpfv/9kABYAAU9wZW5KUEggVmVyIDAuOS4wLv+QAAoAAAAAAk0AAf+TwALeO76QI2Z7PKXc"
    "+oeKBcFiQJguSsAfl/4IHRCABzcAwALSgAWtAArQGGU6FwaBNzsJSu4BsSwCWZcAQMNHAo6Q5FdEl6S4Y/YBiAVH5HjYAJC3"
    "TERB70BH08n21wDAC6qAF2UALpzEWCAxDZGEbhTgBWmhwqSUgAQuLr3oKyNk7gA+1Ae4buR8Nn5WAUiLcAEQBNCJkg/EICOB"
    "KKvTAFMS8DVaxftwDzZZE3HADBbU9RQgPOwhABF45jTCN6lC1K4yASvpBEJrN1IVu5kKbCk6rgOAg6NitPygFCLQu6ELPH+G"
    "XdTpI89RAcAXtsAXvUAL2MAgjg6lC3ItNKABcdltAIrO9ACK27cQuNWHg3NdCGCAA0+ftLGkNaDStUbwkydnCXJfRBQeC+Z5"
    "AAgEZUbFoQvZT5ceUBFUePhx/g9dvd1Zbce8TJL/T9P/U+tVlsVH7Und1vM3O4unPa/YuRcDBAAgSIiSlOJfgK/bgChXLnBo"
    "2AbEK8dzggVpnjRP4GouzR37iT0rikKJRw46NDQEFoQPT0AY+EQ5Hexpiupy6kEAtSTfJkFB5OboBVP2s3T0eTrOd63cW4US"
    "L8bJ89PGt3j6+eOuy6H8+I305yQ+/s8xSplXWtVqPAMAEeBaOgPowVpFuLCZoKYpkrSlAnCBAa41qoiDRgCCNEwAEElpDmce"
    "RsyKScP0BU4RivaaQAADwOOlTuV3++/Lx3TY8d/uvo+wmSuuKjdub2qqv955aR3aqB26c+K4NovPcQP/2Q=="
)


def htj2k_mono_pixels() -> NDArray[np.uint16]:
    """32x32, 12 bits: the pattern the monochrome HTJ2K codestreams were made from."""
    y, x = np.mgrid[0:32, 0:32]
    pattern: NDArray[np.uint16] = ((x * 37 + y * 101 + (x * y) % 97) % 4096).astype(np.uint16)
    return pattern


def htj2k_rgb_pixels() -> NDArray[np.uint8]:
    """24x24 RGB, 8 bits: the pattern the colour HTJ2K codestream was made from."""
    y, x = np.mgrid[0:24, 0:24]
    planes = [(x * 10) % 256, (y * 10) % 256, ((x + y) * 5) % 256]
    return np.stack(planes, axis=-1).astype(np.uint8)


def htj2k_dataset(syntax: str) -> Dataset:
    """A Secondary Capture object holding one of the HTJ2K codestreams above."""
    codestream, rows, columns, samples, bits, photometric = {
        HTJ2K_LOSSLESS: (_MONO_LOSSLESS, 32, 32, 1, 12, "MONOCHROME2"),
        HTJ2K_LOSSLESS_RPCL: (_RGB_LOSSLESS, 24, 24, 3, 8, "YBR_RCT"),
        HTJ2K: (_MONO_LOSSY, 32, 32, 1, 12, "MONOCHROME2"),
    }[syntax]
    ds = Dataset()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "HTJ2K"
    ds.Modality = "OT"
    ds.ConversionType = "WSD"
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, columns, samples
    ds.PhotometricInterpretation = photometric
    if samples == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = 8 if bits <= 8 else 16
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits - 1, 0
    ds.PixelData = encapsulate([base64.b64decode("".join(codestream))])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds
