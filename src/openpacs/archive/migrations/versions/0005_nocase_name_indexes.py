"""person-name group indexes usable by case-insensitive wildcard matching on SQLite

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 14:40:00

SQLite's LIKE folds ASCII case, and can search an index for a LIKE prefix ('SMITH*' → a range)
only when the index uses the NOCASE collation. The name-group indexes of 0001 use BINARY, so a
PatientName wildcard scanned every study (15-25 ms on 10,000 studies) instead of reading the
few matching index entries (well under 1 ms). The indexes keep their names: reflection does not
show a column's collation in an index, so the models (`index=True`) still describe them.

Beware: a later `batch_alter_table` on patient or study rebuilds these indexes from reflection,
i.e. as BINARY; recreate them with NOCASE afterwards (tests/archive/test_query.py checks the
plan). PostgreSQL is left as it was (its case-insensitive matching is ILIKE).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column): the person-name component groups matched case-insensitively.
NAME_GROUPS = (
    ("patient", "patient_name_alphabetic"),
    ("patient", "patient_name_ideographic"),
    ("patient", "patient_name_phonetic"),
    ("study", "referring_physician_alphabetic"),
    ("study", "referring_physician_ideographic"),
)


def _rebuild(collation: str) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, column in NAME_GROUPS:
        name = f"ix_{table}_{column}"
        op.execute(f"DROP INDEX IF EXISTS {name}")
        op.execute(f"CREATE INDEX {name} ON {table} ({column} COLLATE {collation})")


def upgrade() -> None:
    _rebuild("NOCASE")


def downgrade() -> None:
    _rebuild("BINARY")
