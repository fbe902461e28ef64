# The bot as a container: `docker build -t safeguarding-bot .`, then
#   docker run -e APP_ID=... -e APP_PASSWORD=... -e APP_TENANTID=... -e DATA_KEY=... \
#     -e DATABASE_URL=postgresql://... -v /srv/school.yaml:/config/profile.yaml:ro \
#     -p 3978:3978 safeguarding-bot
# `serve` is the default command; `docker run ... safeguarding-bot migrate` (or `doctor`)
# runs the others. No secret is baked in: everything comes from the environment.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot/ bot/
COPY dialogs/ dialogs/
COPY flows/ flows/
COPY profiles/ profiles/
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
# Pango and fonts for the record PDFs (WeasyPrint): Latin, Hebrew and Arabic (DejaVu), emoji.
# A user with no login and no home of its own; the data folder is its alone (0700).
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
       libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core fonts-noto-color-emoji \
    && rm -rf /var/lib/apt/lists/* \
    && pip install --no-cache-dir --no-index --find-links /wheels safeguarding-bot \
    && rm -rf /wheels \
    && groupadd --system --gid 10001 safeguarding \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin safeguarding \
    && install -d -o 10001 -g 10001 -m 0700 /data
# HOST: every interface in the container (the bot refuses this without APP_ID, so an
# unconfigured container never serves unauthenticated). DATA_DIR: the SQLite file for a
# single school (mount a volume; use DATABASE_URL for PostgreSQL). PROFILE_PATH: mount yours.
ENV HOST=0.0.0.0 \
    PORT=3978 \
    DATA_DIR=/data \
    PROFILE_PATH=/config/profile.yaml
USER 10001:10001
WORKDIR /data
EXPOSE 3978
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3978'), timeout=4)"]
ENTRYPOINT ["safeguarding-bot"]
CMD ["serve"]
