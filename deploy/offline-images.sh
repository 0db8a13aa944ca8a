#!/usr/bin/env bash
# Builds the compose cluster's images without Docker Hub: the air-gapped way (docs/deploy.md).
#
#   deploy/offline-images.sh            # then: PYTHON_IMAGE=... REDIS_IMAGE=... docker-compose up -d
#
# 1. A Debian 12 (bookworm) base image: `debootstrap --variant=minbase` from the Debian mirror into a root
#    filesystem, `docker import`ed as $DEBIAN_IMAGE.
# 2. From it, with `apt-get` in a `docker build --network host`: the Python runtime ($PYTHON_IMAGE:
#    Debian's python3 3.11) and Redis 7 ($REDIS_IMAGE: Debian's redis-server 7.0), deploy/offline/*.Dockerfile.
# 3. The wheels of Shardmon's dependencies, built on the host (pip in a container of $PYTHON_IMAGE, on the
#    host's network with the host's CA bundle) into deploy/wheelhouse/.
# 4. The Shardmon image ($SHARDMON_IMAGE) from the repository's Dockerfile on $PYTHON_IMAGE, pip installing
#    from deploy/wheelhouse/ only (--no-index).
# Only the Debian mirror and the Python package index (from the host) are contacted. Needs root (debootstrap,
# docker), debootstrap and a running Docker engine.
#
# Re-runnable: the root filesystem is cached in .cache/offline-images/ (gitignored), the wheels in
# deploy/wheelhouse/; each base image carries a label with the hash of its inputs and is rebuilt only when
# they change; the Shardmon image reuses Docker's layer cache. OFFLINE_REBUILD=1 rebuilds everything.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SUITE=${DEBIAN_SUITE:-bookworm}
DEBIAN_IMAGE=${DEBIAN_IMAGE:-shardmon-debian:$DEBIAN_SUITE}
PYTHON_IMAGE=${PYTHON_IMAGE:-shardmon-python:3.11}
REDIS_IMAGE=${REDIS_IMAGE:-shardmon-redis:7}
SHARDMON_IMAGE=${SHARDMON_IMAGE:-shardmon:${SHARDMON_TAG:-latest}}
CACHE=.cache/offline-images
WHEELS=deploy/wheelhouse
LABEL=org.shardmon.offline-inputs
mkdir -p "$CACHE" "$WHEELS"

# The classic builder (Docker 20.10's default; compose v1 uses it too): no buildx needed.
export DOCKER_BUILDKIT=0
say() { echo "offline-images: $*"; }
# Runs a command with its output in $CACHE/<name>.log, shown (its end) only when it fails.
logged() {  # name command...
  local name=$1; shift
  "$@" > "$CACHE/$name.log" 2>&1 || { tail -25 "$CACHE/$name.log"; say "$name failed (log: $CACHE/$name.log)"; exit 1; }
}
inputs_of() { cat "$@" | sha256sum | cut -c1-16; }
# Whether image $1 exists and carries inputs hash $2.
current() {
  [ "${OFFLINE_REBUILD:-0}" = 1 ] && return 1
  [ "$(docker image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null)" = "$2" ]
}

# 1. The Debian base image.
rootfs_tar="$CACHE/debian-$DEBIAN_SUITE-minbase.tar"
debian_inputs=$(echo "$DEBIAN_SUITE $DEBIAN_MIRROR" | sha256sum | cut -c1-16)
if [ ! -s "$rootfs_tar" ] || [ "$(cat "$rootfs_tar.inputs" 2>/dev/null)" != "$debian_inputs" ] \
    || [ "${OFFLINE_REBUILD:-0}" = 1 ]; then
  say "debootstrap --variant=minbase $DEBIAN_SUITE from $DEBIAN_MIRROR"
  rootfs=$(mktemp -d "$CACHE/rootfs.XXXXXX")
  trap 'rm -rf "$rootfs"' EXIT
  logged debootstrap debootstrap --variant=minbase "$DEBIAN_SUITE" "$rootfs" "$DEBIAN_MIRROR"
  # As Debian's own container images: services are not started by package installs, no apt cache.
  printf '#!/bin/sh\nexit 101\n' > "$rootfs/usr/sbin/policy-rc.d"
  chmod 755 "$rootfs/usr/sbin/policy-rc.d"
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' > "$rootfs/etc/apt/apt.conf.d/99shardmon"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/dev/* "$rootfs"/proc/* "$rootfs"/sys/*
  tar --numeric-owner -C "$rootfs" -cf "$rootfs_tar.tmp" .
  mv "$rootfs_tar.tmp" "$rootfs_tar"
  echo "$debian_inputs" > "$rootfs_tar.inputs"
  rm -rf "$rootfs"
  trap - EXIT
