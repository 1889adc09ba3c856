"""recordings: the YouTube videos seen and the matches proposed to sessions

Revision ID: 0006_recordings
Revises: 0005_group_block
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_recordings"
down_revision = "0005_group_block"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "videos",
        sa.Column("video_id", sa.String(length=40), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("published_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("video_id"),
    )
    op.create_index("ix_videos_published_at", "videos", ["published_at"])
    op.create_table(
        "recording_matches",
        sa.Column("session_id", sa.String(length=80), nullable=False),
        sa.Column("video_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("found_at", sa.DateTime(), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("decided_by", sa.Text(), nullable=True),
        sa.Column("applied_url", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("session_id", "video_id"),
    )
    op.create_index("ix_recording_matches_status", "recording_matches", ["status"])


def downgrade() -> None:
    op.drop_index("ix_recording_matches_status", table_name="recording_matches")
    op.drop_table("recording_matches")
    op.drop_index("ix_videos_published_at", table_name="videos")
    op.drop_table("videos")
