# sdfs in one image; the command picks the role:
#   sdfs name       a name server (HTTP API, web UI and the classic protocol on 6235, LAN announcements)
#   sdfs storage    a storage server (3500); with no name server given, it joins the first one heard on the LAN
#   sdfs            the interactive shell (the default), or any subcommand: sdfs put, get, status, fsck...
# Data lives in /data (a volume); configuration by flags and SDFS_* variables, as outside containers.
#
#   docker build -t sdfs .
#   docker build --build-arg BASE=localhost/node:20-bookworm -t sdfs .   # any Debian image with Node 20.19+ and npm
ARG BASE=node:20-bookworm-slim

FROM ${BASE} AS build
# better-sqlite3 compiles from source.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
ENV npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
COPY package.json package-lock.json ./
# The dependencies in a layer of their own, which a change of the sources keeps. --ignore-scripts: the
# `prepare` script builds sources not copied yet; the install scripts of the dependencies that need one
# run next. node-gyp takes Node's headers from the image when they are there, instead of downloading them.
RUN headers="$(dirname "$(dirname "$(command -v node)")")"; \
    if [ -f "$headers/include/node/node.h" ]; then export npm_config_nodedir="$headers"; fi; \
    npm ci --ignore-scripts \
 && npm rebuild better-sqlite3 esbuild
COPY tsconfig.json ./
COPY src ./src
# Build, drop the dev dependencies, and keep only the compiled module of better-sqlite3 (not its
# sources, objects and static library).
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts \
 && cd node_modules/better-sqlite3 \
 && mv build/Release/better_sqlite3.node /tmp/ \
 && rm -rf build deps src \
 && mkdir -p build/Release && mv /tmp/better_sqlite3.node build/Release/

FROM ${BASE}
ENV NODE_ENV=production
RUN groupadd --system --gid 10001 sdfs \
 && useradd --system --uid 10001 --gid sdfs --create-home --home-dir /home/sdfs --shell /usr/sbin/nologin sdfs \
 && mkdir /data && chown sdfs:sdfs /data
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
RUN ln -s /app/dist/cli/main.js /usr/local/bin/sdfs
# The data dir of whichever server runs.
ENV SDFS_DATA_DIR=/data
VOLUME /data
USER sdfs
WORKDIR /home/sdfs
# name server: HTTP and classic protocol; storage server; LAN announcements (UDP).
EXPOSE 6235 3500 6236/udp
# Node is PID 1: `sdfs name` and `sdfs storage` stop cleanly on SIGTERM.
CMD ["sdfs"]
