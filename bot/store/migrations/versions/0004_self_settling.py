"""self-settling: a per-delivery reference the channel can look up, and channel state

Revision ID: 0004_self_settling
Revises: 0003_told_state
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_self_settling"
down_revision = "0003_told_state"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reference", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("referenced_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("settle_after", sa.DateTime(), nullable=True))
        batch_op.create_index("ix_deliveries_status_settle", ["status", "settle_after"])
    op.create_table(
        "channel_state",
        sa.Column("channel", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("channel", "name"),
    )


def downgrade() -> None:
    op.drop_table("channel_state")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_status_settle")
        batch_op.drop_column("settle_after")
        batch_op.drop_column("referenced_at")
        batch_op.drop_column("reference")
