"""change history: when status and recording changed, and every field change

Revision ID: 0002_change_history
Revises: 0001_initial
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_change_history"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status_since", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("recording_since", sa.DateTime(), nullable=True))
    # Existing rows: their status and recording were known at least since they were last updated.
    op.execute("UPDATE sessions SET status_since = updated_at")
    op.execute("UPDATE sessions SET recording_since = updated_at WHERE recording_url IS NOT NULL")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_deliveries_status_occurrence", ["status", "occurrence"], unique=False
        )
    op.create_table(
        "session_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("session_id", sa.String(length=80), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.Column("field", sa.String(length=40), nullable=False),
        sa.Column("old_value", sa.Text(), nullable=True),
        sa.Column("new_value", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("session_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_session_changes_session_id"), ["session_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("session_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_session_changes_session_id"))
    op.drop_table("session_changes")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_status_occurrence")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("recording_since")
        batch_op.drop_column("status_since")
