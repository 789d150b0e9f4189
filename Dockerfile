# One image for every watchfloor service; docker-compose.yml picks the service with `watchfloor run NAME`.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 WATCHFLOOR_LOG_FORMAT=json
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY shared ./shared
COPY services ./services
COPY watchfloor ./watchfloor
COPY migrations ./migrations
RUN pip install --no-cache-dir . && useradd --system --uid 10001 watchfloor
USER watchfloor
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status == 200 else 1)"
ENTRYPOINT ["watchfloor"]
