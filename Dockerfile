# One image for every Shardmon service of compose.yaml (shards, querier, receiver, ingest, Ray head and
# workers, demo targets): `shardmon` is the entrypoint, the service's subcommand its command.
#   docker build -t shardmon .
#   docker run --rm -v "$PWD/deploy/shardmon.yml:/etc/shardmon/shardmon.yml:ro" shardmon \
#       querier --config /etc/shardmon/shardmon.yml --check

# Build stage: the package, installed from this repository into a virtualenv.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/shardmon
WORKDIR /src
COPY pyproject.toml README.md ./
COPY model model
COPY shards shards
COPY ingest ingest
COPY querier querier
COPY rules rules
COPY k8sapi k8sapi
COPY shardmon shardmon
# Byte-compiled here: the run stage's user cannot write the virtualenv, and with PYTHONDONTWRITEBYTECODE
# every process start would otherwise compile every module it imports (about 0.1 CPU-s for a shard).
RUN /opt/shardmon/bin/pip install . \
    && /opt/shardmon/bin/python -m compileall -q /opt/shardmon/lib > /dev/null

# Run stage: the slim base, the virtualenv, and an unprivileged user. Nothing of the build is left.
FROM python:3.11-slim
ENV PATH=/opt/shardmon/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RAY_USAGE_STATS_ENABLED=0
COPY --from=build /opt/shardmon /opt/shardmon
# /data: where a named volume (the receiver's push persistence) is mounted; a new volume takes its owner.
RUN useradd --create-home --uid 10001 --user-group shardmon \
    && mkdir -p /data /etc/shardmon && chown shardmon:shardmon /data
USER shardmon
WORKDIR /home/shardmon
ENTRYPOINT ["shardmon"]
CMD ["--help"]
