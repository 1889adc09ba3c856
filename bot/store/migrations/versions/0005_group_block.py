"""group block: the content of the group's website (name, about, links, organizers)

Revision ID: 0005_group_block
Revises: 0004_self_settling
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_group_block"
down_revision = "0004_self_settling"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "group_profile",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("about", sa.Text(), nullable=False),
        sa.Column("email_list", sa.Text(), nullable=True),
        sa.Column("x", sa.Text(), nullable=True),
        sa.Column("bluesky", sa.Text(), nullable=True),
        sa.Column("mastodon", sa.Text(), nullable=True),
        sa.Column("youtube", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "group_organizers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("bio", sa.Text(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("photo", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("group_organizers")
    op.drop_table("group_profile")
