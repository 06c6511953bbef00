# caddy-revocation: Caddy with this module, a static binary on a minimal
# base, running as non-root with a read-only root filesystem in mind.
#
#   docker build -t caddy-revocation .
#   docker run --read-only -p 8080:8080 caddy-revocation
#
# The only writable place it needs is /data (Caddy's data and autosaved
# config), a volume. The default config is Caddyfile.example; mount yours
# at /etc/caddy/Caddyfile.

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so that a source change does not fetch them again.
COPY go.mod go.sum ./
COPY tools/go.mod tools/go.sum ./tools/
RUN go mod download && cd tools && go mod download
COPY . .
# Static: no libc needed at run time.
ENV CGO_ENABLED=0
# The quick start's build command, unchanged: ./caddy through xcaddy.
RUN ./xcaddy.sh
RUN ./caddy version && ./caddy list-modules | grep -qx http.handlers.revocation \
	&& mkdir -p /out/data/config

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/caddy /usr/bin/caddy
COPY --from=build /src/Caddyfile.example /etc/caddy/Caddyfile
COPY --from=build --chown=65532:65532 /out/data /data
ENV XDG_DATA_HOME=/data XDG_CONFIG_HOME=/data/config
VOLUME /data
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/bin/caddy"]
CMD ["run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
