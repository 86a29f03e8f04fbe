#!/usr/bin/env bash
# Build and run the full stack in Docker.
#   ./docker.sh build          build the image
#   ./docker.sh up             start the stack in a container (detached), data in a named volume
#   ./docker.sh trader ARGS    run the CLI inside the running container (e.g. trader status)
#   ./docker.sh down           stop the stack and remove the container
#   ./docker.sh logs           follow pycron's output
set -euo pipefail
cd "$(dirname "$0")"
image=${TRADER_IMAGE:-trader-platform}
name=${TRADER_CONTAINER:-trader}

case "${1:-}" in
    build) docker build -f docker/Dockerfile -t "$image" . ;;
    up)
        docker image inspect "$image" >/dev/null 2>&1 || docker build -f docker/Dockerfile -t "$image" .
        docker run -d --name "$name" -v trader-data:/var/lib/trader \
            ${TRADER_PYCRON__TOKEN:+-e TRADER_PYCRON__TOKEN} "$image"
        ;;
    trader) shift; docker exec -it "$name" trader "$@" ;;
    down) docker exec "$name" trader down || true; docker rm -f "$name" >/dev/null ;;
    logs) docker logs -f "$name" ;;
    *) sed -n '2,8p' "$0"; exit 2 ;;
esac
