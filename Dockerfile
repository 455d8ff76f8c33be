# syntax=docker/dockerfile:1
# One image for every role of Duet: duet collect | stream | archive | batch | serve | train |
# import | jobs | demo (docs/deploy.md). Three stages:
#   web    the dashboard's one npm dependency (uPlot), built into the binary
#   build  Debian 12 with the -dev packages; builds the `duet` binary only (no tests)
#   final  Debian 12 slim with the runtime libraries only; non-root; works with a read-only root
#          filesystem (only /tmp, and /var/lib/duet for the embedded SQLite default, need writes)
# tests/deploy/image.sh checks this file with hadolint and checks that the runtime stage installs
# a package for every shared library the built binary loads.

# Debian 12 point release (the same distribution CI builds and tests on).
ARG DEBIAN=12.11-slim

FROM node:20.19-bookworm-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error

FROM debian:${DEBIAN} AS build
# Pinning Debian package versions breaks every point release; the base image tag pins the
# distribution instead.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config ca-certificates \
      libsimdjson-dev libsqlite3-dev libzstd-dev libxxhash-dev librdkafka-dev libmongoc-dev \
      libboost-dev prometheus-cpp-dev libxgboost-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY src src
COPY web/src web/src
COPY --from=web /src/web/node_modules/uplot web/node_modules/uplot
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DDUET_BUILD_TESTS=OFF \
 && ninja -C build duet \
 && strip build/src/cli/duet \
 && build/src/cli/duet version

FROM debian:${DEBIAN}
# The runtime libraries of `duet` (ldd): each directly linked one's package; apt adds their own
# dependencies (libgomp1, libdmlc0, libssl3, libsasl2-2, libicu72, ...).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates libxgboost0 libprometheus-cpp-core1.0 libsimdjson14 libsqlite3-0 \
      libmongoc-1.0-0 libbson-1.0-0 librdkafka1 libzstd1 libxxhash0 libstdc++6 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 duet \
 && useradd --system --uid 10001 --gid duet --home-dir /var/lib/duet --shell /usr/sbin/nologin duet \
 && mkdir -p /var/lib/duet \
 && chown duet:duet /var/lib/duet
COPY --from=build /src/build/src/cli/duet /usr/local/bin/duet
# Every role serves its probes and metrics on 8080: collect and serve their API
# (DUET_LISTEN), stream, archive and the jobs worker a status page (DUET_STATUS_LISTEN).
ENV DUET_LISTEN=0.0.0.0:8080 \
    DUET_STATUS_LISTEN=0.0.0.0:8080 \
    DUET_STORE=sqlite:/var/lib/duet/duet.sqlite
WORKDIR /var/lib/duet
USER 10001:10001
EXPOSE 8080
# No curl in a slim image: `duet probe` GETs http://127.0.0.1:8080/healthz (--url for another).
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 CMD ["duet", "probe"]
# SIGTERM: every role stops cleanly (stream commits its micro-batch first); give it time.
STOPSIGNAL SIGTERM
ENTRYPOINT ["duet"]
CMD ["serve"]
