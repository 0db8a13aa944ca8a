"""The Prometheus text exposition format (0.0.4), OpenMetrics 1.0 text and the protobuf format: scrape
bodies parsed into sample columns with a per-target series cache, and single OpenMetrics lines for backfill.

Acceptance follows Prometheus 2.42's own parsers (``model/textparse/promlex.l``, ``promparse.go``,
``openmetricslex.l``, ``openmetricsparse.go``), checked against a real Prometheus 2.42 on the same
bodies. ``foo_created`` lines are samples like any other: Prometheus 2.42 ingests them as the series
``foo_created``, and so does Shardmon. A repeated label name is an error of the sample, worded as
Prometheus words it (``label name "b" is not unique: invalid sample``). ``le``/``quantile`` values are
kept as exposed (Prometheus 3 rewrites them as floats): labels are what the target wrote.

The modules, by concept:

- :mod:`.body`: whole bodies (:func:`parse_text`, :func:`parse_openmetrics`) through a
  :class:`SeriesCache`, known lines in bulk, with the value-only fast path for unchanged bodies;
  :class:`BodyError`;
- :mod:`.protobuf`: protobuf bodies (:func:`parse_protobuf`, Prometheus 2.53's ``protobufparse.go``), the
  one format with native histograms (:class:`ParsedHistograms`);
- :mod:`.text`: one line of the text format, as Prometheus's lexer reads it;
- :mod:`.openmetrics`: one line of OpenMetrics (:func:`parse_openmetrics_line`, also what the backfill
  reader, :mod:`shardmon.ingest.backfill`, parses a file with);
- :mod:`.tokens`: what both share: values (Go's float syntax), label values and escapes, the
  timestamp sentinel :data:`NO_TIMESTAMP`, :class:`LineError` and how errors quote bad bytes.

Everything a caller needs is imported from here.
"""

from shardmon.ingest.exposition.body import (
    BodyError,
    ParsedHistograms,
    ParsedScrape,
    SeriesCache,
    parse_openmetrics,
    parse_text,
)
from shardmon.ingest.exposition.openmetrics import (
    OUT_OF_RANGE_TIMESTAMP,
    parse_openmetrics_line,
    parse_openmetrics_timestamp,
)
from shardmon.ingest.exposition.protobuf import MEDIA_TYPE as PROTOBUF_MEDIA_TYPE
from shardmon.ingest.exposition.protobuf import encode_delimited, parse_protobuf
from shardmon.ingest.exposition.text import parse_text_line
from shardmon.ingest.exposition.tokens import NO_TIMESTAMP, LineError, parse_value

__all__ = [
    "NO_TIMESTAMP",
    "OUT_OF_RANGE_TIMESTAMP",
    "BodyError",
    "LineError",
    "PROTOBUF_MEDIA_TYPE",
    "ParsedHistograms",
    "ParsedScrape",
    "SeriesCache",
    "encode_delimited",
    "parse_openmetrics",
    "parse_openmetrics_line",
    "parse_openmetrics_timestamp",
    "parse_protobuf",
    "parse_text",
    "parse_text_line",
    "parse_value",
]
