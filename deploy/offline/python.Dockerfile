# The Python runtime base image built from Debian packages only (deploy/offline-images.sh): Debian 12's
# python3 (3.11, as the official python:3.11-slim) with venv, on the debootstrapped Debian base.
# `python` is python3 (python-is-python3), as in the official image.
ARG DEBIAN_IMAGE=shardmon-debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN apt-get update -q \
    && apt-get install -y -q --no-install-recommends python3 python3-venv python-is-python3 ca-certificates \
    && apt-get clean && rm -rf /var/lib/apt/lists/*
ENV LANG=C.UTF-8
CMD ["python3"]
