#!/bin/sh
# The container's entrypoint:
#   run (default)  the bot; exec'd so that SIGTERM from `docker stop` reaches it directly
#   webhook        the bot, refusing to start without WEBHOOK_URL: a replica of the `scale`
#                  profile must not fall back to long polling beside the others
#   migrate        `alembic upgrade head` against DATABASE_URL (the bot also migrates at start)
#   genkey         print a fresh ENCRYPTION_KEY
#   anything else  run as given, e.g. `docker compose run --rm bot sh`
set -eu

# The project root (/app in the image): alembic.ini and migrations/ are read from there.
cd "$(dirname "$0")/.."

case "${1:-run}" in
    run)
        if [ "$#" -gt 0 ]; then shift; fi
        exec python -m bot run "$@"
        ;;
    webhook)
        if [ -z "${WEBHOOK_URL:-}" ]; then
            echo "WEBHOOK_URL is not set: several instances take updates only through a webhook; put WEBHOOK_URL=https://<your host>/<path> in .env." >&2
            exit 2
        fi
        shift
        exec python -m bot run "$@"
        ;;
    migrate)
        exec alembic upgrade head
        ;;
    genkey)
        exec python -m bot genkey
        ;;
    *)
        exec "$@"
        ;;
esac
