"""The `openpacs` command as an operator uses it: version, config, import, reindex, echo, send,
query.

Commands run through Typer's CliRunner in this process (one test runs the installed console
script), configured the way an operator would: OPENPACS_* variables and a working directory
without an openpacs.toml. The index is real (SQLite, and PostgreSQL when configured).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url
from typer.testing import CliRunner, Result

import openpacs
from openpacs import config, logs, nodes
from openpacs.archive.core import open_core
from openpacs.archive.importer import import_paths
from openpacs.archive.index import Counts
from openpacs.cli import app
from openpacs.config import NodeSettings, Settings
from openpacs.dimse.qr_scp import make_qr_listener
from openpacs.dimse.sender import dataset_start
from openpacs.dimse.store_scp import make_store_listener
from tests.conftest import free_port, make_settings, sample
from tests.generators import ct_series
from tests.integration.dcmtk_peers import StoreScp

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).parent / "openpacs"
# A terminal wide enough that rich tables and long lines are not wrapped.
WIDE = {"COLUMNS": "250"}

runner = CliRunner()


def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, list(args), input=input, env=env)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No configuration from the machine running the tests; logging as it was before."""
    for name in list(os.environ):
        if name == config.CONFIG_ENV or (name.startswith("OPENPACS_") and "__" in name):
            monkeypatch.delenv(name)
    monkeypatch.delenv("COLUMNS", raising=False)
    # `import` and `reindex` set up file logging for the process; undo it after each test.
    names = [logs.ROOT, *(f"{logs.ROOT}.{s}" for s in config.SERVICES), *logs.LIBRARIES]
    saved = {}
    for name in names:
        logger = logging.getLogger(name)
        saved[name] = (list(logger.handlers), logger.level, logger.propagate)
    yield
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


@pytest.fixture
def cli_settings(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Configure the command through the environment; return the settings it will see."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENPACS_STORAGE__ROOT", str(tmp_path / "storage"))
    monkeypatch.setenv("OPENPACS_DATABASE__URL", database_url)
    monkeypatch.setenv("OPENPACS_LOGGING__DIR", str(tmp_path / "logs"))
    settings = config.load()
    assert settings.storage.root == tmp_path / "storage"
    return settings


def counts_of(settings: Settings) -> Counts:
    core = open_core(settings)
    try:
        return core.counts()
    finally:
        core.close()


def flat(text: str) -> str:
    """Text with rich's line wrapping undone (the runner's terminal is 80 columns wide)."""
    return " ".join(text.split())


def summary(output: str) -> dict[str, int]:
    """The stored / duplicates / rejected numbers of an import summary."""
    found = {}
    for label in ("stored", "duplicates (already stored)", "rejected"):
        match = re.search(rf"^\s*{re.escape(label)}\s+(\d+)\s*$", output, re.MULTILINE)
        assert match, f"no {label!r} line in:\n{output}"
        found[label.split()[0]] = int(match[1])
    return found


# --- --version -------------------------------------------------------------------------------


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"openpacs {openpacs.__version__}"


