"""What leaves the archive for a retrieve: an instance as stored or in another transfer syntax,
single frames, rendered images and de-identified copies.

An object whose stored syntax is acceptable is sent from its file in chunks, never whole in
memory and never re-encoded. Only a conversion holds one object (or one frame) in memory.

`candidates` lists what the peer accepts, best first: transfer syntax UIDs, or "*" for "as
stored, whatever it is". A lossy syntax is only produced when the peer listed it: asking for it
is the consent.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom import Dataset, dcmread
from pydicom.filewriter import dcmwrite

from openpacs.archive.errors import CannotConvert, NotFound, StorageUnavailable
from openpacs.archive.retrieve import StoredInstance
from openpacs.dicom import codecs, frames, render
from openpacs.dicom.deidentify import BASIC, BurnedInAnnotationError, Profile, deidentify
from openpacs.dicom.framecodec import encode_frame, native_frame

AS_STORED = "*"
CHUNK = 1024 * 1024
_LITTLE_ENDIAN = frozenset({codecs.EXPLICIT_VR_LE, codecs.IMPLICIT_VR_LE, codecs.DEFLATED_VR_LE})


@dataclass(frozen=True)
class Encoded:
    """An instance ready to send: its stored file, or converted bytes."""

    transfer_syntax_uid: str
    path: Path | None = None
    data: bytes | None = None

    @property
    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        assert self.path is not None
        return self.path.stat().st_size

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        if self.data is not None:
            for start in range(0, len(self.data), size):
                yield self.data[start : start + size]
            return
        assert self.path is not None
        with self.path.open("rb") as fp:
            while chunk := fp.read(size):
                yield chunk


def sendable(stored_syntax: str, candidates: Sequence[str]) -> bool:
    """Whether some candidate can plausibly be produced from the stored syntax (index only: the
    object's own bit depth or colour may still rule a compressed target out)."""
    return any(_plausible(stored_syntax, target) for target in candidates)


def _plausible(stored: str, target: str) -> bool:
    if target in (AS_STORED, stored):
        return True
    return codecs.can_decode(stored) and codecs.can_encode(target)


def encode_instance(instance: StoredInstance, candidates: Sequence[str]) -> Encoded:
    """The instance in the first candidate syntax it can be given in; CannotConvert if none."""
    stored = instance.transfer_syntax_uid
    reasons = []
    for target in candidates:
        if target in (AS_STORED, stored):
            _check_present(instance)
            return Encoded(stored, path=instance.path)
        try:
            buffer = io.BytesIO()
            codecs.transcode_file(instance.path, buffer, target, allow_lossy=target in codecs.LOSSY)
            return Encoded(target, data=buffer.getvalue())
        except codecs.TranscodeError as exc:
            reasons.append(exc.reason)
        except OSError as exc:
            raise StorageUnavailable(f"cannot read {instance.sop_instance_uid}: {exc}") from exc
    raise CannotConvert(
        f"instance {instance.sop_instance_uid} is stored as {stored}; cannot produce "
        f"{', '.join(candidates)}: {'; '.join(reasons) or 'no encoder'}"
    )


def _check_present(instance: StoredInstance) -> None:
    if not instance.path.is_file():
        raise StorageUnavailable(f"the file of {instance.sop_instance_uid} is missing")


def check_frames(instance: StoredInstance, numbers: Sequence[int]) -> None:
    """NotFound when a 1-based frame number is outside the instance."""
    for number in numbers:
        if not 1 <= number <= instance.number_of_frames:
            raise NotFound(
                f"frame {number} does not exist: instance {instance.sop_instance_uid} has "
                f"{instance.number_of_frames}"
            )


def encode_frame_of(
    instance: StoredInstance, number: int, candidates: Sequence[str]
) -> tuple[bytes, str]:
    """Frame `number` (1-based) in the first candidate syntax it can be given in: (bytes, the
    syntax). As stored means the bare codestream of a compressed frame; a native one (and a
    deflated or big endian object's) comes as Explicit VR Little Endian bytes."""
    check_frames(instance, [number])
    stored = instance.transfer_syntax_uid
    path = str(instance.path)
    reasons = []
    try:
        for target in candidates:
            as_stored = target in (AS_STORED, stored)
            if as_stored and stored not in codecs.NATIVE:
                return frames.read_frame(path, number - 1), stored
            native_target = target in (codecs.EXPLICIT_VR_LE, codecs.IMPLICIT_VR_LE)
            if (as_stored or native_target) and stored in _LITTLE_ENDIAN:
                # Native little endian bytes already: no header to read, nothing to convert.
                return frames.read_frame(path, number - 1), codecs.EXPLICIT_VR_LE
            if as_stored or native_target:
                return native_frame(path, number - 1)[1], codecs.EXPLICIT_VR_LE
            try:
                pixels, native = native_frame(path, number - 1)
                lossy = target in codecs.LOSSY
                return encode_frame(pixels, native, target, allow_lossy=lossy), target
            except codecs.TranscodeError as exc:
                reasons.append(exc.reason)
    except frames.FrameError as exc:
        raise CannotConvert(f"frame {number} of {instance.sop_instance_uid}: {exc}") from exc
    except OSError as exc:
        raise StorageUnavailable(f"cannot read {instance.sop_instance_uid}: {exc}") from exc
    raise CannotConvert(
        f"frame {number} of {instance.sop_instance_uid} (stored as {stored}) cannot be given "
        f"as {', '.join(candidates)}: {'; '.join(reasons) or 'no encoder'}"
    )


def rendered(
    instance: StoredInstance, options: render.RenderOptions, frame: int | None = None
) -> bytes:
    """The instance as an image: frame `frame` (1-based); without one, the first frame, or
    every frame as an animated GIF when GIF is asked of a multi-frame object."""
    try:
        ds = dcmread(instance.path, stop_before_pixels=True)
        if frame is not None:
            check_frames(instance, [frame])
        if frame is None and options.format == "gif" and instance.number_of_frames > 1:
            return render.render_cine(ds, frames.iter_frames(instance.path), options)
        index = 0 if frame is None else frame - 1
        pixels = frames.decode_frame(instance.path, index)
        return render.render_frame(ds, pixels, options, frame=index)
    except (frames.FrameError, render.RenderError) as exc:
        raise CannotConvert(f"instance {instance.sop_instance_uid} has no picture: {exc}") from exc
    except OSError as exc:
        raise StorageUnavailable(f"cannot read {instance.sop_instance_uid}: {exc}") from exc


def check_deidentifiable(instance: StoredInstance) -> None:
    """CannotConvert when the object says its pixels carry burnt-in identity: removing the
    header's identity would not make such an object anonymous, nor a picture of it."""
    try:
        ds = dcmread(instance.path, stop_before_pixels=True)
    except OSError as exc:
        raise StorageUnavailable(f"cannot read {instance.sop_instance_uid}: {exc}") from exc
    if str(ds.get("BurnedInAnnotation", "")).strip().upper() == "YES":
        raise CannotConvert(
            f"instance {instance.sop_instance_uid} has burned-in annotation: it cannot be "
            "de-identified"
        )


def deidentified_dataset(instance: StoredInstance, key: bytes, profile: Profile = BASIC) -> Dataset:
    """The instance de-identified by `profile` (UIDs and pseudonyms keyed by `key`), whole
    (pixels untouched) in memory."""
    check_deidentifiable(instance)
    try:
        return deidentify(dcmread(instance.path), profile, key)
    except BurnedInAnnotationError as exc:
        raise CannotConvert(f"instance {instance.sop_instance_uid}: {exc}") from exc
    except OSError as exc:
        raise StorageUnavailable(f"cannot read {instance.sop_instance_uid}: {exc}") from exc


def deidentified(
    instance: StoredInstance, key: bytes, target: str, profile: Profile = BASIC
) -> Encoded:
    """A de-identified copy (PS3.15 Basic Profile and `profile`'s options, UIDs and
    pseudonyms keyed by `key`) in `target` (or as stored for "*")."""
    clean = deidentified_dataset(instance, key, profile)
    syntax = instance.transfer_syntax_uid if target == AS_STORED else target
    try:
        if syntax != instance.transfer_syntax_uid:
            clean = codecs.transcode(clean, syntax, allow_lossy=syntax in codecs.LOSSY)
        return Encoded(syntax, data=encoded(clean))
    except codecs.TranscodeError as exc:
        raise CannotConvert(str(exc)) from exc


def encoded(ds: Dataset) -> bytes:
    """A dataset as a Part-10 file's bytes."""
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()
