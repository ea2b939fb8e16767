"""secure uploads: files stored for a team behind a single-use media_token (issue 16)

Revision ID: 0016
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "secure_uploads",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("team_id", sa.String(length=36), nullable=False),
        sa.Column("filename", sa.String(length=400), nullable=False),
        sa.Column("media_type", sa.String(length=16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("storage_key", sa.String(length=400), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("secure_uploads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_secure_uploads_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_secure_uploads_team_id"), ["team_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("secure_uploads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_secure_uploads_team_id"))
        batch_op.drop_index(batch_op.f("ix_secure_uploads_expires_at"))
    op.drop_table("secure_uploads")
