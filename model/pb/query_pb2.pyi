from shardmon.model.pb import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InstantQueryRequest(_message.Message):
    __slots__ = ("query", "time_ms", "timeout_ms")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    query: str
    time_ms: int
    timeout_ms: int
    def __init__(self, query: _Optional[str] = ..., time_ms: _Optional[int] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class RangeQueryRequest(_message.Message):
    __slots__ = ("query", "start_ms", "end_ms", "step_ms", "timeout_ms")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    STEP_MS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    query: str
    start_ms: int
    end_ms: int
    step_ms: int
    timeout_ms: int
    def __init__(self, query: _Optional[str] = ..., start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ..., step_ms: _Optional[int] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class ResultSeries(_message.Message):
    __slots__ = ("labels", "timestamps_ms", "values", "histograms")
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMPS_MS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAMS_FIELD_NUMBER: _ClassVar[int]
    labels: _containers.RepeatedCompositeFieldContainer[_types_pb2.Label]
    timestamps_ms: bytes
    values: bytes
    histograms: _containers.RepeatedCompositeFieldContainer[HistogramPoint]
    def __init__(self, labels: _Optional[_Iterable[_Union[_types_pb2.Label, _Mapping]]] = ..., timestamps_ms: _Optional[bytes] = ..., values: _Optional[bytes] = ..., histograms: _Optional[_Iterable[_Union[HistogramPoint, _Mapping]]] = ...) -> None: ...

class HistogramPoint(_message.Message):
    __slots__ = ("timestamp_ms", "histogram")
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    timestamp_ms: int
    histogram: Histogram
    def __init__(self, timestamp_ms: _Optional[int] = ..., histogram: _Optional[_Union[Histogram, _Mapping]] = ...) -> None: ...

class Histogram(_message.Message):
    __slots__ = ("schema", "zero_threshold", "zero_count", "count", "sum", "positive_spans", "positive_buckets", "negative_spans", "negative_buckets", "counter_reset_hint", "is_int")
    class CounterResetHint(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UNKNOWN: _ClassVar[Histogram.CounterResetHint]
        COUNTER_RESET: _ClassVar[Histogram.CounterResetHint]
        NOT_COUNTER_RESET: _ClassVar[Histogram.CounterResetHint]
        GAUGE: _ClassVar[Histogram.CounterResetHint]
    UNKNOWN: Histogram.CounterResetHint
    COUNTER_RESET: Histogram.CounterResetHint
    NOT_COUNTER_RESET: Histogram.CounterResetHint
    GAUGE: Histogram.CounterResetHint
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    ZERO_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    ZERO_COUNT_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SUM_FIELD_NUMBER: _ClassVar[int]
    POSITIVE_SPANS_FIELD_NUMBER: _ClassVar[int]
    POSITIVE_BUCKETS_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_SPANS_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_BUCKETS_FIELD_NUMBER: _ClassVar[int]
    COUNTER_RESET_HINT_FIELD_NUMBER: _ClassVar[int]
    IS_INT_FIELD_NUMBER: _ClassVar[int]
    schema: int
    zero_threshold: float
    zero_count: float
    count: float
    sum: float
    positive_spans: _containers.RepeatedCompositeFieldContainer[BucketSpan]
    positive_buckets: _containers.RepeatedScalarFieldContainer[float]
    negative_spans: _containers.RepeatedCompositeFieldContainer[BucketSpan]
    negative_buckets: _containers.RepeatedScalarFieldContainer[float]
    counter_reset_hint: Histogram.CounterResetHint
    is_int: bool
    def __init__(self, schema: _Optional[int] = ..., zero_threshold: _Optional[float] = ..., zero_count: _Optional[float] = ..., count: _Optional[float] = ..., sum: _Optional[float] = ..., positive_spans: _Optional[_Iterable[_Union[BucketSpan, _Mapping]]] = ..., positive_buckets: _Optional[_Iterable[float]] = ..., negative_spans: _Optional[_Iterable[_Union[BucketSpan, _Mapping]]] = ..., negative_buckets: _Optional[_Iterable[float]] = ..., counter_reset_hint: _Optional[_Union[Histogram.CounterResetHint, str]] = ..., is_int: _Optional[bool] = ...) -> None: ...

class BucketSpan(_message.Message):
    __slots__ = ("offset", "length")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    offset: int
    length: int
    def __init__(self, offset: _Optional[int] = ..., length: _Optional[int] = ...) -> None: ...

class QueryResponse(_message.Message):
    __slots__ = ("result_type", "series", "time_ms", "scalar", "string", "warnings", "is_partial")
    class ResultType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        RESULT_TYPE_UNSPECIFIED: _ClassVar[QueryResponse.ResultType]
        VECTOR: _ClassVar[QueryResponse.ResultType]
        MATRIX: _ClassVar[QueryResponse.ResultType]
        SCALAR: _ClassVar[QueryResponse.ResultType]
        STRING: _ClassVar[QueryResponse.ResultType]
    RESULT_TYPE_UNSPECIFIED: QueryResponse.ResultType
    VECTOR: QueryResponse.ResultType
    MATRIX: QueryResponse.ResultType
    SCALAR: QueryResponse.ResultType
    STRING: QueryResponse.ResultType
    RESULT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    SCALAR_FIELD_NUMBER: _ClassVar[int]
    STRING_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    IS_PARTIAL_FIELD_NUMBER: _ClassVar[int]
    result_type: QueryResponse.ResultType
    series: _containers.RepeatedCompositeFieldContainer[ResultSeries]
    time_ms: int
    scalar: float
    string: str
    warnings: _containers.RepeatedScalarFieldContainer[str]
    is_partial: bool
    def __init__(self, result_type: _Optional[_Union[QueryResponse.ResultType, str]] = ..., series: _Optional[_Iterable[_Union[ResultSeries, _Mapping]]] = ..., time_ms: _Optional[int] = ..., scalar: _Optional[float] = ..., string: _Optional[str] = ..., warnings: _Optional[_Iterable[str]] = ..., is_partial: _Optional[bool] = ...) -> None: ...

class SeriesQueryRequest(_message.Message):
    __slots__ = ("match", "start_ms", "end_ms")
    MATCH_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    match: _containers.RepeatedScalarFieldContainer[str]
    start_ms: int
    end_ms: int
    def __init__(self, match: _Optional[_Iterable[str]] = ..., start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ...) -> None: ...

class LabelSet(_message.Message):
    __slots__ = ("labels",)
    LABELS_FIELD_NUMBER: _ClassVar[int]
    labels: _containers.RepeatedCompositeFieldContainer[_types_pb2.Label]
    def __init__(self, labels: _Optional[_Iterable[_Union[_types_pb2.Label, _Mapping]]] = ...) -> None: ...

class SeriesQueryResponse(_message.Message):
    __slots__ = ("series", "warnings", "is_partial")
    SERIES_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    IS_PARTIAL_FIELD_NUMBER: _ClassVar[int]
    series: _containers.RepeatedCompositeFieldContainer[LabelSet]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    is_partial: bool
    def __init__(self, series: _Optional[_Iterable[_Union[LabelSet, _Mapping]]] = ..., warnings: _Optional[_Iterable[str]] = ..., is_partial: _Optional[bool] = ...) -> None: ...

class LabelNamesQueryRequest(_message.Message):
    __slots__ = ("match", "start_ms", "end_ms")
    MATCH_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    match: _containers.RepeatedScalarFieldContainer[str]
    start_ms: int
    end_ms: int
    def __init__(self, match: _Optional[_Iterable[str]] = ..., start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ...) -> None: ...

class LabelValuesQueryRequest(_message.Message):
    __slots__ = ("name", "match", "start_ms", "end_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    name: str
    match: _containers.RepeatedScalarFieldContainer[str]
    start_ms: int
    end_ms: int
    def __init__(self, name: _Optional[str] = ..., match: _Optional[_Iterable[str]] = ..., start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ...) -> None: ...

class LabelsQueryResponse(_message.Message):
    __slots__ = ("values", "warnings", "is_partial")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    IS_PARTIAL_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    is_partial: bool
    def __init__(self, values: _Optional[_Iterable[str]] = ..., warnings: _Optional[_Iterable[str]] = ..., is_partial: _Optional[bool] = ...) -> None: ...