def test_installed_script_prints_the_version() -> None:
    done = subprocess.run(
        [str(SCRIPT), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"openpacs {openpacs.__version__}"


def test_no_arguments_shows_help() -> None:
    result = invoke()
    assert "serve" in result.output and "import" in result.output and "reindex" in result.output


# --- config ----------------------------------------------------------------------------------


def test_config_show_merges_file_environment_and_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    site = tmp_path / "site.toml"
    site.write_text(
        '[storescp]\nae_title = "SITEAE"\nport = 104\n\n[storage]\nduplicates = "refuse"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("OPENPACS_STORESCP__PORT", "2104")
    monkeypatch.setenv("OPENPACS_HTTP__PORT", "8080")

    result = invoke("config", "show", "--config", str(site), env=WIDE)
    assert result.exit_code == 0, result.output
    first, _, rest = result.stdout.partition("\n")
    assert first.startswith("# from ") and str(site) in first
    shown = tomllib.loads(rest)
    assert shown["storescp"]["ae_title"] == "SITEAE"  # file
    assert shown["storescp"]["port"] == 2104  # environment beats the file
    assert shown["http"]["port"] == 8080  # environment
    assert shown["storage"]["duplicates"] == "refuse"  # file
    assert shown["storescp"]["host"] == "0.0.0.0"  # default
    assert shown["database"]["url"] == "sqlite:///data/index.db"  # default
    # What is shown is itself a usable configuration file that means the same.
    effective = config.load(site).model_dump(mode="json")
    again = tmp_path / "again.toml"
    again.write_text(rest, encoding="utf-8")
    monkeypatch.delenv("OPENPACS_STORESCP__PORT")
    monkeypatch.delenv("OPENPACS_HTTP__PORT")
    assert config.load(again).model_dump(mode="json") == effective


def test_config_show_without_a_file_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("config", "show", env=WIDE)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# from defaults (no openpacs.toml found)")
    assert tomllib.loads(result.stdout)["storescp"]["port"] == 11112


def test_config_show_picks_up_openpacs_toml_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "openpacs.toml").write_text("[http]\nport = 8042\n", encoding="utf-8")
    result = invoke("config", "show", env=WIDE)
    assert result.exit_code == 0, result.output
    assert "openpacs.toml" in result.stdout.splitlines()[0]
    assert tomllib.loads(result.stdout)["http"]["port"] == 8042


@pytest.mark.parametrize(
    ("content", "key"),
    [
        ('[storescp]\nae_title = "A_TITLE_THAT_IS_TOO_LONG"\n', "storescp.ae_title"),
        ("[storescp]\nport = 70000\n", "storescp.port"),
        ('[storage]\nroot_dir = "x"\n', "storage.root_dir"),
    ],
)
def test_bad_config_file_exits_2_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, key: str
) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text(content, encoding="utf-8")
    result = invoke("config", "show", "--config", str(bad), env=WIDE)
    assert result.exit_code == 2
    assert key in result.stderr
    assert "invalid configuration" in result.stderr
    assert result.stdout == ""


def test_bad_environment_value_exits_2_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENPACS_STORAGE__DUPLICATES", "sometimes")
    result = invoke("config", "show", env=WIDE)
    assert result.exit_code == 2
    assert "storage.duplicates" in result.stderr


def test_missing_config_file_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("config", "show", "--config", str(tmp_path / "nope.toml"), env=WIDE)
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


@pytest.mark.parametrize("columns", [None, "250"], ids=["piped", "wide-terminal"])
def test_config_default_is_the_shipped_openpacs_toml(columns: str | None) -> None:
    # The documented way to regenerate the file: `openpacs config default > openpacs.toml`.
    result = invoke("config", "default", env=None if columns is None else {"COLUMNS": columns})
    assert result.exit_code == 0, result.output
    assert result.stdout == (REPO / "openpacs.toml").read_text(encoding="utf-8")


def test_config_default_content_is_the_shipped_openpacs_toml() -> None:
    # What is printed, once the terminal is wide enough not to wrap anything.
    result = invoke("config", "default", env={"COLUMNS": "1000"})
    assert result.exit_code == 0, result.output
    assert result.stdout == (REPO / "openpacs.toml").read_text(encoding="utf-8")


def test_config_show_redirected_to_a_file_is_valid_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("config", "show")  # not a terminal: as with `openpacs config show > f.toml`
    assert result.exit_code == 0, result.output
    assert tomllib.loads(result.stdout)["storage"]["layout"].endswith("{SOPInstanceUID}.dcm")


# --- import ----------------------------------------------------------------------------------


def test_import_reports_stored_duplicates_and_rejected(
    cli_settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "incoming"
    series = ct_series(folder / "series", 4, rows=16, columns=16)
    (folder / "readme.txt").write_text("not an image", encoding="utf-8")
    shutil.copyfile(sample("DICOMDIR"), folder / "DICOMDIR")
    (folder / "zz-copy").mkdir()
    shutil.copyfile(series[0], folder / "zz-copy" / series[0].name)

    result = invoke("import", "incoming", env=WIDE)

    assert result.exit_code == 1, result.output
    assert summary(result.stdout) == {"stored": 4, "duplicates": 1, "rejected": 2}, result.stdout
    rows = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in result.stdout.splitlines()
        if line.count("│") == 3
    }
    assert rows.keys() == {"incoming/readme.txt", "incoming/DICOMDIR"}
    assert rows["incoming/readme.txt"].startswith("not a DICOM file")
    assert "DICOMDIR" in rows["incoming/DICOMDIR"] and "skipped" in rows["incoming/DICOMDIR"]

    counts = counts_of(cli_settings)
    assert (counts.patients, counts.studies, counts.series, counts.instances) == (1, 1, 1, 4)
    assert counts.stored_bytes == sum(path.stat().st_size for path in series)
    assert not (tmp_path / "openpacs.toml").exists() and not (tmp_path / "data").exists()


def test_import_of_good_files_exits_0_and_again_finds_duplicates(
    cli_settings: Settings, tmp_path: Path
) -> None:
    series = ct_series(tmp_path / "ct", 3, rows=16, columns=16)
    single = tmp_path / "CT_small.dcm"
    shutil.copyfile(sample("CT_small.dcm"), single)

    first = invoke("import", str(tmp_path / "ct"), str(single), env=WIDE)
    assert first.exit_code == 0, first.output
    assert summary(first.stdout) == {"stored": 4, "duplicates": 0, "rejected": 0}
    assert "reason" not in first.stdout  # no table of rejected files

    second = invoke("import", str(tmp_path / "ct"), env=WIDE)
    assert second.exit_code == 0, second.output
    assert summary(second.stdout) == {"stored": 0, "duplicates": 3, "rejected": 0}

    counts = counts_of(cli_settings)
    assert (counts.patients, counts.studies, counts.series, counts.instances) == (2, 2, 2, 4)
    assert counts.stored_bytes == sum(p.stat().st_size for p in [*series, single])


def test_import_of_a_missing_path_exits_2(cli_settings: Settings, tmp_path: Path) -> None:
    result = invoke("import", str(tmp_path / "nowhere"), env=WIDE)
    assert result.exit_code == 2
    assert "nowhere" in result.output and "does not exist" in result.output


def test_rejected_file_names_are_shown_as_they_are(cli_settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "scan [copy].txt").write_text("not an image", encoding="utf-8")
    result = invoke("import", "in", env=WIDE)
    assert result.exit_code == 1
    assert "in/scan [copy].txt" in result.stdout


# --- reindex ---------------------------------------------------------------------------------


def lose_index(database_url: str) -> None:
    """What an operator's accident looks like: the SQLite file deleted, the tables dropped."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database
        for suffix in ("", "-wal", "-shm"):
            Path(url.database + suffix).unlink(missing_ok=True)
        return
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            for table in inspect(conn).get_table_names():
                conn.exec_driver_sql(f'DROP TABLE "{table}" CASCADE')
    finally:
        engine.dispose()


def test_reindex_yes_rebuilds_a_lost_index(
    cli_settings: Settings, tmp_path: Path, database_url: str
) -> None:
    ct_series(tmp_path / "in" / "ct", 3, rows=16, columns=16)
    shutil.copyfile(sample("MR_small.dcm"), tmp_path / "in" / "MR_small.dcm")
    assert invoke("import", "in", env=WIDE).exit_code == 0
    before = counts_of(cli_settings)
    assert (before.patients, before.studies, before.series, before.instances) == (2, 2, 2, 4)
    (cli_settings.storage.root / "stray.txt").write_text("not dicom", encoding="utf-8")

    lose_index(database_url)
    result = invoke("reindex", "--yes", env=WIDE)

    assert result.exit_code == 0, result.output
    assert "indexed 4 files; skipped 1" in result.stdout
    assert "skipped stray.txt: " in result.stdout
    assert counts_of(cli_settings) == before


def test_reindex_asks_and_no_changes_nothing(cli_settings: Settings, tmp_path: Path) -> None:
    ct_series(tmp_path / "in", 2, rows=16, columns=16)
    assert invoke("import", "in", env=WIDE).exit_code == 0
    before = counts_of(cli_settings)
    # A file put into storage by hand: a rebuild would index it; refusing must not.
    extra = ct_series(tmp_path / "more", 1, rows=16, columns=16, seed=7)[0]
    shutil.copyfile(extra, cli_settings.storage.root / "by-hand.dcm")

    result = invoke("reindex", input="n\n", env=WIDE)

    assert result.exit_code == 1
    assert "Empty the index at" in result.stdout
    assert str(cli_settings.storage.root) in result.stdout
    assert "Aborted" in result.output
    assert "indexed" not in result.stdout
    assert counts_of(cli_settings) == before

    accepted = invoke("reindex", input="y\n", env=WIDE)
    assert accepted.exit_code == 0, accepted.output
    assert "indexed 3 files; skipped 0" in accepted.stdout
    assert counts_of(cli_settings).instances == before.instances + 1


# --- echo ------------------------------------------------------------------------------------


@pytest.fixture
def store_scp(tmp_path: Path, sqlite_url: str) -> Iterator[Settings]:
    """A Store SCP in this process on a free port (echo needs no index beyond SQLite)."""
    settings = make_settings(tmp_path, sqlite_url)
    core = open_core(settings)
    listener = make_store_listener(settings.storescp, core.archive)
    listener.start()
    try:
        yield settings
    finally:
        listener.stop(grace=2)
        core.close()


def test_echo_a_running_store_scp(store_scp: Settings) -> None:
    peer = f"{store_scp.storescp.ae_title}@127.0.0.1:{store_scp.storescp.port}"
    result = invoke("echo", peer, "--timeout", "5")
    assert result.exit_code == 0, result.output
    assert re.fullmatch(rf"C-ECHO {re.escape(peer)}: success in \d+\.\d ms\n", result.stdout)


def test_echo_with_the_wrong_called_ae_is_rejected(store_scp: Settings) -> None:
    result = invoke("echo", f"NOTTHEAE@127.0.0.1:{store_scp.storescp.port}", "--timeout", "5")
    assert result.exit_code == 1
    assert "rejected the association permanently: called AE title not recognised" in flat(
        result.stderr
    )


def test_echo_a_closed_port_exits_1() -> None:
    port = free_port()  # nothing listens there
    result = invoke("echo", f"STORESCP@127.0.0.1:{port}", "--timeout", "5")
    assert result.exit_code == 1
    assert f"cannot connect to STORESCP@127.0.0.1:{port}: Connection refused" in flat(result.stderr)
    assert "check the host, port" in flat(result.stderr)
    assert result.stdout == ""


@pytest.mark.parametrize("peer", ["nonsense", "STORESCP@127.0.0.1", "@host:104", "AE@host:0"])
def test_echo_malformed_peer_exits_1_naming_the_form(peer: str) -> None:
    result = invoke("echo", peer)
    assert result.exit_code == 1
    message = flat(result.stderr)
    assert repr(peer) in message
    assert "AE@host:port" in message or "out of range" in message


def test_echo_an_unknown_host_exits_1_with_a_message() -> None:
    result = invoke("echo", "STORESCP@nosuchhost.invalid:104", "--timeout", "5")
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "nosuchhost.invalid" in flat(result.stderr)


# --- send ------------------------------------------------------------------------------------


def send_summary(output: str) -> dict[str, int]:
    found = {}
    for label in ("sent", "sent with warnings", "failed"):
        match = re.search(rf"^\s*{re.escape(label)}\s+(\d+)\s*$", output, re.MULTILINE)
        assert match, f"no {label!r} line in:\n{output}"
        found[label] = int(match[1])
    return found


def dataset_of(path: Path) -> bytes:
    with path.open("rb") as fh:
        start, _ = dataset_start(fh)
        fh.seek(start)
        return fh.read()


@pytest.mark.peer
def test_send_a_stored_study_and_local_files_by_node_name(
    cli_settings: Settings, tmp_path: Path
) -> None:
    stored = ct_series(tmp_path / "stored", 3, rows=16, columns=16, seed=1)
    loose = ct_series(tmp_path / "loose", 2, rows=16, columns=16, seed=2, patient_id="LOOSE")
    assert invoke("import", str(tmp_path / "stored")).exit_code == 0
    study_uid = str(dcmread(stored[0], stop_before_pixels=True).StudyInstanceUID)
    with StoreScp(tmp_path / "out", "+B") as scp:
        core = open_core(cli_settings)
        with core.writing() as session:
            spec = NodeSettings(name="dest", ae_title=scp.ae_title, host="127.0.0.1", port=scp.port)
            nodes.create(session, spec)
        core.close()
        result = invoke("send", "dest", study_uid, str(tmp_path / "loose"), env=WIDE)
        received = scp.received()
    assert result.exit_code == 0, result.output
    assert send_summary(result.stdout) == {"sent": 5, "sent with warnings": 0, "failed": 0}
    sent = {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in [*stored, *loose]}
    assert received.keys() == sent.keys()
    for uid, path in sent.items():
        assert dataset_of(received[uid]) == dataset_of(path)


@pytest.mark.peer
def test_send_files_to_an_address_names_what_failed(tmp_path: Path) -> None:
    folder = tmp_path / "files"
    series = ct_series(folder, 2, rows=16, columns=16)
    (folder / "notes.txt").write_text("not an image", encoding="utf-8")
    with StoreScp(tmp_path / "out") as scp:
        result = invoke("send", f"{scp.ae_title}@127.0.0.1:{scp.port}", str(folder), env=WIDE)
        received = scp.received()
    assert result.exit_code == 1, result.output
    assert send_summary(result.stdout) == {"sent": 2, "sent with warnings": 0, "failed": 1}
    assert "notes.txt" in result.stdout and "not a DICOM file" in result.stdout
    assert len(received) == len(series)


def test_send_to_a_closed_port_exits_1_saying_why(tmp_path: Path) -> None:
    series = ct_series(tmp_path / "files", 1, rows=16, columns=16)
    result = invoke("send", f"DEST@127.0.0.1:{free_port()}", str(series[0]), "--timeout", "5")
    assert result.exit_code == 1
    message = flat(result.stderr)
    assert message.startswith("nothing sent: ") and "refused" in message.lower(), message


def test_send_unknowns_exit_with_the_fix(cli_settings: Settings, tmp_path: Path) -> None:
    result = invoke("send", "nowhere", str(tmp_path))
    assert result.exit_code == 1
    assert "no node named 'nowhere'" in flat(result.stderr)
    assert "AE@host:port" in flat(result.stderr)

    result = invoke("send", "DEST@127.0.0.1:104", "1.2.3.4")
    assert result.exit_code == 1
    assert "not stored here: 1.2.3.4" in flat(result.stderr)

    result = invoke("send", "DEST@127.0.0.1:104", "no-such-file")
    assert result.exit_code == 2
    assert "neither a file or folder nor a study UID" in flat(result.stderr)


# --- query -----------------------------------------------------------------------------------


@pytest.fixture
def qr_scp(tmp_path: Path, sqlite_url: str) -> Iterator[Settings]:
    """Our Q/R SCP in this process on a free port, holding two studies of two patients."""
    settings = make_settings(tmp_path, sqlite_url)
    core = open_core(settings)
    ct_series(tmp_path / "a", 2, rows=16, columns=16, seed=1, patient_name="DOE^JANE")
    ct_series(
        tmp_path / "b",
        1,
        rows=16,
        columns=16,
        seed=2,
        patient_name="ROE^RICHARD",
        patient_id="ROE1",
    )
    import_paths(core.archive, [*sorted((tmp_path / "a").iterdir()), *(tmp_path / "b").iterdir()])
    listener = make_qr_listener(settings.qrscp, core.sessions, core.storage, lambda _ae: None)
    listener.start()
    try:
        yield settings
    finally:
        listener.stop(grace=2)
        core.close()


def table_rows(output: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in output.splitlines()
        if line.count("│") > 2
    ]


def test_query_studies_by_a_wildcard_name(qr_scp: Settings) -> None:
    peer = f"{qr_scp.qrscp.ae_title}@127.0.0.1:{qr_scp.qrscp.port}"
    result = invoke("query", peer, "-k", "PatientName=DOE*", "-k", "AccessionNumber", env=WIDE)
    assert result.exit_code == 0, result.output
    assert "1 study answer(s)" in result.stdout
    [row] = table_rows(result.stdout)
    assert row[0] == "DOE^JANE" and row[5] == "2"  # NumberOfStudyRelatedInstances


def test_query_series_of_a_study_and_a_refused_query(qr_scp: Settings) -> None:
    peer = f"{qr_scp.qrscp.ae_title}@127.0.0.1:{qr_scp.qrscp.port}"
    studies = invoke("query", peer, "-k", "PatientID=ROE1", env=WIDE)
    [study] = [row[-1] for row in table_rows(studies.stdout)]
    result = invoke("query", peer, "-l", "series", "-k", f"StudyInstanceUID={study}", env=WIDE)
    assert result.exit_code == 0, result.output
    [row] = table_rows(result.stdout)
    assert (row[0], row[1], row[4]) == (study, "CT", "1")

    # Study root is hierarchical: a series query names its study, and the node says so.
    result = invoke("query", peer, "--level", "series", env=WIDE)
    assert result.exit_code == 1
    assert "status 0xA900; the node says: " in flat(result.stderr)


def test_query_mistakes_exit_2_naming_the_fix(qr_scp: Settings) -> None:
    peer = f"{qr_scp.qrscp.ae_title}@127.0.0.1:{qr_scp.qrscp.port}"
    result = invoke("query", peer, "-k", "PatientNom=X")
    assert result.exit_code == 2 and "not a DICOM keyword" in flat(result.stderr)
    result = invoke("query", peer, "--level", "FRAME")
    assert result.exit_code == 2 and "PATIENT, STUDY, SERIES, IMAGE" in flat(result.stderr)


def test_query_a_closed_port_exits_1() -> None:
    result = invoke("query", f"QR@127.0.0.1:{free_port()}", "--timeout", "5")
    assert result.exit_code == 1
    assert "check the host, port" in flat(result.stderr)


# --- retrieve --------------------------------------------------------------------------------


def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """This archive, configured through the environment, beside the node's own folders."""
    monkeypatch.setenv("OPENPACS_STORAGE__ROOT", str(tmp_path / "here" / "storage"))
    monkeypatch.setenv("OPENPACS_DATABASE__URL", f"sqlite:///{tmp_path / 'here.db'}")
    monkeypatch.setenv("OPENPACS_LOGGING__DIR", str(tmp_path / "here" / "logs"))
    return config.load()


def test_retrieve_with_get_stores_a_study_here(
    qr_scp: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    peer = f"{qr_scp.qrscp.ae_title}@127.0.0.1:{qr_scp.qrscp.port}"
    studies = invoke("query", peer, "-k", "PatientName=DOE*", env=WIDE)
    [study] = [row[-1] for row in table_rows(studies.stdout)]
    settings = here(tmp_path, monkeypatch)
    result = invoke("retrieve", peer, study, "--get", env=WIDE)
    assert result.exit_code == 0, result.output
    assert re.search(r"^\s*retrieved\s+2\s*$", result.stdout, re.MULTILINE), result.stdout
    assert counts_of(settings).instances == 2


def test_retrieve_says_what_failed_and_what_to_fix(
    qr_scp: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    peer = f"{qr_scp.qrscp.ae_title}@127.0.0.1:{qr_scp.qrscp.port}"
    here(tmp_path, monkeypatch)
    # The node knows no move destinations at all.
    result = invoke("retrieve", peer, "1.2.3", "--to", "ELSEWHERE", env=WIDE)
    assert result.exit_code == 1
    assert "status 0xA801" in flat(result.stderr)
    result = invoke("retrieve", peer, "--series", "1.2.3.4", env=WIDE)
    assert result.exit_code == 2 and "patient ID or study UIDs" in flat(result.stderr)
    result = invoke("retrieve", peer, "1.2.3", "--get", "--to", "X", env=WIDE)
    assert result.exit_code == 2 and "C-MOVE only" in flat(result.stderr)
