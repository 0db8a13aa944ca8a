from shardmon.model.pb import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WriteRequest(_message.Message):
    __slots__ = ("batch_id", "samples", "backfill", "metadata")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    BACKFILL_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    samples: _types_pb2.SampleColumns
    backfill: bool
    metadata: _containers.RepeatedCompositeFieldContainer[_types_pb2.MetricMetadata]
    def __init__(self, batch_id: _Optional[str] = ..., samples: _Optional[_Union[_types_pb2.SampleColumns, _Mapping]] = ..., backfill: _Optional[bool] = ..., metadata: _Optional[_Iterable[_Union[_types_pb2.MetricMetadata, _Mapping]]] = ...) -> None: ...

class WriteResponse(_message.Message):
    __slots__ = ("samples_appended", "samples_rejected", "duplicate_batch")
    class SamplesRejectedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    SAMPLES_APPENDED_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_REJECTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_BATCH_FIELD_NUMBER: _ClassVar[int]
    samples_appended: int
    samples_rejected: _containers.ScalarMap[str, int]
    duplicate_batch: bool
    def __init__(self, samples_appended: _Optional[int] = ..., samples_rejected: _Optional[_Mapping[str, int]] = ..., duplicate_batch: _Optional[bool] = ...) -> None: ...

class SeriesRequest(_message.Message):
    __slots__ = ("start_ms", "end_ms", "matchers", "skip_samples", "limits")
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    MATCHERS_FIELD_NUMBER: _ClassVar[int]
    SKIP_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    start_ms: int
    end_ms: int
    matchers: _containers.RepeatedCompositeFieldContainer[_types_pb2.Matcher]
    skip_samples: bool
    limits: SeriesLimits
    def __init__(self, start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ..., matchers: _Optional[_Iterable[_Union[_types_pb2.Matcher, _Mapping]]] = ..., skip_samples: _Optional[bool] = ..., limits: _Optional[_Union[SeriesLimits, _Mapping]] = ...) -> None: ...

class SeriesLimits(_message.Message):
    __slots__ = ("max_series", "max_samples", "points_per_series")
    MAX_SERIES_FIELD_NUMBER: _ClassVar[int]
    MAX_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    POINTS_PER_SERIES_FIELD_NUMBER: _ClassVar[int]
    max_series: int
    max_samples: int
    points_per_series: int
    def __init__(self, max_series: _Optional[int] = ..., max_samples: _Optional[int] = ..., points_per_series: _Optional[int] = ...) -> None: ...

class SeriesFrame(_message.Message):
    __slots__ = ("series", "warnings", "limit_exceeded")
    SERIES_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_EXCEEDED_FIELD_NUMBER: _ClassVar[int]
    series: _types_pb2.SampleColumns
    warnings: _containers.RepeatedScalarFieldContainer[str]
    limit_exceeded: str
    def __init__(self, series: _Optional[_Union[_types_pb2.SampleColumns, _Mapping]] = ..., warnings: _Optional[_Iterable[str]] = ..., limit_exceeded: _Optional[str] = ...) -> None: ...

class AggregateRequest(_message.Message):
    __slots__ = ("matchers", "start_ms", "end_ms", "times_ms", "function", "range_ms", "lookback_ms", "one_name", "op", "grouping", "without", "param", "label", "limits", "shard_ids", "replication_factor", "live")
    MATCHERS_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    TIMES_MS_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    RANGE_MS_FIELD_NUMBER: _ClassVar[int]
    LOOKBACK_MS_FIELD_NUMBER: _ClassVar[int]
    ONE_NAME_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    GROUPING_FIELD_NUMBER: _ClassVar[int]
    WITHOUT_FIELD_NUMBER: _ClassVar[int]
    PARAM_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    SHARD_IDS_FIELD_NUMBER: _ClassVar[int]
    REPLICATION_FACTOR_FIELD_NUMBER: _ClassVar[int]
    LIVE_FIELD_NUMBER: _ClassVar[int]
    matchers: _containers.RepeatedCompositeFieldContainer[_types_pb2.Matcher]
    start_ms: int
    end_ms: int
    times_ms: bytes
    function: str
    range_ms: int
    lookback_ms: int
    one_name: bool
    op: str
    grouping: _containers.RepeatedScalarFieldContainer[str]
    without: bool
    param: bytes
    label: str
    limits: SeriesLimits
    shard_ids: _containers.RepeatedScalarFieldContainer[int]
    replication_factor: int
    live: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, matchers: _Optional[_Iterable[_Union[_types_pb2.Matcher, _Mapping]]] = ..., start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ..., times_ms: _Optional[bytes] = ..., function: _Optional[str] = ..., range_ms: _Optional[int] = ..., lookback_ms: _Optional[int] = ..., one_name: _Optional[bool] = ..., op: _Optional[str] = ..., grouping: _Optional[_Iterable[str]] = ..., without: _Optional[bool] = ..., param: _Optional[bytes] = ..., label: _Optional[str] = ..., limits: _Optional[_Union[SeriesLimits, _Mapping]] = ..., shard_ids: _Optional[_Iterable[int]] = ..., replication_factor: _Optional[int] = ..., live: _Optional[_Iterable[int]] = ...) -> None: ...

