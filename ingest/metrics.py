"""The scrapers' own metrics (``shardmon_scraper_*``), kept by prometheus_client in each scraper process."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# The *_created series add nothing for these process-lifetime counters.
disable_created_metrics()

SCRAPES = Counter("shardmon_scraper_scrapes_total", "Scrapes done, by outcome.", ["outcome"])
SCRAPE_DURATION = Histogram(
    "shardmon_scraper_scrape_duration_seconds",
    "Time of a scrape: the HTTP request and the parse.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SAMPLES_SCRAPED = Counter("shardmon_scraper_samples_scraped_total", "Samples parsed from targets.")
HISTOGRAMS_SCRAPED = Counter("shardmon_scraper_histograms_scraped_total",
                             "Native histogram samples parsed from targets (the protobuf format).")
HISTOGRAMS_REDUCED = Counter(
    "shardmon_scraper_histograms_resolution_reduced_total",
    "Scraped native histograms whose resolution was reduced to fit native_histogram_bucket_limit.",
)
DUPLICATE_SAMPLES = Counter(
    "shardmon_scraper_samples_duplicate_total",
    "Samples of a series repeated in one scrape with one timestamp: the first is kept, the rest dropped (as Prometheus).",
)
LIMIT_EXCEEDED = Counter(
    "shardmon_scraper_scrapes_limit_exceeded_total",
    "Scrapes failed by a scrape config limit (sample_limit, body_size_limit, label_limit, ...), by limit.",
    ["limit"],
)
TARGETS = Gauge("shardmon_scraper_targets", "Targets this scraper scrapes.")
QUEUE_SAMPLES = Gauge("shardmon_scraper_queue_samples", "Samples waiting to be sent, per shard.", ["shard"])
SAMPLES_SENT = Counter("shardmon_scraper_samples_sent_total", "Samples acknowledged by a shard.", ["shard"])
SAMPLES_DROPPED = Counter(
    "shardmon_scraper_samples_dropped_total",
    "Samples given up on, by reason (queue_full, rejected_by_shard, shutdown).",
    ["reason"],
)
SAMPLES_REJECTED = Counter(
    "shardmon_scraper_samples_rejected_total",
    "Samples a shard acknowledged but refused (out_of_order, duplicate_timestamp, ...), by reason.",
    ["reason"],
)
WRITES = Counter("shardmon_scraper_writes_total", "Write calls to shards, by shard and outcome.", ["shard", "outcome"])
WRITE_DURATION = Histogram(
    "shardmon_scraper_write_duration_seconds",
    "Time from the first send of a batch to its acknowledgement, retries included.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30),
)

EVENT_LOOP_LAG = Gauge(
    "shardmon_scraper_event_loop_lag_seconds",
    "How late the scraper's event loop ran a 1 s timer, last time (saturation: a busy loop scrapes late).",
)
