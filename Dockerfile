# One image for ingest and worker; docker-compose.yml picks the entry point. The app runs compiled: `pnpm build`
# bundles each entry point into dist/ (README, "Production build"), which loads its packages from node_modules and
# reads migrations/ and the console's files from the sources beside it.
FROM node:20-bookworm-slim AS deps
# Node 20's bundled corepack cannot verify the signatures of current pnpm releases; 0.36.0 can, and runs on Node 20
# (pinned: a later release could stop running there).
RUN npm install -g corepack@0.36.0 --no-fund --no-audit --loglevel=error && corepack enable
ENV COREPACK_ENABLE_DOWNLOAD_PROMPT=0
WORKDIR /app
# Packages are fetched from the lockfile alone, so a change of source reuses this layer.
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml ./
RUN pnpm fetch
COPY . .
RUN pnpm install --offline --frozen-lockfile && pnpm build

# Neither pnpm nor its store is needed at run time.
FROM node:20-bookworm-slim
WORKDIR /app
COPY --from=deps /app ./
# Without the service variables the app runs on its embedded parts, which write under ./data.
RUN mkdir -p data && chown node:node data
# Semi-spaces of at most 4 MiB (V8 grows its young generation to 2 × 16 MiB under a long upload's allocations and
# keeps it while busy): the ingest process's peak with a 1 GB plain body 216 → 192 MiB, the worker's 143 → 115, at
# no cost in ingest or load speed measured, ~5 ms more CPU for an analytics answer of thousands of rows
# (docs/performance.md, "Footprint"). The benchmarks and tests run the compiled programs with them.
ENV NODE_OPTIONS=--max-semi-space-size=4
# Two malloc arenas instead of glibc's eight per core: the memory that threads (validation, zlib's) free stays
# in fewer arenas for reuse. The ingest process's peak with a 1 GB body 176 → 168 MiB (gzip), 192 → 183 (plain);
# ingest and the worker's loads no slower (docs/performance.md, "Footprint").
ENV MALLOC_ARENA_MAX=2
USER node
EXPOSE 8080
CMD ["node", "dist/main/start.js"]
