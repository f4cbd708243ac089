# openpacs in a container. Three stages: Node builds the web console, Python builds the wheel
# around it, and the image that runs holds only the installed wheel (no Node.js, no sources),
# run as a non-root user. Build: `docker build -t openpacs .`; with PostgreSQL: docker-compose.yml.
#
# Volumes: /config (openpacs.toml, read at start and written by the console's Settings page),
# /data (the DICOM files and, with SQLite, the index), /logs (one folder per service).
# Ports: 11112 Store SCP (AE STORESCP), 11113 Worklist (WORKLISTSCP), 11114 Query/Retrieve
# (QRSCP), 11115 Print (PRINTSCP), 5000 HTTP (console, REST API, DICOMweb, OHIF).

FROM node:20-bookworm-slim AS console
WORKDIR /build/console
COPY console/package.json console/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY console/ ./
# Vite writes the build to ../src/openpacs/web/static/console (console/vite.config.ts).
RUN npm run build

FROM python:3.11-slim-bookworm AS wheel
WORKDIR /build
COPY pyproject.toml README.md hatch_build.py ./
COPY src/ src/
# The console comes built; without console/ sources here the build hook does not run npm.
COPY --from=console /build/src/openpacs/web/static/console src/openpacs/web/static/console
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OPENPACS_STORAGE__ROOT=/data/storage \
    OPENPACS_DATABASE__URL=sqlite:////data/index.db \
    OPENPACS_LOGGING__DIR=/logs
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# OHIF from the npm registry (checked against its SHA-512); `--build-arg OHIF=0` leaves it out.
ARG OHIF=1
RUN if [ "$OHIF" = "1" ]; then openpacs ohif install; fi
RUN useradd --system --uid 10001 --user-group --home-dir /config openpacs \
    && mkdir -p /config /data /logs \
    && chown openpacs:openpacs /config /data /logs
USER 10001:10001
# ./openpacs.toml is the configuration file when the /config volume holds one.
WORKDIR /config
VOLUME ["/config", "/data", "/logs"]
EXPOSE 11112 11113 11114 11115 5000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=4)"]
STOPSIGNAL SIGINT
CMD ["openpacs", "serve"]
