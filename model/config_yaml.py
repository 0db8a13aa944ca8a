"""The running configuration written back as YAML, every secret shown as ``<secret>``, as Prometheus's
``/api/v1/status/config`` writes its own (``config.Config.String()``, where ``Secret`` fields marshal to
``<secret>``).

Redacted: every ``SecretStr`` field (``password``, ``credentials``, ``bearer_token``, ``redis_password``, the
web config's users), the inline ``tls_config.key`` (a Secret in Prometheus), and the password of any URL
written with user-info (``http://user:<secret>@host``, as Prometheus's ``config.URL`` marshals). Durations
are written as Prometheus writes them (``15s``, ``1h30m``), sizes as Go's ``units.Base2Bytes`` (``512MiB``);
unset (None) and excluded fields are left out, keys keep the models' order and their YAML names.
"""

from __future__ import annotations

import enum
import types
import typing
from typing import Annotated, Any, Union

import yaml
from pydantic import BaseModel, SecretStr

from shardmon.model.addresses import redacted_url
from shardmon.model.sd_config import RefreshInterval
from shardmon.model.units import duration_from_yaml, format_duration_ms, format_size_bytes, size_from_yaml

#: What Prometheus writes in place of a secret.
SECRET = "<secret>"

#: The validators of the int fields that hold a duration in milliseconds.
_DURATION_VALIDATORS = frozenset({duration_from_yaml, typing.get_args(RefreshInterval)[1].func})

#: Plain-string fields that hold a secret: (model class name, field name).
_SECRET_STR_FIELDS = frozenset({("TLSConfig", "key")})


def config_yaml(config: BaseModel) -> str:
    """``config`` (any configuration model, usually the whole ``Config``) as YAML, secrets redacted."""
    return yaml.safe_dump(redacted(config), sort_keys=False, allow_unicode=True, default_flow_style=False, width=1000)


def redacted(model: BaseModel) -> dict[str, Any]:
    """``model`` as plain YAML-ready data: durations and sizes as text, secrets as ``<secret>``."""
    out: dict[str, Any] = {}
    for name, field in type(model).model_fields.items():
        if field.exclude:
            continue
        value = getattr(model, name)
        if value is None:
            continue
        key = field.serialization_alias or field.alias or name
        if (type(model).__name__, name) in _SECRET_STR_FIELDS and value:
            out[key] = SECRET
            continue
        out[key] = _plain(value, field.annotation, tuple(field.metadata))
    if "job_name" in out:  # first, as Prometheus writes a scrape config (the HTTP client fields are inherited)
        out = {"job_name": out.pop("job_name"), **out}
    return out


def _plain(value: Any, annotation: Any, metadata: tuple = ()) -> Any:
    if isinstance(value, SecretStr):
        return SECRET
    if isinstance(value, BaseModel):
        return redacted(value)
    kind = _kind(annotation, metadata)
    if kind == "duration" and isinstance(value, int):
        return format_duration_ms(value)
    if kind == "size" and isinstance(value, int):
        return format_size_bytes(value)
    if isinstance(value, (list, tuple)):
        item = _element(annotation, 0)
        return [_plain(v, item) for v in value]
    if isinstance(value, dict):
        item = _element(annotation, 1)
        return {str(k): _plain(v, item) for k, v in value.items()}
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, enum.Enum):
        return _plain(value.value, Any)
    if isinstance(value, (bool, int, float)):
        return value
    return str(value)


def redact_url(text: str) -> str:
    """``text`` with the password of a URL's user-info replaced by ``<secret>``; other text unchanged."""
    return redacted_url(text, SECRET)


def _members(annotation: Any) -> list[tuple[Any, tuple]]:
    """The concrete types an annotation may hold (Optional and unions opened), each with its metadata."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        base, *meta = typing.get_args(annotation)
        return [(t, m + tuple(meta)) for t, m in _members(base)]
    if origin in (Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) if arg is not type(None) for m in _members(arg)]
    return [(annotation, ())]


def _kind(annotation: Any, metadata: tuple) -> str:
    """``duration``, ``size`` or ``""``: what a field's validators say its int holds."""
    candidates = [metadata] + [m for _, m in _members(annotation)]
    for meta in candidates:
        for item in meta:
            func = getattr(item, "func", None)
            if func in _DURATION_VALIDATORS:
                return "duration"
            if func is size_from_yaml:
                return "size"
    return ""


def _element(annotation: Any, index: int) -> Any:
    """The element type of a list (``index`` 0) or the value type of a dict (1), else Any."""
    for t, _ in _members(annotation):
        args = typing.get_args(t)
        if typing.get_origin(t) in (list, tuple, set, frozenset) and args:
            return args[0]
        if typing.get_origin(t) is dict and len(args) == 2:
            return args[index] if index < 2 else Any
    return Any


__all__ = ["SECRET", "config_yaml", "redact_url", "redacted"]
