"""The `openpacs` command."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from openpacs import __version__, config

if TYPE_CHECKING:  # imported where used, so that `openpacs --help` stays quick
    from sqlalchemy.orm import Session

    from openpacs.archive.retrieve import StoredInstance
    from openpacs.dicom.qr import Selection
    from openpacs.dimse.qr_scu import Result as QrResult
    from openpacs.dimse.scu import Peer as ScuPeer
    from openpacs.dimse.sender import Peer, StoreOutcome

app = typer.Typer(
    help="openpacs: a lightweight PACS. Start with `openpacs serve`.",
    no_args_is_help=True,
    add_completion=False,
)
config_app = typer.Typer(help="Show the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
ohif_app = typer.Typer(help="The OHIF Viewer served under /ohif/.", no_args_is_help=True)
app.add_typer(ohif_app, name="ohif")
user_app = typer.Typer(
    help="Users who sign in to the console, the API and DICOMweb (run on the server).",
    no_args_is_help=True,
)
app.add_typer(user_app, name="user")
db_app = typer.Typer(
    help="The index database: migrations, moving to PostgreSQL.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
console = Console()
errors = Console(stderr=True)


def fail(message: object, code: int = 1) -> typer.Exit:
    """Print a message in red on stderr, taken literally (paths and AE titles may hold '[')."""
    errors.print(Text(str(message), style="red"))
    return typer.Exit(code)


ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Configuration file (default: ./openpacs.toml)"),
]


def _settings(path: Path | None) -> config.Settings:
    try:
        return config.load(path)
    except config.ConfigError as exc:
        raise fail(exc, 2) from exc


def _version(value: bool) -> None:
    if value:
        console.print(f"openpacs {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version")
    ] = False,
) -> None:
    """openpacs: a lightweight PACS."""


@app.command()
def serve(config_file: ConfigOption = None) -> None:
    """Start the DICOM listeners and the HTTP server; Ctrl-C stops them cleanly."""
    from openpacs.server import serve as run

    settings = _settings(config_file)
    try:
        run(settings, config.config_path(config_file))
    except OSError as exc:
        raise fail(
            f"cannot start: {exc}\nIs another openpacs (or another program) using the same port?"
        ) from exc


@app.command("import")
def import_(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to import", exists=True)],
    config_file: ConfigOption = None,
) -> None:
    """Store DICOM files from disk, with a progress bar and a summary."""
    from openpacs import logs
    from openpacs.archive.core import open_core
    from openpacs.archive.importer import files_under, import_paths

    settings = _settings(config_file)
    logs.setup(settings.logging.model_copy(update={"console": False}))
    core = open_core(settings)
    files = list(files_under(paths))
    with _progress() as progress:
        task = progress.add_task("importing", total=len(files))
        report = import_paths(core.archive, files, progress=lambda _p: progress.advance(task))
    core.close()
    summary = Table(show_header=False, box=None)
    summary.add_row("stored", str(report.stored))
    summary.add_row("duplicates (already stored)", str(report.duplicates))
    summary.add_row("rejected", str(len(report.rejected)))
    console.print(summary)
    if report.rejected:
        rejected = Table("file", "reason", title="rejected")
        for name, reason in report.rejected.items():
            rejected.add_row(Text(name), Text(reason))
        console.print(rejected)
        raise typer.Exit(1)


@app.command()
def reindex(
    config_file: ConfigOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """Rebuild the index from the storage folder (stop the server first)."""
    from openpacs import logs
    from openpacs.archive.core import open_core
    from openpacs.archive.reindex import reindex as rebuild

    settings = _settings(config_file)
    if not yes:
        typer.confirm(
            f"Empty the index at {settings.database.url} and rebuild it from "
            f"{settings.storage.root}?",
            abort=True,
        )
    logs.setup(settings.logging.model_copy(update={"console": False}))
    core = open_core(settings)
    total = sum(1 for _ in core.storage.walk())
    with _progress() as progress:
        task = progress.add_task("reindexing", total=total)
        report = rebuild(core.storage, core.sessions, progress=lambda _p: progress.advance(task))
    core.close()
    console.print(f"indexed {report.indexed} files; skipped {len(report.skipped)}")
    for name, reason in report.skipped.items():
        console.print(Text(f"  skipped {name}: {reason}"))


@app.command()
def echo(
    peer: Annotated[str, typer.Argument(help="The peer as AE@host:port")],
    calling_ae: Annotated[str, typer.Option("--aet", help="Our calling AE title")] = "OPENPACS",
    timeout: Annotated[float, typer.Option(help="Seconds to wait")] = 10,
) -> None:
    """C-ECHO a DICOM node and print the round-trip time."""
    from openpacs.dimse.scu import AssociationFailed, Peer
    from openpacs.dimse.scu import echo as send_echo

    try:
        target = Peer.parse(peer)
        result = send_echo(target, calling_ae=calling_ae, timeout=timeout)
    except (ValueError, AssociationFailed) as exc:
        raise fail(exc) from exc
    if result.status != 0:
        raise fail(f"C-ECHO answered status 0x{result.status:04X}")
    console.print(Text(f"C-ECHO {peer}: success in {result.seconds * 1000:.1f} ms"))


SEND_TIMEOUT = 60


@app.command()
def send(
    node: Annotated[str, typer.Argument(help="A registered node's name, or AE@host:port")],
    items: Annotated[
        list[str], typer.Argument(help="UIDs of stored studies, or DICOM files and folders")
    ],
    calling_ae: Annotated[
        str | None, typer.Option("--aet", help="Our calling AE title (default: storescp.ae_title)")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the node")] = SEND_TIMEOUT,
    config_file: ConfigOption = None,
) -> None:
    """Send stored studies or local files to a DICOM node (C-STORE), with a progress bar."""
    from openpacs import logs
    from openpacs.archive.importer import files_under
    from openpacs.dimse import sender
    from openpacs.dimse.local import read_local

    settings = _settings(config_file)
    paths, studies = _paths_and_studies(items)
    logs.setup(settings.logging.model_copy(update={"console": False}))
    peer, stored, missing = _send_target(settings, node, studies)
    if missing:
        listed = ", ".join(missing)
        raise fail(f"not stored here: {listed}; `openpacs import` them or check the UIDs")
    local = read_local(files_under(paths))
    # Each instance once, though a study UID and a file may both name it.
    chosen: dict[str, sender.Sendable] = {one.sop_instance_uid: one for one in stored}
    chosen.update((one.sop_instance_uid, one) for one in local.files)
    instances = list(chosen.values())
    report = sender.SendReport(total=0)
    if instances:
        with _progress() as progress:
            task = progress.add_task(f"sending to {peer}", total=len(instances))
            try:
                report = sender.send(
                    peer,
                    instances,
                    calling_ae=calling_ae or settings.storescp.ae_title,
                    timeout=timeout,
                    progress=lambda _outcome, _report: progress.advance(task),
                )
            except sender.AssociationFailed as exc:
                raise fail(f"nothing sent: {exc}") from exc
            except OSError as exc:  # e.g. a host name that does not resolve
                raise fail(f"nothing sent: cannot reach {peer.host}:{peer.port}: {exc}") from exc
    summary = Table(show_header=False, box=None)
    summary.add_row("sent", str(report.completed))
    summary.add_row("sent with warnings", str(report.warnings))
    summary.add_row("failed", str(report.failed + len(local.rejected)))
    console.print(summary)
    failures = {o.sop_instance_uid: _why(o) for o in report.outcomes if not o.ok}
    failures.update(local.rejected)
    if failures:
        table = Table("instance or file", "reason", title="not sent")
        for name, reason in failures.items():
            table.add_row(Text(name), Text(reason))
        console.print(table)
        raise typer.Exit(1)
    if not instances:
        raise fail("nothing to send: no DICOM files under the paths given")


@app.command("print")
def print_(
    node: Annotated[str, typer.Argument(help="A registered node's name, or AE@host:port")],
    items: Annotated[
        list[str], typer.Argument(help="UIDs of stored studies, or DICOM image files and folders")
    ],
    layout: Annotated[
        str, typer.Option(help="ImageDisplayFormat: STANDARD\\C,R, ROW\\n,n... or COL\\n,n...")
    ] = "STANDARD\\1,1",
    film_size: Annotated[
        str | None, typer.Option(help="FilmSizeID (default: printscp.film_size)")
    ] = None,
    orientation: Annotated[
        str | None, typer.Option(help="PORTRAIT or LANDSCAPE (default: printscp's)")
    ] = None,
    boxes: Annotated[
        bool,
        typer.Option(
            "--boxes/--composed",
            help="--boxes: one image box per image, laid out by the printer; --composed: each "
            "film composed here at printscp.dpi and sent as one image",
        ),
    ] = False,
    copies: Annotated[int, typer.Option(min=1, max=99, help="NumberOfCopies")] = 1,
    calling_ae: Annotated[
        str | None, typer.Option("--aet", help="Our calling AE title (default: printscp.ae_title)")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the printer")] = SEND_TIMEOUT,
    config_file: ConfigOption = None,
) -> None:
    """Print stored studies or images from disk on a DICOM printer (Print SCU): --layout at a
    time, each film composed here (default) or as image boxes for the printer to lay out."""
    from openpacs import logs
    from openpacs.archive.importer import files_under
    from openpacs.dimse import print_scu
    from openpacs.dimse.scu import AssociationFailed
    from openpacs.printing import compose, local, outgoing
    from openpacs.printing.errors import PrintError

    settings = _settings(config_file)
    paths, studies = _paths_and_studies(items)
    printscp = settings.printscp
    spec_size = (film_size or printscp.film_size).upper()
    spec_orientation = (orientation or printscp.film_orientation).upper()
    try:
        spec = compose.FilmSpec(
            display_format=layout,
            film_size=spec_size,
            orientation=spec_orientation,
            magnification=printscp.magnification,
            border=compose.density_grey(printscp.border_density, "border", 20, 300),
            empty=compose.density_grey(printscp.empty_image_density, "empty", 20, 300),
        )
        compose.box_count(layout)
        compose.film_pixels(spec_size, spec_orientation, printscp.dpi)
    except PrintError as exc:
        raise fail(exc, 2) from exc
    stored, missing = _stored_studies(settings, studies)
    if missing:
        raise fail(f"not stored here: {', '.join(missing)}; check the UIDs", 2)
    try:
        images = local.displays_of(list(files_under(paths)))
        images += local.displays_of([one.path for one in stored], in_series_order=True)
        if not images:
            raise fail("no images to print", 2)
        if boxes:
            to_print = local.boxed(images, spec)
        else:
            films = local.films(images, spec, printscp.dpi, max_pixels=printscp.max_film_pixels)
            to_print = [outgoing.composed(f, spec_size, spec_orientation) for f in films]
    except PrintError as exc:
        raise fail(exc, 2) from exc
    logs.setup(settings.logging.model_copy(update={"console": False}))
    peer = _peer_of(settings, node)
    try:
        report = print_scu.print_films(
            peer,
            to_print,
            calling_ae=calling_ae or printscp.ae_title,
            timeout=timeout,
            copies=copies,
        )
    except print_scu.PrintRefused as exc:
        raise fail(f"the printer refused: {exc}") from exc
    except AssociationFailed as exc:
        raise fail(f"nothing printed: {exc}") from exc
    except OSError as exc:
        raise fail(f"nothing printed: cannot reach {peer.host}:{peer.port}: {exc}") from exc
    console.print(f"printed {report.films} film(s) of {len(images)} image(s) on {peer}")
    for warning in report.warnings:
        errors.print(f"warning: {warning}")


def _paths_and_studies(items: list[str]) -> tuple[list[Path], list[str]]:
    """Command-line items as files/folders and study UIDs; exits naming one that is neither."""
    from openpacs.dicom.uids import InvalidUID, check_uid

    paths: list[Path] = []
    studies: list[str] = []
    for item in items:
        if Path(item).exists():
            paths.append(Path(item))
            continue
        try:
            studies.append(check_uid(item, "study UID"))
        except InvalidUID:
            raise fail(f"{item!r} is neither a file or folder nor a study UID", 2) from None
    return paths, studies


def _why(outcome: StoreOutcome) -> str:
    from openpacs.dimse.store_job import describe

    return describe(outcome)


def _send_target(
    settings: config.Settings, node: str, studies: list[str]
) -> tuple[Peer, list[StoredInstance], list[str]]:
    """The peer named on the command line, the stored instances of `studies`, and the study
    UIDs not stored. The index is opened only when a node name or a study needs it."""
    from openpacs.dimse import sender

    found = _peer_of(settings, node)
    peer = sender.Peer(found.ae_title, found.host, found.port)
    return peer, *_stored_studies(settings, studies)


def _peer_of(settings: config.Settings, node: str) -> ScuPeer:
    """A node named on the command line: a registered name, or AE@host:port."""
    from openpacs.dimse import scu

    if "@" not in node:
        found = _registered(settings, node)
        return scu.Peer(found.ae_title, found.host, found.port)
    try:
        return scu.Peer.parse(node)
    except ValueError as exc:
        raise fail(exc, 2) from exc


def _registered(settings: config.Settings, node: str) -> Peer:
    """A node of the registry, or of the configuration file's [[nodes]] (which a server seeds
    into the registry at start: they count before it ever ran)."""
    from openpacs import nodes
    from openpacs.archive.core import open_core
    from openpacs.dimse import sender

    spec: nodes.Address | config.NodeSettings | None = None
    core = open_core(settings)
    try:
        with core.sessions() as session:
            registered = nodes.find(session, node)
            spec = nodes.Address.of(registered) if registered is not None else None
    finally:
        core.close()
    spec = spec or next((n for n in settings.nodes if n.name == node), None)
    if spec is None:
        raise fail(
            f"no node named {node!r}: add it ([[nodes]] in openpacs.toml or POST /api/nodes) "
            "or write the peer as AE@host:port"
        )
    return sender.Peer(spec.ae_title, spec.host, spec.port)


def _stored_studies(
    settings: config.Settings, studies: list[str]
) -> tuple[list[StoredInstance], list[str]]:
    """The stored instances of `studies`, and the study UIDs not stored."""
    from openpacs.archive.core import open_core
    from openpacs.archive.retrieve import select_named

    if not studies:
        return [], []
    stored: list[StoredInstance] = []
    missing = []
    core = open_core(settings)
    try:
        with core.sessions() as session:
            for uid in dict.fromkeys(studies):
                found = select_named(session, core.storage, studies=[uid])
                stored += found
                if not found:
                    missing.append(uid)
    finally:
        core.close()
    return stored, missing


@app.command()
def query(
    node: Annotated[str, typer.Argument(help="A registered node's name, or AE@host:port")],
    level: Annotated[
        str, typer.Option("--level", "-l", help="PATIENT, STUDY, SERIES or IMAGE")
    ] = "STUDY",
    keys: Annotated[
        list[str] | None,
        typer.Option(
            "--key", "-k", help="Keyword=Value to match (wildcards, ranges), or Keyword to return"
        ),
    ] = None,
    model: Annotated[str, typer.Option(help="Information model: study or patient")] = "study",
    calling_ae: Annotated[
        str | None, typer.Option("--aet", help="Our calling AE title (default: storescp.ae_title)")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the node")] = 30,
    config_file: ConfigOption = None,
) -> None:
    """Query a DICOM node (C-FIND) and print the answers as a table."""
    from openpacs.dicom import qr
    from openpacs.dimse import qr_scu, scu

    settings = _settings(config_file)
    try:
        identifier, columns = qr.find_identifier(level, qr.parse_keys(keys or []))
    except qr.InvalidKeys as exc:
        raise fail(exc, 2) from exc
    level = identifier.QueryRetrieveLevel
    peer = _peer_of(settings, node)
    try:
        result = qr_scu.find(
            peer,
            identifier,
            model=model,
            calling_ae=calling_ae or settings.storescp.ae_title,
            timeout=timeout,
        )
    except ValueError as exc:
        raise fail(exc, 2) from exc
    except scu.AssociationFailed as exc:
        raise fail(exc) from exc
    table = Table(*columns, title=f"{len(result.answers)} {level.lower()} answer(s) from {node}")
    for answer in result.answers:
        table.add_row(*(Text(_shown(answer.get(column))) for column in columns))
    console.print(table)
    if result.status != 0:
        said = f"; the node says: {result.comment}" if result.comment else ""
        raise fail(f"the C-FIND ended with status 0x{result.status:04X}{said}")


def _shown(value: object) -> str:
    """A value as DICOM writes it: multiple values joined by backslashes."""
    from pydicom.multival import MultiValue

    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(one) for one in value)
    return str(value)


@app.command()
def retrieve(
    node: Annotated[str, typer.Argument(help="A registered node's name, or AE@host:port")],
    studies: Annotated[
        list[str] | None, typer.Argument(help="Study Instance UIDs to retrieve")
    ] = None,
    series: Annotated[
        list[str] | None, typer.Option("--series", help="Only these series (of one study)")
    ] = None,
    instances: Annotated[
        list[str] | None,
        typer.Option("--instance", help="Only these instances (of one series)"),
    ] = None,
    patient: Annotated[
        str | None, typer.Option("--patient", help="Every study of this patient ID instead")
    ] = None,
    to: Annotated[
        str | None,
        typer.Option("--to", help="C-MOVE to this AE title (default: our Store SCP, i.e. here)"),
    ] = None,
    get: Annotated[
        bool, typer.Option("--get", help="C-GET into this archive instead of C-MOVE")
    ] = False,
    calling_ae: Annotated[
        str | None, typer.Option("--aet", help="Our calling AE title (default: storescp.ae_title)")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the node")] = 60,
    config_file: ConfigOption = None,
) -> None:
    """Have a node send studies, series or instances here (C-MOVE to our Store SCP, which
    `openpacs serve` runs, or C-GET with --get), or C-MOVE them to another AE with --to."""
    from openpacs.dicom import qr

    settings = _settings(config_file)
    if get and to:
        raise fail("--get retrieves into this archive; --to is for C-MOVE only", 2)
    parameters = {
        "patient_id": patient,
        "studies": studies or [],
        "series": series or [],
        "instances": instances or [],
    }
    try:
        selection = qr.Selection.of(parameters)
    except qr.InvalidKeys as exc:
        raise fail(exc, 2) from exc
    peer = _peer_of(settings, node)
    our_ae = calling_ae or settings.storescp.ae_title
    destination = to or settings.storescp.ae_title
    where = "here (C-GET)" if get else f"to {destination} (C-MOVE)"
    results = _retrieve(settings, peer, selection, where, get, our_ae, destination, timeout)
    summary = Table(show_header=False, box=None)
    summary.add_row("retrieved", str(sum(r.counts.completed for r in results)))
    summary.add_row("with warnings", str(sum(r.counts.warning for r in results)))
    summary.add_row("failed", str(sum(r.counts.failed for r in results)))
    console.print(summary)
    refused = [r for r in results if r.status not in (0x0000, 0xB000)]
    failed_uids = [uid for r in results for uid in r.failed_uids]
    if failed_uids:
        table = Table("instance", title="not retrieved")
        for uid in failed_uids:
            table.add_row(Text(uid))
        console.print(table)
    for result in refused:
        comment = f": {result.comment}" if result.comment else ""
        errors.print(Text(f"{peer} answered status 0x{result.status:04X}{comment}", style="red"))
    if refused or failed_uids or any(r.counts.failed for r in results):
        if not get and destination == settings.storescp.ae_title:
            errors.print(
                f"check that `openpacs serve` is running and that {peer.ae_title} knows AE "
                f"{destination} at this host, port {settings.storescp.port}"
            )
        raise typer.Exit(1)


def _retrieve(
    settings: config.Settings,
    peer: ScuPeer,
    selection: Selection,
    where: str,
    get: bool,
    calling_ae: str,
    destination: str,
    timeout: float,
) -> list[QrResult]:
    """Each request of the selection in turn, with one progress bar over all of them."""
    from openpacs.archive.core import open_core
    from openpacs.dimse import qr_scu
    from openpacs.dimse.scu import AssociationFailed
    from openpacs.dimse.store_scp import retrieved_into

    core = open_core(settings) if get else None
    results: list[qr_scu.Result] = []
    try:
        with _progress() as progress:
            task = progress.add_task(f"{selection.describe()} from {peer} {where}", total=None)
            before = 0

            def show(counts: qr_scu.Counts) -> None:
                total = before + counts.total if counts.total is not None else None
                progress.update(task, total=total, completed=before + counts.handled)

            for model, identifier in selection.identifiers():
                result = qr_scu.retrieve(
                    peer,
                    identifier,
                    model=model,
                    calling_ae=calling_ae,
                    timeout=timeout,
                    destination=None if core else destination,
                    store=retrieved_into(core.archive) if core else None,
                    temp_dir=core.storage.temp_dir if core else None,
                    progress=show,
                )
                show(result.counts)
                before += result.counts.handled
                results.append(result)
    except AssociationFailed as exc:
        raise fail(f"nothing retrieved: {exc}") from exc
    finally:
        if core is not None:
            core.close()
    return results


@config_app.command("show")
def config_show(config_file: ConfigOption = None) -> None:
    """Print the effective configuration (file, environment and defaults merged)."""
    settings = _settings(config_file)
    source = config.config_path(config_file)
    # Plain stdout, not rich: its wrapping at the terminal width would break the TOML.
    typer.echo(f"# from {source or 'defaults (no openpacs.toml found)'} and OPENPACS_* variables")
    typer.echo(config.render_toml(settings, documented=False), nl=False)


@config_app.command("default")
def config_default() -> None:
    """Print a documented openpacs.toml with every key at its default."""
    typer.echo(config.render_toml(config.Settings.model_construct()), nl=False)


@ohif_app.command("install")
def ohif_install(
    version: Annotated[str, typer.Option(help="@ohif/app version from the npm registry")] = "",
    force: Annotated[bool, typer.Option("--force", help="Reinstall the same version")] = False,
    registry: Annotated[
        str,
        typer.Option(help="npm registry or mirror (default: $npm_config_registry, else npmjs)"),
    ] = "",
) -> None:
    """Fetch OHIF from the npm registry (no Node.js needed) and set it up for /ohif/."""
    from rich.progress import DownloadColumn, TransferSpeedColumn

    from openpacs.web import ohif

    wanted = version or ohif.OHIF_VERSION
    if ohif.installed_version(ohif.DEFAULT_DIR) == wanted and not force:
        console.print(Text(f"OHIF {wanted} is installed ({ohif.DEFAULT_DIR})"))
        return
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
    with Progress(*columns, TransferSpeedColumn(), console=console) as progress:
        task = progress.add_task(f"@ohif/app@{wanted}", total=None)

        def downloaded(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total or None)

        try:
            folder = ohif.install(ohif.DEFAULT_DIR, wanted, registry or None, downloaded)
        except (ohif.InstallError, OSError) as exc:
            raise fail(f"OHIF not installed: {exc}") from exc
    console.print(Text(f"OHIF {wanted} installed in {folder}; open http://localhost:5000/ohif/"))


PasswordOption = Annotated[
    str | None,
    typer.Option("--password", "-p", help="The password (asked for, hidden, when left out)"),
]


@contextlib.contextmanager
def _accounts(config_file: Path | None) -> Iterator[Session]:
    """One write transaction on the index of the configured server (made on first use, with
    the first start's admin)."""
    from sqlalchemy.exc import SQLAlchemyError

    from openpacs.accounts import users
    from openpacs.archive import db
    from openpacs.archive.core import open_core

    settings = _settings(config_file)
    try:
        core = open_core(settings)
    except (SQLAlchemyError, OSError) as exc:
        raise fail(f"cannot open the index at {settings.database.url}: {exc}") from exc
    try:
        with core.writing() as session:
            users.ensure_admin(session)
            yield session
    except SQLAlchemyError as exc:
        raise fail(f"the index did not take the change: {db.describe(exc)}") from exc
    finally:
        core.close()


@db_app.command("upgrade")
def db_upgrade(config_file: ConfigOption = None) -> None:
    """Bring the index (database.url) to the newest schema; `serve` does this at start too."""
    from alembic.migration import MigrationContext
    from sqlalchemy.exc import SQLAlchemyError

    from openpacs.archive import db

    settings = _settings(config_file)
    engine = db.make_engine(settings.database)
    try:
        with engine.connect() as conn:
            before = MigrationContext.configure(conn).get_current_revision()
        db.migrate(engine)
        with engine.connect() as conn:
            after = MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as exc:
        raise fail(f"cannot upgrade {_shown_url(settings)}: {db.describe(exc)}") from exc
    finally:
        engine.dispose()
    if before == after:
        console.print(f"{_shown_url(settings)}: already at revision {after}")
    else:
        console.print(f"{_shown_url(settings)}: upgraded from {before or 'empty'} to {after}")


@db_app.command("migrate-from-sqlite")
def db_migrate_from_sqlite(
    source: Annotated[Path, typer.Argument(help="The SQLite index file, e.g. data/index.db")],
    config_file: ConfigOption = None,
) -> None:
    """Copy a SQLite index into the (empty) database of database.url, e.g. PostgreSQL: every
    row kept, the stored files untouched, the SQLite file left as it was. Stop the server
    first; point database.url at the new database afterwards."""
    from sqlalchemy.exc import SQLAlchemyError

    from openpacs.archive import db, transfer

    settings = _settings(config_file)
    if settings.database.url.startswith("sqlite"):
        raise fail(
            "database.url names SQLite; set it to the target first, e.g. "
            "OPENPACS_DATABASE__URL=postgresql+psycopg://user:password@host/openpacs",
            2,
        )
    target = db.make_engine(settings.database)
    try:
        with _progress() as progress, transfer.upgraded_copy(source) as reading:
            tasks: dict[str, TaskID] = {}

            def advance(table: str, done: int, total: int) -> None:
                if table not in tasks:
                    tasks[table] = progress.add_task(table, total=total or 1)
                progress.update(tasks[table], completed=done if total else 1)

            copied = transfer.copy_index(reading, target, advance)
    except transfer.TransferError as exc:
        raise fail(exc) from exc
    except SQLAlchemyError as exc:
        raise fail(f"nothing copied: {db.describe(exc)}") from exc
    finally:
        target.dispose()
    summary = Table("table", "rows", title=f"copied into {_shown_url(settings)}")
    for one in copied:
        summary.add_row(one.table, str(one.target_rows))
    console.print(summary)
    console.print("Files are where they were; start openpacs with this database.url.")


def _shown_url(settings: config.Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.database.url).render_as_string(hide_password=True)


def _new_password(given: str | None) -> str:
    if given is not None:
        return given
    return str(typer.prompt("New password", hide_input=True, confirmation_prompt=True))


@user_app.command("list")
def user_list(config_file: ConfigOption = None) -> None:
    """Every user with role and state."""
    from openpacs.accounts import users

    table = Table("user", "role", "state", "last sign-in")
    with _accounts(config_file) as session:
        for user in users.list_users(session):
            state = "disabled" if user.disabled else "active"
            if user.must_change_password:
                state += ", must change password"
            last = user.last_login_at.strftime("%Y-%m-%d %H:%M") if user.last_login_at else "-"
            table.add_row(Text(user.username), user.role, state, last)
    console.print(table)


@user_app.command("add")
def user_add(
    username: Annotated[str, typer.Argument(help="User name (letters, digits, . _ @ -)")],
    role: Annotated[str, typer.Option(help="admin, operator or viewer")] = "viewer",
    password: PasswordOption = None,
    must_change: Annotated[
        bool,
        typer.Option(
            help="Ask for a new password at first sign-in (--no-must-change for a script's user)"
        ),
    ] = True,
    config_file: ConfigOption = None,
) -> None:
    """Add a user."""
    from openpacs.accounts import ArchiveError, Role, users

    try:
        chosen = Role(role)
    except ValueError:
        raise fail(f"role {role!r}: use admin, operator or viewer", 2) from None
    secret = _new_password(password)
    with _accounts(config_file) as session:
        minimum = _settings(config_file).auth.min_password_length
        try:
            users.create(
                session,
                username,
                secret,
                chosen,
                min_length=minimum,
                must_change_password=must_change,
            )
        except (ArchiveError, ValueError) as exc:
            raise fail(f"user {username!r} not added: {exc}") from exc
    console.print(Text(f"user {username!r} added as {chosen.value}"))


@user_app.command("passwd")
def user_passwd(
    username: Annotated[str, typer.Argument(help="The user, e.g. admin")],
    password: PasswordOption = None,
    must_change: Annotated[
        bool, typer.Option(help="Ask the user for a new password at next sign-in")
    ] = False,
    config_file: ConfigOption = None,
) -> None:
    """Set a user's password (a forgotten one too); lifts a lockout and ends their sessions."""
    from openpacs.accounts import ArchiveError, users

    secret = _new_password(password)
    with _accounts(config_file) as session:
        minimum = _settings(config_file).auth.min_password_length
        try:
            user = users.get(session, username)
            users.reset_password(session, user, secret, min_length=minimum, must_change=must_change)
        except ArchiveError as exc:
            raise fail(f"password not changed: {exc}") from exc
    console.print(Text(f"password of {username!r} changed; their sessions ended"))


@user_app.command("delete")
def user_delete(
    username: Annotated[str, typer.Argument(help="The user to delete")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
    config_file: ConfigOption = None,
) -> None:
    """Delete a user with their sessions and tokens (never the last enabled admin)."""
    from openpacs.accounts import ArchiveError, users

    if not yes:
        typer.confirm(f"Delete user {username!r} with their sessions and tokens?", abort=True)
    with _accounts(config_file) as session:
        try:
            users.delete_user(session, username)
        except ArchiveError as exc:
            raise fail(f"user {username!r} not deleted: {exc}") from exc
    console.print(Text(f"user {username!r} deleted"))


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def main() -> None:
    app()
