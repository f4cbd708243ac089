"""node.may_print: the Print SCP admits registered nodes by their own permission

Until now a node with `store` could print; existing nodes keep what they could do (may_print
starts as may_store), new ones are given `print` explicitly.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 17:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("node", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("may_print", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute("UPDATE node SET may_print = may_store")


def downgrade() -> None:
    with op.batch_alter_table("node", schema=None) as batch_op:
        batch_op.drop_column("may_print")
