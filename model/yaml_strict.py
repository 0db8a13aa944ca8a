"""YAML as Go's ``yaml.UnmarshalStrict`` reads it for Prometheus: a mapping that gives a key twice is an error,
not the last value silently winning (PyYAML's default). The configuration file and the web config use it."""

from __future__ import annotations

import yaml

_BASE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class StrictSafeLoader(_BASE):  # type: ignore[misc, valid-type]
    """A safe loader (libyaml's parser when PyYAML has it) refusing duplicate keys: ``ConstructorError`` naming
    the key and the line it was first given on."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor`: merged keys may be overridden by the mapping's own, as in Go
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: PyYAML's own constructor says so
                break
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"field {key} already set (first at line {first + 1}), as Go's yaml.UnmarshalStrict refuses it", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)
