"""The `print` job: forward a print job's films to a registered printer (Print SCU).

Parameters (as POST /api/print/jobs/{id}/print queues them): {"print_job": id, "node": name,
"layout": "composed" | "original"}. Composed: each film as one image (STANDARD\\1,1, its film
size and orientation), read back from its PNG, so what the printer gets is what the console
shows. Original: the modality's film box attributes and image boxes as archived beside the film
(`printing.outgoing.original`). A printer that cannot be reached is `Transient` (retried with
backoff); a refusal fails the job, and the print job, with the printer's status and reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from openpacs import nodes
from openpacs.archive.core import Core
from openpacs.archive.models import PrintFilm
from openpacs.dicom import json as dicom_json
from openpacs.dimse import print_scu
from openpacs.dimse.scu import AssociationFailed, Peer
from openpacs.jobs import JobContext, Transient
from openpacs.logs import get_logger
from openpacs.printing import jobs as print_jobs
from openpacs.printing import outgoing

KIND = "print"
log = get_logger("printscu")


def make_print_handler(core: Core) -> Callable[[dict[str, Any], JobContext], None]:
    """The handler for `print` jobs, calling printers with our Print SCP's AE title."""
    calling_ae = core.settings.printscp.ae_title
    timeout = core.settings.printscp.dimse_timeout

    def run(parameters: dict[str, Any], context: JobContext) -> None:
        job_id, name = int(parameters["print_job"]), str(parameters["node"])
        layout = outgoing.Layout(parameters.get("layout", outgoing.Layout.composed))
        with core.sessions() as session:
            address = nodes.Address.of(nodes.get(session, name))
            job = print_jobs.get(session, job_id)
            folder = core.storage.print_dir / job.folder
            session_attrs = dicom_json.from_json(job.attributes)
            kept = print_jobs.films_of(session, job_id)
            films = [_film(folder, film, layout) for film in kept]
        if address.tls:
            raise ValueError(f"node {name!r} has tls = true; openpacs cannot print over TLS yet")
        if not films:
            raise ValueError(f"print job {job_id} has no film to forward")
        context.set_total(len(films))
        context.check_cancelled()
        peer = Peer(address.ae_title, address.host, address.port)
        try:
            report = print_scu.print_films(
                peer,
                films,
                calling_ae=calling_ae,
                timeout=timeout,
                copies=int(session_attrs.get("NumberOfCopies") or 1),
                label=str(session_attrs.get("FilmSessionLabel") or ""),
            )
        except print_scu.PrintRefused as exc:
            reason = f"forwarding to {name} failed: {exc}"
            with core.writing() as session:
                print_jobs.set_state(session, job_id, print_jobs.State.failed, reason)
            raise ValueError(reason) from exc
        except AssociationFailed as exc:
            raise Transient(f"printer {name!r} ({peer}): {exc}") from exc
        context.add_done(report.films)
        note = "; ".join(report.warnings) or None
        with core.writing() as session:
            print_jobs.set_state(session, job_id, print_jobs.State.forwarded, note)
        log.info("print job %d: %d film(s) forwarded to %s", job_id, report.films, peer)

    return run


def _film(folder: Path, film: PrintFilm, layout: outgoing.Layout) -> outgoing.FilmToPrint:
    """A kept film, ready for the printer in the layout asked for."""
    box = dicom_json.from_json(film.attributes)
    if layout is outgoing.Layout.original:
        files = {
            int(kept["position"]): folder / str(kept["file"])
            for kept in film.image_boxes
            if kept.get("file")
        }
        notes = {int(note["position"]): str(note["text"]) for note in film.annotations or []}
        return outgoing.original(box, files, notes)
    with Image.open(folder / film.png) as image:
        pixels = np.asarray(image.convert("RGB" if image.mode == "RGB" else "L"))
    return outgoing.composed(
        pixels,
        str(box.get("FilmSizeID") or "8INX10IN"),
        str(box.get("FilmOrientation") or "PORTRAIT"),
    )
