# supasaasy in a container: a multi-stage build (the Rust toolchain stays in the first stage), a
# small Debian runtime, a non-root user, and a HEALTHCHECK on /livez (the binary asks it itself).
#
#   docker build -t supasaasy .
#   docker run --env-file supasaasy.env -e SUPASAASY_SERVER__LISTEN=0.0.0.0:8080 -p 8080:8080 supasaasy
#
# Mount your own config at /etc/supasaasy/supasaasy.toml, or set every key from the environment
# (SUPASAASY_<SECTION>__<KEY>); secrets and DATABASE_URL come from the environment.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin supasaasy \
    && strip target/release/supasaasy

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin supasaasy
COPY --from=build /src/target/release/supasaasy /usr/bin/supasaasy
COPY supasaasy.toml /etc/supasaasy/supasaasy.toml
USER supasaasy
ENV SUPASAASY_CONFIG=/etc/supasaasy/supasaasy.toml \
    SUPASAASY_SERVER__LISTEN=0.0.0.0:8080
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=6s --start-period=10s --retries=3 \
    CMD ["/usr/bin/supasaasy", "healthcheck"]
ENTRYPOINT ["/usr/bin/supasaasy"]
CMD ["serve"]