class AggregateResponse(_message.Message):
    __slots__ = ("keys", "first_keys", "values", "present", "counts", "ties", "series", "samples", "warnings", "limit_exceeded", "digests", "misplaced", "histograms")
    KEYS_FIELD_NUMBER: _ClassVar[int]
    FIRST_KEYS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    TIES_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_EXCEEDED_FIELD_NUMBER: _ClassVar[int]
    DIGESTS_FIELD_NUMBER: _ClassVar[int]
    MISPLACED_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAMS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedScalarFieldContainer[bytes]
    first_keys: _containers.RepeatedScalarFieldContainer[bytes]
    values: bytes
    present: bytes
    counts: bytes
    ties: bool
    series: int
    samples: int
    warnings: _containers.RepeatedScalarFieldContainer[str]
    limit_exceeded: str
    digests: _containers.RepeatedCompositeFieldContainer[ReplicaDigest]
    misplaced: int
    histograms: bool
    def __init__(self, keys: _Optional[_Iterable[bytes]] = ..., first_keys: _Optional[_Iterable[bytes]] = ..., values: _Optional[bytes] = ..., present: _Optional[bytes] = ..., counts: _Optional[bytes] = ..., ties: _Optional[bool] = ..., series: _Optional[int] = ..., samples: _Optional[int] = ..., warnings: _Optional[_Iterable[str]] = ..., limit_exceeded: _Optional[str] = ..., digests: _Optional[_Iterable[_Union[ReplicaDigest, _Mapping]]] = ..., misplaced: _Optional[int] = ..., histograms: _Optional[bool] = ...) -> None: ...

class ReplicaDigest(_message.Message):
    __slots__ = ("owners", "series", "samples", "digest")
    OWNERS_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    owners: _containers.RepeatedScalarFieldContainer[int]
    series: int
    samples: int
    digest: int
    def __init__(self, owners: _Optional[_Iterable[int]] = ..., series: _Optional[int] = ..., samples: _Optional[int] = ..., digest: _Optional[int] = ...) -> None: ...

class LabelNamesRequest(_message.Message):
    __slots__ = ("start_ms", "end_ms", "matchers")
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    MATCHERS_FIELD_NUMBER: _ClassVar[int]
    start_ms: int
    end_ms: int
    matchers: _containers.RepeatedCompositeFieldContainer[_types_pb2.Matcher]
    def __init__(self, start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ..., matchers: _Optional[_Iterable[_Union[_types_pb2.Matcher, _Mapping]]] = ...) -> None: ...

class LabelNamesResponse(_message.Message):
    __slots__ = ("names", "warnings")
    NAMES_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, names: _Optional[_Iterable[str]] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class LabelValuesRequest(_message.Message):
    __slots__ = ("name", "start_ms", "end_ms", "matchers")
    NAME_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    MATCHERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    start_ms: int
    end_ms: int
    matchers: _containers.RepeatedCompositeFieldContainer[_types_pb2.Matcher]
    def __init__(self, name: _Optional[str] = ..., start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ..., matchers: _Optional[_Iterable[_Union[_types_pb2.Matcher, _Mapping]]] = ...) -> None: ...

class LabelValuesResponse(_message.Message):
    __slots__ = ("values", "warnings")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class FlushRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FlushResponse(_message.Message):
    __slots__ = ("blocks_written",)
    BLOCKS_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    blocks_written: int
    def __init__(self, blocks_written: _Optional[int] = ...) -> None: ...

class ResetRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ResetResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MetadataRequest(_message.Message):
    __slots__ = ("metric", "limit")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    metric: str
    limit: int
    def __init__(self, metric: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class MetadataResponse(_message.Message):
    __slots__ = ("metadata",)
    METADATA_FIELD_NUMBER: _ClassVar[int]
    metadata: _containers.RepeatedCompositeFieldContainer[_types_pb2.MetricMetadata]
    def __init__(self, metadata: _Optional[_Iterable[_Union[_types_pb2.MetricMetadata, _Mapping]]] = ...) -> None: ...

class Selector(_message.Message):
    __slots__ = ("matchers",)
    MATCHERS_FIELD_NUMBER: _ClassVar[int]
    matchers: _containers.RepeatedCompositeFieldContainer[_types_pb2.Matcher]
    def __init__(self, matchers: _Optional[_Iterable[_Union[_types_pb2.Matcher, _Mapping]]] = ...) -> None: ...

class TSDBStatusRequest(_message.Message):
    __slots__ = ("selectors", "shard_ids", "replication_factor", "live_shard_ids")
    SELECTORS_FIELD_NUMBER: _ClassVar[int]
    SHARD_IDS_FIELD_NUMBER: _ClassVar[int]
    REPLICATION_FACTOR_FIELD_NUMBER: _ClassVar[int]
    LIVE_SHARD_IDS_FIELD_NUMBER: _ClassVar[int]
    selectors: _containers.RepeatedCompositeFieldContainer[Selector]
    shard_ids: _containers.RepeatedScalarFieldContainer[int]
    replication_factor: int
    live_shard_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, selectors: _Optional[_Iterable[_Union[Selector, _Mapping]]] = ..., shard_ids: _Optional[_Iterable[int]] = ..., replication_factor: _Optional[int] = ..., live_shard_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class LabelValueCounts(_message.Message):
    __slots__ = ("name", "values", "series")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    name: str
    values: _containers.RepeatedScalarFieldContainer[str]
    series: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., values: _Optional[_Iterable[str]] = ..., series: _Optional[_Iterable[int]] = ...) -> None: ...

class TSDBStatusResponse(_message.Message):
    __slots__ = ("num_series", "chunk_count", "min_time_ms", "max_time_ms", "labels", "warnings")
    NUM_SERIES_FIELD_NUMBER: _ClassVar[int]
    CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    MIN_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    num_series: int
    chunk_count: int
    min_time_ms: int
    max_time_ms: int
    labels: _containers.RepeatedCompositeFieldContainer[LabelValueCounts]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, num_series: _Optional[int] = ..., chunk_count: _Optional[int] = ..., min_time_ms: _Optional[int] = ..., max_time_ms: _Optional[int] = ..., labels: _Optional[_Iterable[_Union[LabelValueCounts, _Mapping]]] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...
