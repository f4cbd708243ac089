"""folded person names for accent- and case-insensitive fuzzy matching

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 11:35:00
"""

import re
import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, name column, folded column)
FOLDED = (
    ("patient", "patient_name", "patient_name_folded"),
    ("study", "referring_physician_name", "referring_physician_folded"),
)
_SEPARATORS = re.compile(r"[\s^=,\\]+")


def _fold(name: str | None) -> str | None:
    # A frozen copy of openpacs.dicom.values.fold_name as of this revision: a migration must
    # keep doing what it did when it was written.
    if not name or not name.strip("\0 "):
        return None
    decomposed = unicodedata.normalize("NFKD", name.strip("\0 "))
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    words = [word for word in _SEPARATORS.split(plain) if word]
    return " " + " ".join(words) + " " if words else None


def upgrade() -> None:
    for table, _, folded in FOLDED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column(folded, sa.String(length=400), nullable=True))
    connection = op.get_bind()
    for table, name, folded in FOLDED:
        rows = connection.execute(
            sa.text(f"SELECT pk, {name} FROM {table} WHERE {name} IS NOT NULL")
        ).all()
        statement = sa.text(f"UPDATE {table} SET {folded} = :folded WHERE pk = :pk")
        for pk, value in rows:
            connection.execute(statement, {"folded": _fold(value), "pk": pk})


def downgrade() -> None:
    for table, _, folded in FOLDED:
        with op.batch_alter_table(table) as batch:
            batch.drop_column(folded)
