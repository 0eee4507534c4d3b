#!/bin/sh
# The proxy's entrypoint in the compose `scale` profile (Caddy's official image): derives
# Caddy's site from WEBHOOK_URL and PROXY_TLS, then runs Caddy with only the values the
# Caddyfile reads, so the bot's token and key (in the same .env) never reach the proxy.
#   PROXY_TLS=auto   (default) Caddy gets a certificate for WEBHOOK_URL's host by itself
#   PROXY_TLS=files  your certificate: docker/certs/cert.pem (full chain) and key.pem
#   PROXY_TLS=off    plain HTTP on port 80, behind a TLS terminator of your own
set -eu

fail() {
    echo "proxy: $*" >&2
    exit 2
}

url="${WEBHOOK_URL:-}"
tls="${PROXY_TLS:-auto}"
upstreams="${PROXY_UPSTREAMS:-}"
certs="${PROXY_CERTS:-/certs}"

[ -n "$upstreams" ] || fail "PROXY_UPSTREAMS is not set (the compose file names the replicas)."
case "$url" in
    https://?*) ;;
    "") fail "WEBHOOK_URL is not set: put WEBHOOK_URL=https://<your host>/<path> in .env." ;;
    *) fail "WEBHOOK_URL must start with https:// (Telegram calls it over the internet)." ;;
esac

rest="${url#https://}"
authority="${rest%%[/?#]*}"
path="${rest#"$authority"}"
path="${path%%[?#]*}"
[ -n "$path" ] || path="/"
case "$authority" in
    *@*) fail "WEBHOOK_URL must not carry user:password@." ;;
    *:443) host="${authority%:443}" ;;
    *\]) host="$authority" ;;
    *:*) fail "WEBHOOK_URL's port must be 443 (or none): this proxy listens on 80 and 443." ;;
    *) host="$authority" ;;
esac
[ -n "$host" ] || fail "WEBHOOK_URL has no host name."

case "$tls" in
    auto)
        site="$host"
        what="a certificate from Let's Encrypt or ZeroSSL (ports 80 and 443 must reach here)"
        ;;
    files)
        for file in cert.pem key.pem; do
            [ -r "$certs/$file" ] || fail "PROXY_TLS=files but $certs/$file cannot be read: put your certificate (full chain) and its key in docker/certs/."
        done
        site="$host"
        what="the certificate in docker/certs/"
        ;;
    off)
        site=":80"
        what="plain HTTP on port 80, for a TLS terminator in front"
        ;;
    *) fail "PROXY_TLS must be auto, files or off, not '$tls'." ;;
esac

echo "proxy: https://$host$path -> $upstreams, in turn; TLS: $what"
exec env -i \
    PATH="$PATH" \
    HOME="${HOME:-/root}" \
    XDG_CONFIG_HOME="${XDG_CONFIG_HOME:-/config}" \
    XDG_DATA_HOME="${XDG_DATA_HOME:-/data}" \
    PROXY_SITE="$site" \
    PROXY_TLS="$tls" \
    PROXY_CERTS="$certs" \
    WEBHOOK_PATH="$path" \
    PROXY_UPSTREAMS="$upstreams" \
    caddy run --config "$(dirname "$0")/Caddyfile" --adapter caddyfile
