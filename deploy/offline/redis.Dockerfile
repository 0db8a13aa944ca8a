# Redis 7 built from Debian packages only (deploy/offline-images.sh): Debian 12's redis-server (7.0) on
# the debootstrapped Debian base, used as the official redis:7 image is: `redis-server ...` as the
# command, the data in /data (the working directory, a volume), redis-cli for the health check.
ARG DEBIAN_IMAGE=shardmon-debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN apt-get update -q \
    && apt-get install -y -q --no-install-recommends redis-server \
    && apt-get clean && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chown redis:redis /data
COPY redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
USER redis
WORKDIR /data
VOLUME /data
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
