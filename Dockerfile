# Strata in a container (issue 20): a multi-stage build, run as a non-root user with the data
# directory on a volume.
#
#   docker build -t strata .
#   docker run -p 8686:8686 -v strata-data:/var/lib/strata strata
#
# The first build compiles DataFusion and the rest from source: about 45 minutes on 2 cores.
# Inside the container the HTTP API listens on 0.0.0.0:8686. The Postgres door stays on the
# container's loopback until it has TLS: pass STRATA_TLS_CERT/STRATA_TLS_KEY (mounted files) and
# STRATA_PG_ADDR=0.0.0.0:5433, then publish 5433. A Prometheus server outside the container
# needs STRATA_ALLOW_REMOTE_METRICS=true.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# Without the default `bench` feature: the production binary (README, "Benchmarks").
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p strata --no-default-features \
    && cp target/release/strata /usr/local/bin/strata

FROM debian:bookworm-slim
# CA roots for TLS to object stores, webhooks and SMTP relays.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/strata strata \
    && mkdir -p /var/lib/strata \
    && chown strata:strata /var/lib/strata \
    && chmod 0700 /var/lib/strata
COPY --from=build /usr/local/bin/strata /usr/local/bin/strata
USER strata:strata
ENV STRATA_DATA_DIR=/var/lib/strata \
    STRATA_HTTP_ADDR=0.0.0.0:8686 \
    STRATA_PG_ADDR=127.0.0.1:5433 \
    STRATA_LOG_FORMAT=json
VOLUME ["/var/lib/strata"]
EXPOSE 8686 5433
# SIGTERM stops the server cleanly (in-flight requests finish, the hot tier is closed).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/strata"]
CMD ["serve"]
