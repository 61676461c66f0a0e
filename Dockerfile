# warnbus engine image. One image serves every role: `serve --role api|worker|timer`
# (compose.yaml); with no --role it runs them all in one process.
#
#   docker build -t warnbus .
#   docker run --rm warnbus validate /path/to/alert.xml
#
# Redis and the MQTT broker are separate containers (compose.yaml): this image does not
# carry redis-server or mosquitto, so the embedded default is not available in it.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY warnbus ./warnbus
COPY channels ./channels
COPY rules ./rules
COPY config ./config
# Build a wheel here so the runtime image carries neither the sources nor a build cache.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WARNBUS_DATA_DIR=/var/lib/warnbus \
    WARNBUS_PORT=8080
# The journal's volume (compose.yaml) takes the owner of its directory when first made.
RUN groupadd --system --gid 10001 warnbus \
    && useradd --system --uid 10001 --gid warnbus --home-dir /var/lib/warnbus \
       --create-home --shell /usr/sbin/nologin warnbus \
    && install -d -o warnbus -g warnbus /var/lib/warnbus/journal
COPY --from=build /wheels /tmp/wheels
RUN pip install --no-cache-dir /tmp/wheels/*.whl && rm -rf /tmp/wheels
COPY deploy/warnbus.toml /etc/warnbus/warnbus.toml

USER warnbus
WORKDIR /var/lib/warnbus
EXPOSE 8080
# No curl in slim: ask Python. /healthz is 200 only when Redis and the broker answer.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; u = 'http://127.0.0.1:%s/healthz' % os.environ.get('WARNBUS_PORT', '8080'); sys.exit(0 if urllib.request.urlopen(u, timeout=4).status == 200 else 1)"]
ENTRYPOINT ["warnbus"]
CMD ["serve", "--config", "/etc/warnbus/warnbus.toml"]
