# syntax=docker/dockerfile:1
# One image for both components: `flowgate operator …` and `flowgate appliance …` (the chart passes the
# subcommand). Same code, same dependencies, one build and one scan, and the two can never be at
# different versions. The operator does not load the native addon; it costs it a few hundred KB.
ARG NODE_IMAGE=node:24-slim

# ---------------------------------------------------------------- build: TypeScript and the native addon
FROM ${NODE_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
# node-gyp builds against the headers the image ships instead of downloading them
ENV npm_config_nodedir=/usr/local
WORKDIR /src
# npm ci runs `prepare` (npm run build:native), which needs the addon's sources and its build script.
COPY package.json package-lock.json ./
COPY scripts/build-native.ts scripts/
COPY native/binding.gyp native/
COPY native/src native/src
RUN npm ci --no-audit --no-fund \
 && test -f native/build/Release/flowgate_io.node
COPY tsconfig.json tsconfig.build.json ./
COPY policy policy
COPY cli cli
COPY operator operator
COPY appliance appliance
# the GWLB stand-in: `flowgate demo` builds its mini-VPC with it
COPY standin standin
RUN npm run build
# appliance/src/io/addon.ts loads ../../../native/build/Release/flowgate_io.node from its own location:
# for dist/appliance/src/io/addon.js that is dist/native/build/Release/.
RUN mkdir -p dist/native/build/Release \
 && cp native/build/Release/flowgate_io.node dist/native/build/Release/

# ---------------------------------------------------------------- production dependencies only
FROM ${NODE_IMAGE} AS deps
WORKDIR /src
COPY package.json package-lock.json ./
# no lifecycle scripts: the addon comes from the build stage, and no production dependency builds anything
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# ---------------------------------------------------------------- runtime
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
# package.json says "type": "module", which the compiled dist/**/*.js need
COPY package.json ./
COPY bin bin
COPY --from=deps /src/node_modules node_modules
COPY --from=build /src/dist dist
# Numeric, so Kubernetes can check runAsNonRoot. The appliance with io=native is started as UID 0 by the
# chart (CAP_NET_RAW for its raw socket, nothing else); everything else runs as this user.
USER 65532:65532
ENTRYPOINT ["node", "/app/bin/flowgate.js"]
CMD ["--help"]