fi
if ! current "$DEBIAN_IMAGE" "$debian_inputs"; then
  say "docker import -> $DEBIAN_IMAGE"
  docker import --change "LABEL $LABEL=$debian_inputs" --change 'CMD ["bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' "$rootfs_tar" "$DEBIAN_IMAGE" > /dev/null
fi
debian_id=$(docker image inspect -f '{{.Id}}' "$DEBIAN_IMAGE")

# 2. The Python runtime and Redis 7 from Debian packages (apt inside the build, on the host's network).
build_base() {  # image dockerfile
  local image=$1 dockerfile=deploy/offline/$2 inputs
  inputs=$( (echo "$debian_id"; cat "$dockerfile" deploy/offline/redis-entrypoint.sh) | sha256sum | cut -c1-16)
  if current "$image" "$inputs"; then say "$image is current"; return; fi
  say "docker build $image ($dockerfile, apt from $DEBIAN_MIRROR)"
  logged "build-${2%.Dockerfile}" docker build --network host -f "$dockerfile" \
    --build-arg DEBIAN_IMAGE="$DEBIAN_IMAGE" --label "$LABEL=$inputs" -t "$image" deploy/offline
}
build_base "$PYTHON_IMAGE" python.Dockerfile
build_base "$REDIS_IMAGE" redis.Dockerfile

# 3. The wheelhouse: every dependency of pyproject.toml as a wheel (and setuptools, Shardmon's build
#    backend), when pyproject.toml changed. pip runs on the host's network in a throwaway container of
#    $PYTHON_IMAGE, so that the wheels and environment markers are those of the image's Python (3.11.2:
#    the host's may differ), with the host's CA bundle (a TLS-inspecting proxy's CA is often only there)
#    and the host's PIP_INDEX_URL / PIP_EXTRA_INDEX_URL (a local mirror) when set.
wheel_inputs=$( (echo "$PYTHON_IMAGE $(docker image inspect -f '{{.Id}}' "$PYTHON_IMAGE")"; cat pyproject.toml) \
  | sha256sum | cut -c1-16)
if [ "$(cat "$WHEELS/.inputs" 2>/dev/null)" != "$wheel_inputs" ] || ! ls "$WHEELS"/setuptools-*.whl >/dev/null 2>&1 \
    || [ "${OFFLINE_REBUILD:-0}" = 1 ]; then
  say "pip wheel: the dependencies' wheels into $WHEELS/ (with $PYTHON_IMAGE's python)"
  rm -f "$WHEELS"/*.whl
  ca_bundle=${CA_BUNDLE:-${PIP_CERT:-${REQUESTS_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}}}
  ca_args=()
  [ -f "$ca_bundle" ] && ca_args=(-v "$(realpath "$ca_bundle"):/etc/ssl/host-ca.crt:ro" -e PIP_CERT=/etc/ssl/host-ca.crt)
  logged pip-wheel docker run --rm --network host "${ca_args[@]}" -e PIP_INDEX_URL -e PIP_EXTRA_INDEX_URL \
    -e PIP_DISABLE_PIP_VERSION_CHECK=1 -e PIP_NO_CACHE_DIR=1 \
    -v "$PWD/pyproject.toml:/src/pyproject.toml:ro" -v "$PWD/$WHEELS:/wheelhouse" "$PYTHON_IMAGE" sh -ec '
      python -m venv /tmp/pip
      python -c "import tomllib; print(chr(10).join(tomllib.load(open(\"/src/pyproject.toml\", \"rb\"))[\"project\"][\"dependencies\"]))" > /tmp/requirements.txt
      /tmp/pip/bin/pip wheel -w /wheelhouse -r /tmp/requirements.txt "setuptools>=68" wheel'
  echo "$wheel_inputs" > "$WHEELS/.inputs"
fi

# 4. The Shardmon image: the repository's Dockerfile on the Debian-built Python, pip offline.
say "docker build $SHARDMON_IMAGE (FROM $PYTHON_IMAGE, pip --no-index from $WHEELS/)"
logged build-shardmon docker build --build-arg PYTHON_IMAGE="$PYTHON_IMAGE" \
  --build-arg PIP_INSTALL_OPTIONS="--no-index --find-links /wheelhouse" -t "$SHARDMON_IMAGE" .

docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' \
  | grep -E "^($DEBIAN_IMAGE|$PYTHON_IMAGE|$REDIS_IMAGE|$SHARDMON_IMAGE) " | sed 's/^/offline-images: built /'
