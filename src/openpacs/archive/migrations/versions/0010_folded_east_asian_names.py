"""folded names: an East Asian name group also as one word (张三 finds 张^三)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 17:25:00
"""

import re
import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, key column, name column, folded column)
FOLDED = (
    ("patient", "pk", "patient_name", "patient_name_folded"),
    ("study", "pk", "referring_physician_name", "referring_physician_folded"),
    ("worklist_item", "id", "patient_name", "patient_name_folded"),
    ("worklist_item", "id", "referring_physician_name", "referring_physician_folded"),
    ("worklist_item", "id", "performing_physician_name", "performing_physician_folded"),
)
_SEPARATORS = re.compile(r"[\s^=,\\]+")


def _words(name: str) -> tuple[str, list[str]]:
    decomposed = unicodedata.normalize("NFKD", name.strip("\0 "))
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return plain, [word for word in _SEPARATORS.split(plain) if word]


def _fold(name: str, joined: bool) -> str | None:
    # A frozen copy of openpacs.dicom.values.fold_name as of this revision (joined=False: as of
    # 0003): a migration must keep doing what it did when it was written.
    if not name.strip("\0 "):
        return None
    plain, words = _words(name)
    if joined:
        for group in plain.split("="):
            parts = [word for word in _SEPARATORS.split(group) if word]
            if len(parts) > 1 and any(unicodedata.east_asian_width(c) in "WF" for c in group):
                words.append("".join(parts))
    return " " + " ".join(words) + " " if words else None


def _refold(joined: bool) -> None:
    connection = op.get_bind()
    for table, key, name, folded in FOLDED:
        rows = connection.execute(
            sa.text(f"SELECT {key}, {name} FROM {table} WHERE {name} IS NOT NULL")
        ).all()
        statement = sa.text(f"UPDATE {table} SET {folded} = :folded WHERE {key} = :key")
        for row_key, value in rows:
            # Only names with wide characters change; the rest are left as they are.
            if any(unicodedata.east_asian_width(c) in "WF" for c in value):
                connection.execute(statement, {"folded": _fold(value, joined), "key": row_key})


def upgrade() -> None:
    _refold(joined=True)


def downgrade() -> None:
    _refold(joined=False)
