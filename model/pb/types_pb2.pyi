from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Label(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class Matcher(_message.Message):
    __slots__ = ("type", "name", "value")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        EQ: _ClassVar[Matcher.Type]
        NEQ: _ClassVar[Matcher.Type]
        RE: _ClassVar[Matcher.Type]
        NRE: _ClassVar[Matcher.Type]
    EQ: Matcher.Type
    NEQ: Matcher.Type
    RE: Matcher.Type
    NRE: Matcher.Type
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    type: Matcher.Type
    name: str
    value: str
    def __init__(self, type: _Optional[_Union[Matcher.Type, str]] = ..., name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class SampleColumns(_message.Message):
    __slots__ = ("series_ids", "series_keys", "series_key_ends", "sample_series", "timestamps_ms", "values", "hist_sample_series", "hist_timestamps_ms", "hist_blob", "hist_ends")
    SERIES_IDS_FIELD_NUMBER: _ClassVar[int]
    SERIES_KEYS_FIELD_NUMBER: _ClassVar[int]
    SERIES_KEY_ENDS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_SERIES_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMPS_MS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    HIST_SAMPLE_SERIES_FIELD_NUMBER: _ClassVar[int]
    HIST_TIMESTAMPS_MS_FIELD_NUMBER: _ClassVar[int]
    HIST_BLOB_FIELD_NUMBER: _ClassVar[int]
    HIST_ENDS_FIELD_NUMBER: _ClassVar[int]
    series_ids: bytes
    series_keys: bytes
    series_key_ends: bytes
    sample_series: bytes
    timestamps_ms: bytes
    values: bytes
    hist_sample_series: bytes
    hist_timestamps_ms: bytes
    hist_blob: bytes
    hist_ends: bytes
    def __init__(self, series_ids: _Optional[bytes] = ..., series_keys: _Optional[bytes] = ..., series_key_ends: _Optional[bytes] = ..., sample_series: _Optional[bytes] = ..., timestamps_ms: _Optional[bytes] = ..., values: _Optional[bytes] = ..., hist_sample_series: _Optional[bytes] = ..., hist_timestamps_ms: _Optional[bytes] = ..., hist_blob: _Optional[bytes] = ..., hist_ends: _Optional[bytes] = ...) -> None: ...

class MetricMetadata(_message.Message):
    __slots__ = ("metric_family_name", "type", "help", "unit")
    METRIC_FAMILY_NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    HELP_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    metric_family_name: str
    type: str
    help: str
    unit: str
    def __init__(self, metric_family_name: _Optional[str] = ..., type: _Optional[str] = ..., help: _Optional[str] = ..., unit: _Optional[str] = ...) -> None: ...
