"""worklist items indexed by start date first, for the modality's "today" query

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 15:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # (status, start_date, modality) could only be scanned whole: a query leaves the status
    # as NOT IN (COMPLETED, DISCONTINUED), so the date never narrowed it down.
    with op.batch_alter_table("worklist_item", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_worklist_item_status_start_date_modality"))
        batch_op.create_index(
            batch_op.f("ix_worklist_item_start_date_modality_status"),
            ["start_date", "modality", "status"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("worklist_item", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_worklist_item_start_date_modality_status"))
        batch_op.create_index(
            batch_op.f("ix_worklist_item_status_start_date_modality"),
            ["status", "start_date", "modality"],
            unique=False,
        )
