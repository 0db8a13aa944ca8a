# One image for every Shardmon service (first version; the compose issue completes it).
FROM python:3.11-slim
RUN useradd --create-home --uid 10001 shardmon
WORKDIR /app
COPY pyproject.toml README.md ./
COPY model model
COPY shards shards
COPY ingest ingest
COPY querier querier
COPY shardmon shardmon
RUN pip install --no-cache-dir . && rm -rf /root/.cache
USER shardmon
ENTRYPOINT ["shardmon"]
