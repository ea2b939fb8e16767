"""web app: uploads (what one page upload sent) and reviews (human review actions on wildlife results)

Revision ID: 0018
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("team_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("reference_prefix", sa.String(length=400), nullable=False),
        sa.Column("batch_id", sa.String(length=36), nullable=True),
        sa.Column("deployment", sa.JSON(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_uploads_team_id"), ["team_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_uploads_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_uploads_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "reviews",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("team_id", sa.String(length=36), nullable=False),
        sa.Column("result_id", sa.String(length=36), nullable=False),
        sa.Column("image_index", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("box", sa.Integer(), nullable=True),
        sa.Column("label", sa.String(length=400), nullable=True),
        sa.Column("category", sa.Integer(), nullable=True),
        sa.Column("bbox", sa.JSON(), nullable=True),
        sa.Column("reviewer", sa.String(length=200), nullable=False),
        sa.Column("key_id", sa.String(length=36), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reviews_team_id"), ["team_id"], unique=False)
        batch_op.create_index("ix_reviews_team_result", ["team_id", "result_id", "image_index"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.drop_index("ix_reviews_team_result")
        batch_op.drop_index(batch_op.f("ix_reviews_team_id"))
    op.drop_table("reviews")
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_uploads_expires_at"))
        batch_op.drop_index(batch_op.f("ix_uploads_created_at"))
        batch_op.drop_index(batch_op.f("ix_uploads_team_id"))
    op.drop_table("uploads")
