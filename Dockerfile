# sync-job as a container image: built on the official Swift image, run on Debian slim.
#
#   docker build --build-arg SYNC_JOB_COMMIT=$(git rev-parse --short=12 HEAD) -t sync-job .
#   docker run --rm -e DATABASE_URL=... -e VALKEY_URL=... sync-job run
#
# Every step calls a script that .ci/run also runs (scripts/runtime-packages,
# scripts/build-release), so the CI of this repository covers what the image does; no
# container engine runs there.

FROM swift:6.3-bookworm AS build
WORKDIR /src
COPY scripts/runtime-packages scripts/
RUN apt-get update \
    && apt-get install -y --no-install-recommends $(scripts/runtime-packages --build) \
    && rm -rf /var/lib/apt/lists/*
# Dependencies in their own layer: it is rebuilt only when the manifest changes. The
# manifest names test-support targets under Tests/, so their folders must exist to load it.
COPY Package.swift Package.resolved* ./
RUN mkdir -p Tests/ClusterTestSupport Tests/FaultInjection && swift package resolve
COPY Sources Sources
COPY Plugins Plugins
COPY Tests Tests
COPY scripts/build-release scripts/
ARG SYNC_JOB_COMMIT=unknown
RUN SYNC_JOB_COMMIT=$SYNC_JOB_COMMIT scripts/build-release /out

FROM debian:bookworm-slim
COPY scripts/runtime-packages /usr/local/share/sync-job/
RUN apt-get update \
    && apt-get install -y --no-install-recommends $(/usr/local/share/sync-job/runtime-packages) \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin sync-job
COPY --from=build /out/sync-job /usr/local/bin/sync-job
USER sync-job
ENTRYPOINT ["sync-job"]
CMD ["run"]
