# One image for every Shardmon service of compose.yaml (shards, querier, receiver, ingest, Ray head and
# workers, demo targets): `shardmon` is the entrypoint, the service's subcommand its command.
#   docker build -t shardmon .
#   docker run --rm -v "$PWD/deploy/shardmon.yml:/etc/shardmon/shardmon.yml:ro" shardmon \
#       querier --config /etc/shardmon/shardmon.yml --check
# Air-gapped (no Docker Hub, no PyPI in the build): deploy/offline-images.sh builds the base image from
# Debian packages and the wheels on the host, then this file with PYTHON_IMAGE and PIP_INSTALL_OPTIONS.

# The Python runtime both stages start from: the official image unless told otherwise.
ARG PYTHON_IMAGE=python:3.11-slim

# Build stage: the package, installed from this repository into a virtualenv.
FROM ${PYTHON_IMAGE} AS build
# Options of the `pip install` below: from PyPI by default; deploy/offline-images.sh passes
# "--no-index --find-links /wheelhouse", the wheels it built on the host into deploy/wheelhouse/.
ARG PIP_INSTALL_OPTIONS=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/shardmon
WORKDIR /src
# Only its README.md unless deploy/offline-images.sh put wheels there.
COPY deploy/wheelhouse /wheelhouse
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
RUN /opt/shardmon/bin/pip install ${PIP_INSTALL_OPTIONS} . \
    && /opt/shardmon/bin/python -m compileall -q /opt/shardmon/lib > /dev/null

# Run stage: the slim base, the virtualenv, and an unprivileged user. Nothing of the build is left.
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/shardmon/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RAY_USAGE_STATS_ENABLED=0
COPY --from=build /opt/shardmon /opt/shardmon
# /data and /var/lib/shardmon/ray: where named volumes are mounted (the receiver's push persistence, the
# Ray token the head writes); a new volume takes the owner of the folder it is mounted on.
RUN useradd --create-home --uid 10001 --user-group shardmon \
    && mkdir -p /data /etc/shardmon /var/lib/shardmon/ray \
    && chown shardmon:shardmon /data /var/lib/shardmon/ray
USER shardmon
WORKDIR /home/shardmon
ENTRYPOINT ["shardmon"]
CMD ["--help"]
