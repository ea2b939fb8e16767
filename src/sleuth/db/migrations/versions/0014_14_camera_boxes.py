"""wildlife camera boxes (repeat detection elimination in async jobs)

Revision ID: 0014
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wildlife_camera_boxes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("team_id", sa.String(length=36), nullable=False),
        sa.Column("camera", sa.String(length=420), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("boxes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("wildlife_camera_boxes", schema=None) as batch_op:
        batch_op.create_index("ix_wildlife_camera_boxes_camera", ["team_id", "camera", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_wildlife_camera_boxes_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("wildlife_camera_boxes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wildlife_camera_boxes_expires_at"))
        batch_op.drop_index("ix_wildlife_camera_boxes_camera")
    op.drop_table("wildlife_camera_boxes")
