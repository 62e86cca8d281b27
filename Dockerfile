# Portico's image: one image for both components (the Deployment runs
# packages/controller/src/main.ts, the DaemonSet packages/speaker/src/main.ts;
# see manifests/). Node 24 runs the TypeScript sources directly, so there is
# no compile step besides the speaker's native addon.
#
# A release builds it with the default base (the official Node 24 image on
# Debian bookworm):
#   docker build -t ghcr.io/portico-lb/portico:0.1.0 .
# `npm run image` (scripts/image.sh) builds the same file with podman from a
# base made here out of Debian packages and the workspace's Node 24, passing
# NODE_IMAGE. The only base is NODE_IMAGE: a Debian bookworm with Node 24 in
# /usr/local (bin/node, include/node), apt and a C++ toolchain.
#
# The runtime image is not a distribution: it is FROM scratch plus the files
# of the few Debian packages the processes need (libc, libstdc++, nftables and
# its libraries, for the speaker's `nft -f -`), Node's binary, the sources and
# the production node_modules. No shell, no package manager.
#
# scripts/check-dockerfile.sh replays the COPY and RUN steps below in a
# temporary directory (no container engine needed): keep every RUN relative to
# WORKDIR and every COPY destination relative too. The rootfs stage is not
# replayed (it needs apt and chroot); the runtime stage's smoke tests are.
ARG NODE_IMAGE=node:24.21.0-bookworm

