# Portico's image: one image for both components (the Deployment runs
# packages/controller/src/main.ts, the DaemonSet packages/speaker/src/main.ts;
# see manifests/). Node 24 runs the TypeScript sources directly, so there is
# no compile step besides the speaker's native addon.
#
#   docker build -t ghcr.io/portico-lb/portico:0.1.0 .
#
# scripts/check-dockerfile.sh replays the COPY and RUN steps below in a
# temporary directory (no container engine needed): keep every RUN relative to
# WORKDIR and every COPY destination relative too.
ARG NODE_IMAGE=node:24-bookworm
ARG RUNTIME_IMAGE=node:24-bookworm-slim

# ---- deps: every dependency, and the native addon built with node-gyp -------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
# check-dockerfile: skip (the check uses the machine's pnpm of the same version)
RUN npm install -g pnpm@10.34.8
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml ./
COPY packages/shared/package.json packages/shared/
COPY packages/controller/package.json packages/controller/
COPY packages/speaker/package.json packages/speaker/
COPY packages/speaker/native/binding.gyp packages/speaker/native/build.mjs packages/speaker/native/
COPY packages/speaker/native/src packages/speaker/native/src/
# The speaker's install script runs node-gyp against this Node's own headers
# (python3, make and gcc are in the full Node image).
RUN pnpm install --frozen-lockfile --prefer-offline --filter @portico/controller... --filter @portico/speaker...
RUN test -f packages/speaker/native/build/Release/portico_native.node

# ---- prod: runtime dependencies only (no node-gyp, no dev tools) -------------
FROM ${NODE_IMAGE} AS prod
WORKDIR /app
# check-dockerfile: skip (the check uses the machine's pnpm of the same version)
RUN npm install -g pnpm@10.34.8
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml ./
COPY packages/shared/package.json packages/shared/
COPY packages/controller/package.json packages/controller/
COPY packages/speaker/package.json packages/speaker/
RUN pnpm install --frozen-lockfile --prefer-offline --prod --ignore-scripts --filter @portico/controller... --filter @portico/speaker...

# ---- runtime: Node 24 slim, sources, production node_modules, the addon -----
FROM ${RUNTIME_IMAGE} AS runtime
WORKDIR /app
ENV NODE_ENV=production NODE_OPTIONS=--disable-warning=ExperimentalWarning
COPY --from=prod /app/node_modules node_modules/
COPY --from=prod /app/packages/shared/node_modules packages/shared/node_modules/
COPY --from=prod /app/packages/controller/node_modules packages/controller/node_modules/
COPY --from=prod /app/packages/speaker/node_modules packages/speaker/node_modules/
COPY --from=deps /app/packages/speaker/native/build/Release/portico_native.node packages/speaker/native/build/Release/
COPY package.json ./
COPY packages/shared/package.json packages/shared/
COPY packages/shared/src packages/shared/src/
COPY packages/controller/package.json packages/controller/
COPY packages/controller/src packages/controller/src/
COPY packages/speaker/package.json packages/speaker/
COPY packages/speaker/src packages/speaker/src/
COPY bin/portico bin/kubectl-portico bin/
# Node's compile cache (relative to WORKDIR, the processes' working
# directory): the smoke tests below strip the TypeScript sources once and
# store the result, with V8's code for it; every start then reads it instead
# of loading Node's type stripper, which alone adds ~30 MB to each process's
# RSS. Node keys the entries by user id and V8 flags, so each entry point is
# started here as the user and with the flags its manifest gives it; at run
# time the cache is read-only (readOnlyRootFilesystem) and only read.
ENV NODE_COMPILE_CACHE=.cache/node
RUN mkdir -p .cache/node && chown 65532:65532 .cache/node
# Smoke tests at build time: both entry points start, the addon loads on this libc.
RUN node --optimize-for-size packages/speaker/src/main.ts --help
# The heartbeat thread's entry (a worker_thread: it refuses to run alone, after being compiled).
RUN node --optimize-for-size --input-type=module -e "await import('./packages/speaker/src/membership/worker.ts').catch(() => undefined)"
RUN node -e "require('./packages/speaker/native/build/Release/portico_native.node')"
RUN node packages/controller/src/cli/portico.ts help
# The controller runs as this user (the manifest also says so); the speaker's
# DaemonSet runs as root with only NET_RAW, NET_ADMIN and NET_BIND_SERVICE.
USER 65532:65532
RUN node --optimize-for-size packages/controller/src/main.ts --help
CMD ["node", "--optimize-for-size", "packages/controller/src/main.ts"]
