"""The `openpacs` command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from openpacs import __version__, config

app = typer.Typer(
    help="openpacs: a lightweight PACS. Start with `openpacs serve`.",
    no_args_is_help=True,
    add_completion=False,
)
config_app = typer.Typer(help="Show the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
ohif_app = typer.Typer(help="The OHIF Viewer served under /ohif/.", no_args_is_help=True)
app.add_typer(ohif_app, name="ohif")
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
        run(settings)
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
    except OSError as exc:  # e.g. a host name that does not resolve
        raise fail(f"cannot reach {peer}: {exc}") from exc
    if result.status != 0:
        raise fail(f"C-ECHO answered status 0x{result.status:04X}")
    console.print(Text(f"C-ECHO {peer}: success in {result.seconds * 1000:.1f} ms"))


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
) -> None:
    """Fetch OHIF from the npm registry and set it up for /ohif/ on this server."""
    from openpacs.web import ohif

    wanted = version or ohif.OHIF_VERSION
    if ohif.installed_version() == wanted and not force:
        console.print(Text(f"OHIF {wanted} is installed ({ohif.DEFAULT_DIR})"))
        return
    with console.status(f"fetching @ohif/app@{wanted} from the npm registry"):
        try:
            folder = ohif.install(version=wanted)
        except (ohif.InstallError, OSError) as exc:
            raise fail(f"OHIF not installed: {exc}") from exc
    console.print(Text(f"OHIF {wanted} installed in {folder}; open http://localhost:5000/ohif/"))


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
