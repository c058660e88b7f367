"""`GET /v1/jobs?model=`: the references submission accepts, as a filter."""

from __future__ import annotations

from sqlalchemy.orm import Session

from seqserve.services.api.errors import ApiError
from seqserve.shared.registry.hints import not_found_message
from seqserve.shared.registry.refs import InvalidModelRef, parse_model_filter
from seqserve.shared.registry.service import RegistryError, resolve


def model_filter(session: Session, text: str, kind: str | None) -> tuple[str, int | None]:
    """(model name, version number or None): `name` is every version of the model, `name:N`
    version N, `name@alias` the version the alias points at now (as a new job would run)."""
    try:
        ref = parse_model_filter(text)
    except InvalidModelRef as exc:
        raise ApiError(422, "invalid_model_ref", str(exc), "model") from exc
    if ref.alias is None:
        return ref.name, ref.version
    try:
        return ref.name, resolve(session, ref).version
    except RegistryError as exc:
        raise ApiError(404, "model_not_found", not_found_message(session, str(exc), kind), "model") from exc
