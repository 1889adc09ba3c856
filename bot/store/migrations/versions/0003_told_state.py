"""told state: the database's order of sending marks, and a change id in the delivery key

Revision ID: 0003_told_state
Revises: 0002_change_history
"""

from collections import defaultdict

import sqlalchemy as sa
from alembic import op

revision = "0003_told_state"
down_revision = "0002_change_history"
branch_labels = None
depends_on = None

OLD_KEY = ["session_id", "notice", "channel", "occurrence"]
TOLD = ("sent", "uncertain", "sending")


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("marks", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("change", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("mark", sa.Integer(), nullable=True))
        batch_op.drop_constraint("uq_delivery_key", type_="unique")
        batch_op.create_unique_constraint("uq_delivery_key", [*OLD_KEY, "change"])
    _backfill_marks()


def _backfill_marks() -> None:
    """Number what each session's channels were told, in the best order known before marks."""
    conn = op.get_bind()
    rows = conn.execute(
        sa.text(
            "SELECT id, session_id FROM deliveries WHERE status IN ('sent', 'uncertain', 'sending')"
            " ORDER BY session_id, COALESCE(sent_at, updated_at), id"
        )
    ).all()
    counts: dict[str, int] = defaultdict(int)
    marks = []
    for delivery_id, session_id in rows:
        counts[session_id] += 1
        marks.append({"b_id": delivery_id, "b_mark": counts[session_id]})
    if marks:
        conn.execute(sa.text("UPDATE deliveries SET mark = :b_mark WHERE id = :b_id"), marks)
    totals = [{"b_id": sid, "b_marks": n} for sid, n in counts.items()]
    if totals:
        conn.execute(sa.text("UPDATE sessions SET marks = :b_marks WHERE id = :b_id"), totals)


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint("uq_delivery_key", type_="unique")
        batch_op.create_unique_constraint("uq_delivery_key", OLD_KEY)
        batch_op.drop_column("mark")
        batch_op.drop_column("change")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("marks")
