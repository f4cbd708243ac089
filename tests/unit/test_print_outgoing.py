"""printing.outgoing: what the Print SCU puts into film and image boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian

from openpacs.printing import outgoing


def _kept_box(tmp_path: Path, item: Dataset, **box_attrs: object) -> Path:
    """An image box file as the Print SCP archives it."""
    ds = Dataset()
    ds.ImageBoxPosition = 1
    ds.Polarity = "REVERSE"
    for keyword, value in box_attrs.items():
        setattr(ds, keyword, value)
    ds.BasicGrayscaleImageSequence = Sequence([item])
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.1.4")
    ds.file_meta.MediaStorageSOPInstanceUID = UID("2.25.1")
    path = tmp_path / "box.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _grey_item(values: np.ndarray, stored: int) -> Dataset:
    item = Dataset()
    item.Rows, item.Columns = values.shape
    item.SamplesPerPixel, item.PhotometricInterpretation = 1, "MONOCHROME2"
    item.BitsAllocated, item.BitsStored, item.HighBit = 16, stored, stored - 1
    item.PixelRepresentation = 0
    item.PatientName = "ZHANG^SAN"  # identity the modality put in the item: not forwarded
    item.add_new(0x7FE00010, "OW", values.astype("<u2").tobytes())
    return item


def test_a_16_bit_box_goes_on_as_12_bits_with_the_same_picture(tmp_path: Path) -> None:
    values = np.array([[0, 4096, 65535]], dtype=np.uint16)
    path = _kept_box(tmp_path, _grey_item(values, 16))
    film_box = Dataset()
    film_box.ImageDisplayFormat, film_box.FilmSizeID = "STANDARD\\1,1", "A4"
    film_box.ReferencedPresentationLUTSequence = Sequence([Dataset()])
    film = outgoing.original(film_box, {1: path}, {2: "NOTE"})
    box = film.image_boxes[1]
    item = box.BasicGrayscaleImageSequence[0]
    assert (item.BitsStored, item.HighBit) == (12, 11)
    assert np.frombuffer(item.PixelData, "<u2").tolist() == [0, 256, 4095]
    assert "PatientName" not in item and box.Polarity == "REVERSE"
    assert "ReferencedPresentationLUTSequence" not in film.film_box
    assert film.notes == ("the modality's Presentation LUT was not forwarded",)
    assert film.annotations == {2: "NOTE"} and not film.colour


def test_a_12_bit_box_goes_on_unchanged(tmp_path: Path) -> None:
    values = np.array([[0, 2048, 4095]], dtype=np.uint16)
    path = _kept_box(tmp_path, _grey_item(values, 12), RequestedImageSize="120")
    box = outgoing.original(Dataset(), {1: path}, {}).image_boxes[1]
    item = box.BasicGrayscaleImageSequence[0]
    assert item.BitsStored == 12 and bytes(item.PixelData) == values.astype("<u2").tobytes()
    assert box.RequestedImageSize == "120"


def test_colour_for_a_grey_printer_and_grey_for_a_colour_session() -> None:
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[1, 1] = (255, 255, 255)
    grey = outgoing.as_grey(outgoing.image_box(rgb))
    item = grey.BasicGrayscaleImageSequence[0]
    assert "BasicColorImageSequence" not in grey
    assert np.frombuffer(item.PixelData, np.uint8).tolist() == [76, 0, 0, 255]
    twelve = outgoing.image_box(np.zeros((1, 2), dtype=np.uint8))
    twelve.BasicGrayscaleImageSequence[0] = _grey_item(np.array([[0, 4095]]), 12)
    colour = outgoing.as_colour(twelve)
    planes = np.frombuffer(colour.BasicColorImageSequence[0].PixelData, np.uint8)
    assert planes.tolist() == [0, 255] * 3  # colour-by-plane: R, G, B
