"""``relabel_configs`` and ``metric_relabel_configs`` entries, checked as Prometheus 2.x checks them.

:class:`RelabelConfig` has Prometheus's fields, defaults and ``Validate()`` rules; every error names
the field it is about, e.g. ``scrape_configs[0].relabel_configs[1].modulus: relabel configuration for
hashmod requires non-zero modulus``. ``ingest/relabel.py`` applies the configs.

Regexes are RE2, as Prometheus's (Go's ``regexp``), compiled by :mod:`shardmon.model.regex` as Prometheus does,
``^(?:REGEX)$``: the ``regex`` field is checked when the config is loaded, and an expression RE2 rejects
(look-arounds, back-references, possessive repeats, ``\\Z``...) is an error under the field's path.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from shardmon.model.labels import is_valid_label_name
from shardmon.model.regex import Regex, compile_regex

ACTIONS = (
    "replace", "keep", "drop", "keepequal", "dropequal", "hashmod",
    "labelmap", "labeldrop", "labelkeep", "lowercase", "uppercase",
)

DEFAULT_SEPARATOR = ";"
DEFAULT_REGEX = "(.*)"
DEFAULT_REPLACEMENT = "$1"
_UINT64_MAX = (1 << 64) - 1

# Prometheus's ``relabelTarget`` exactly (RE2 matches its nested repeats in linear time).
_RELABEL_TARGET = compile_regex(r"(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+")


def is_relabel_target(template: str) -> bool:
    """Whether ``template`` may name a label once expanded (Prometheus's ``relabelTarget``)."""
    return _RELABEL_TARGET.fullmatch(template)


# --- the model ----------------------------------------------------------------------------------------

def _label_name(name: str) -> str:
    if not is_valid_label_name(name):
        raise ValueError(f"{name!r} is not a valid label name")
    return name


def _modulus(value: Any) -> int:
    # As Go's YAML decoding into uint64: integers (and floats without a fraction), nothing else.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"cannot unmarshal {value!r} into uint64")
    if not 0 <= value <= _UINT64_MAX:
        raise ValueError(f"cannot unmarshal {value!r} into uint64 (0 to 2^64-1)")
    return value


#: A field left empty (``regex:``) takes Go's zero value, as Prometheus's YAML decoding gives it.
_ZERO = {"separator": "", "regex": "", "modulus": 0, "target_label": "", "replacement": "", "action": ""}


class RelabelConfig(BaseModel):
    """One relabeling step, with Prometheus's field names, defaults and checks."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    source_labels: list[Annotated[str, AfterValidator(_label_name)]] = Field(
        default_factory=list, description="Labels whose values are joined with the separator and matched."
    )
    separator: str = Field(DEFAULT_SEPARATOR, description="Placed between the source label values.")
    regex: str = Field(DEFAULT_REGEX, description="RE2 regex, anchored at both ends, matched with the joined value.")
    modulus: Annotated[int, BeforeValidator(_modulus)] = Field(0, description="Modulus of the hash (hashmod).")
    target_label: str = Field("", description="Label written by replace, hashmod, lowercase and uppercase.")
    replacement: str = Field(DEFAULT_REPLACEMENT, description="Value written by replace; may refer to $1, ${name}.")
    action: str = Field("replace", description="One of " + ", ".join(ACTIONS) + ".")

    @model_validator(mode="before")
    @classmethod
    def _nulls(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(v is None for v in data.values()):
            # An empty source_labels is Go's nil slice: as if not given at all.
            data = {k: _ZERO.get(k, v) if v is None else v for k, v in data.items()
                    if k != "source_labels" or v is not None}
        return data

    @field_validator("action")
    @classmethod
    def _action(cls, v: str) -> str:
        if v == "":
            return v  # Reported by the checks below, as Prometheus does.
        if v.lower() not in ACTIONS:
            raise ValueError(f"unknown relabel action {v!r}")
        return v.lower()

    @field_validator("regex")
    @classmethod
    def _regex(cls, v: str) -> str:
        compile_regex(v)  # RegexError, a ValueError: reported under the field's path
        return v

    @model_validator(mode="after")
    def _validate(self) -> RelabelConfig:
        problem = self._problem()
        if problem is not None:
            field, message = problem
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [InitErrorDetails(type=PydanticCustomError("value_error", message), loc=(field,),
                                  input=getattr(self, field))],
            )
        return self

    def _problem(self) -> tuple[str, str] | None:
        """The first problem Prometheus's ``Config.Validate`` reports, as (field, message), or None."""
        a, target = self.action, self.target_label
        if a == "":
            return "action", "relabel action cannot be empty"
        if a == "hashmod" and self.modulus == 0:
            return "modulus", "relabel configuration for hashmod requires non-zero modulus"
        if a in ("replace", "hashmod", "lowercase", "uppercase", "keepequal", "dropequal") and target == "":
            return "target_label", f"relabel configuration for {a} action requires 'target_label' value"
        if a == "replace" and not (is_relabel_target(target) if "$" in target else is_valid_label_name(target)):
            return "target_label", f"{target!r} is invalid 'target_label' for {a} action"
        if a in ("lowercase", "uppercase", "keepequal", "dropequal", "hashmod") and not is_valid_label_name(target):
            return "target_label", f"{target!r} is invalid 'target_label' for {a} action"
        if a in ("lowercase", "uppercase", "keepequal", "dropequal") and self.replacement != DEFAULT_REPLACEMENT:
            return "replacement", f"'replacement' can not be set for {a} action"
        if a == "labelmap" and not is_relabel_target(self.replacement):
            return "replacement", f"{self.replacement!r} is invalid 'replacement' for {a} action"
        if a in ("keepequal", "dropequal"):
            extra = self._first_set(regex="regex" in self.model_fields_set)
            if extra:
                return extra, f"{a} action requires only 'source_labels' and `target_label`, and no other fields"
        if a in ("labeldrop", "labelkeep"):
            extra = self._first_set(source_labels="source_labels" in self.model_fields_set, target_label=target != "")
            if extra:
                return extra, f"{a} action requires only 'regex', and no other fields"
        return None

    def _first_set(self, **checks: bool) -> str | None:
        checks.update(modulus=self.modulus != 0, separator=self.separator != DEFAULT_SEPARATOR,
                      replacement=self.replacement != DEFAULT_REPLACEMENT)
        return next((field for field, is_set in checks.items() if is_set), None)

    @property
    def pattern(self) -> Regex:
        """The compiled, anchored regex."""
        return compile_regex(self.regex)