# ---- deps: every dependency, and the native addon built with node-gyp -------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
# check-dockerfile: skip (the check uses the machine's pnpm of the same version)
RUN command -v pnpm >/dev/null || npm install -g pnpm@10.34.8
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml ./
COPY packages/shared/package.json packages/shared/
COPY packages/controller/package.json packages/controller/
COPY packages/speaker/package.json packages/speaker/
COPY packages/speaker/native/binding.gyp packages/speaker/native/build.mjs packages/speaker/native/
COPY packages/speaker/native/src packages/speaker/native/src/
# No install scripts (the workspace's own `node` devDependency would fetch a
# second Node); the native addon is built next, with node-gyp against this
# Node's own headers (python3, make and g++ are in the base). A build behind a
# TLS-intercepting proxy passes its CA as the secret npm-ca; it never lands in
# a layer.
RUN --mount=type=secret,id=npm-ca if [ -s /run/secrets/npm-ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm-ca; fi; pnpm install --frozen-lockfile --prefer-offline --ignore-scripts --filter @portico/controller... --filter @portico/speaker...
RUN node packages/speaker/native/build.mjs
RUN test -f packages/speaker/native/build/Release/portico_native.node

# ---- prod: runtime dependencies only (no node-gyp, no dev tools) -------------
FROM ${NODE_IMAGE} AS prod
WORKDIR /app
# check-dockerfile: skip (the check uses the machine's pnpm of the same version)
RUN command -v pnpm >/dev/null || npm install -g pnpm@10.34.8
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml ./
COPY packages/shared/package.json packages/shared/
COPY packages/controller/package.json packages/controller/
COPY packages/speaker/package.json packages/speaker/
RUN --mount=type=secret,id=npm-ca if [ -s /run/secrets/npm-ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm-ca; fi; pnpm install --frozen-lockfile --prefer-offline --prod --ignore-scripts --filter @portico/controller... --filter @portico/speaker...
# Nothing the processes load: type declarations, source maps, tests, Bare
# runtime prebuilds, client-node's generated doc comments (scripts/image-prune.ts).
COPY scripts/image-prune.ts ./
RUN node image-prune.ts node_modules/.pnpm

# ---- rootfs: the runtime's file system, from Debian packages -----------------
FROM ${NODE_IMAGE} AS rootfs
# What the runtime runs: Node (libc, libstdc++, libgcc) and nft with its
# libraries. Listed whole (no dependency resolution, no maintainer scripts):
# the chroot checks below fail the build if a library is missing.
ARG RUNTIME_DEBS="libc6 libgcc-s1 libstdc++6 nftables libnftables1 libnftnl11 libmnl0 libjansson4 libgmp10 libxtables12 libedit2 libbsd0 libmd0 libtinfo6"
WORKDIR /build
# check-dockerfile: skip (apt and chroot; the image build runs it)
RUN ma="$(gcc -dumpmachine)" && apt-get update -qq && apt-get download -qq $RUNTIME_DEBS && mkdir /rootfs && for d in *.deb; do dpkg-deb -x "$d" /rootfs; done && rm -rf /var/lib/apt/lists/* && cd /rootfs && rm -rf usr/share/doc usr/share/man usr/share/info usr/share/locale usr/share/lintian usr/share/bug "usr/lib/$ma/gconv" usr/share/gcc usr/share/gdb etc/init.d etc/default usr/lib/systemd usr/sbin/nft-* && mkdir -p usr/local/bin etc tmp app/.cache/node && chmod 1777 tmp && install -m 0755 /usr/local/bin/node usr/local/bin/node && strip --strip-unneeded usr/local/bin/node && printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > etc/passwd && printf 'root:x:0:\nnonroot:x:65532:\n' > etc/group && printf 'hosts: files dns\n' > etc/nsswitch.conf && printf '/lib/%s\n/usr/lib/%s\n' "$ma" "$ma" > etc/ld.so.conf && ldconfig -r /rootfs && chown 65532:65532 app/.cache/node && chroot /rootfs /usr/local/bin/node -e "process.exit(process.versions.node.startsWith('24.') ? 0 : 1)" && chroot /rootfs /usr/sbin/nft --version

# ---- runtime: the rootfs, sources, production node_modules, the addon --------
FROM scratch AS runtime
COPY --from=rootfs /rootfs/ /
WORKDIR /app
ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin NODE_ENV=production NODE_OPTIONS=--disable-warning=ExperimentalWarning
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
# Node's compile cache (relative to WORKDIR, the processes' working
# directory): the smoke tests below strip the TypeScript sources once and
# store the result, with V8's code for it; every start then reads it instead
# of loading Node's type stripper, which alone adds ~30 MB to each process's
# RSS. Node keys the entries by user id and V8 flags, so each entry point is
# started here as the user and with the flags its manifest gives it; at run
# time the cache is read-only (readOnlyRootFilesystem) and only read. The
# directory (owned by 65532) comes with the rootfs.
ENV NODE_COMPILE_CACHE=.cache/node
# Smoke tests at build time (exec form: the image has no shell): both entry
# points start, the addon loads on this libc, nft runs.
RUN ["node", "--optimize-for-size", "packages/speaker/src/main.ts", "--help"]
# The heartbeat thread's entry (a worker_thread: it refuses to run alone, after being compiled).
RUN ["node", "--optimize-for-size", "--input-type=module", "-e", "await import('./packages/speaker/src/membership/worker.ts').catch(() => undefined)"]
RUN ["node", "-e", "require('./packages/speaker/native/build/Release/portico_native.node')"]
# The CLI (kubectl exec ... node packages/controller/src/cli/portico.ts) starts
# too; its compile cache entry is not kept (it runs by hand, rarely).
RUN ["node", "-e", "require('node:child_process').execFileSync(process.execPath, ['packages/controller/src/cli/portico.ts', 'help'], { stdio: 'inherit', env: { ...process.env, NODE_DISABLE_COMPILE_CACHE: '1' } })"]
# The controller runs as this user (the manifest also says so); the speaker's
# DaemonSet runs as root with only NET_RAW, NET_ADMIN and NET_BIND_SERVICE.
USER 65532:65532
RUN ["node", "--optimize-for-size", "packages/controller/src/main.ts", "--help"]
CMD ["node", "--optimize-for-size", "packages/controller/src/main.ts"]
