"""What every model of the configuration file shares: the pydantic base class and the label-name check.

:class:`ConfigModel` refuses unknown fields (a Prometheus option Shardmon does not implement is an
error, never silently ignored), is frozen, and reads numbers as text where text is expected, as Go's
YAML decoding of ``prometheus.yml`` does.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from shardmon.model.labels import is_valid_label_name


class ConfigModel(BaseModel):
    """The base of every model of the configuration file."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, coerce_numbers_to_str=True)


def check_label_names(labels: dict[str, str]) -> dict[str, str]:
    """``labels`` if every name is a valid label name; else ValueError naming the first bad one."""
    for name in labels:
        if not is_valid_label_name(name):
            raise ValueError(f"{name!r} is not a valid label name")
    return labels
