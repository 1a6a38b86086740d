# Multi-stage build: compile with the build dependencies, run on a slim image as non-root.
#   docker build -t vestibule .
#   docker run -p 8443:8443 -v $PWD/prod:/etc/vestibule:ro -v vestibule-data:/var/lib/vestibule/data \
#     -e VESTIBULE_KEY_K1=... vestibule
# Mount the configuration and certificates at /etc/vestibule (use absolute paths inside the
# YAML, e.g. /etc/vestibule/certs/gateway.crt, and store: { sqlite: /var/lib/vestibule/data/vestibule.db }).
FROM rust:1-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      pkg-config cmake clang libclang-dev libssl-dev libxml2-dev libxmlsec1-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin vestibule

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libssl3 libxml2 libxmlsec1 libxmlsec1-openssl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/vestibule --shell /usr/sbin/nologin vestibule \
 && mkdir -p /var/lib/vestibule/data /etc/vestibule \
 && chown -R vestibule /var/lib/vestibule
COPY --from=build /src/target/release/vestibule /usr/local/bin/vestibule
WORKDIR /var/lib/vestibule
USER vestibule
EXPOSE 8080 8443
VOLUME ["/var/lib/vestibule/data"]
ENTRYPOINT ["/usr/local/bin/vestibule"]
CMD ["run", "--config", "/etc/vestibule/vestibule.yaml"]
