"""All registry queries. Functions flush; the caller commits."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload

from seqserve.shared.db.base import utcnow
from seqserve.shared.db.models import Model, ModelAlias, ModelVersion


def get_model(session: Session, name: str) -> Model | None:
    return session.scalar(select(Model).where(Model.name == name))


def list_models(session: Session) -> Sequence[Model]:
    query = (
        select(Model)
        .options(selectinload(Model.versions), selectinload(Model.aliases).selectinload(ModelAlias.version))
        .order_by(Model.name)
    )
    return session.scalars(query).all()


def get_or_create_model(session: Session, name: str, task: str) -> Model:
    model = get_model(session, name)
    if model is None:
        model = Model(name=name, task=task, description="")
        session.add(model)
        session.flush()
    return model


def lock_model(session: Session, model_id: int) -> Model:
    """Lock the model row so that concurrent registrations number versions one at a time."""
    return session.scalars(select(Model).where(Model.id == model_id).with_for_update()).one()


def next_version_number(session: Session, model_id: int) -> int:
    current = session.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model_id))
    return (current or 0) + 1


def add_version(session: Session, version: ModelVersion) -> ModelVersion:
    session.add(version)
    session.flush()
    return version


def get_version(session: Session, model_id: int, number: int) -> ModelVersion | None:
    return session.scalar(
        select(ModelVersion).where(ModelVersion.model_id == model_id, ModelVersion.version == number)
    )


def get_version_by_id(session: Session, version_id: int) -> ModelVersion | None:
    return session.get(ModelVersion, version_id)


def get_alias(session: Session, model_id: int, alias: str) -> ModelAlias | None:
    return session.get(ModelAlias, (model_id, alias))


def set_alias(session: Session, model_id: int, alias: str, version_id: int) -> None:
    """Point `alias` at a version in one statement (an upsert), so concurrent moves and
    first-time creations never fail and readers see either the old or the new version."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(ModelAlias).values(model_id=model_id, alias=alias, version_id=version_id, updated_at=utcnow())
    statement = statement.on_conflict_do_update(
        index_elements=[ModelAlias.model_id, ModelAlias.alias],
        set_={"version_id": statement.excluded.version_id, "updated_at": statement.excluded.updated_at},
    )
    session.execute(statement)
    session.expire_all()


def latest_version(session: Session, model_name: str) -> ModelVersion | None:
    query = (select(ModelVersion).join(Model).where(Model.name == model_name)
             .order_by(ModelVersion.version.desc()).limit(1))
    return session.scalar(query)
