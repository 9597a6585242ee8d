"""`kb serve`: the knowledge base over HTTP (API and web page), models loaded once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from kb.cli.common import CONTEXT, STORE_META, kb_option, llm_options, store_options
from kb.cli.mcp import sdk_logs_to_stderr
from kb.errors import DependencyError, install_command
from kb.server.auth import TOKEN_ENV, api_token, check_bind

if TYPE_CHECKING:
    from kb.watch import Batch


@click.command(context_settings=CONTEXT)
@kb_option
@store_options
@click.option("--host", default="127.0.0.1", envvar="KB_HOST", show_envvar=True,
              help="Address to listen on. Anything but loopback needs KB_API_TOKEN set.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, envvar="KB_PORT", show_envvar=True,
              help="TCP port.")
@llm_options()
@click.option("--docs", "docs", multiple=True, type=click.Path(exists=True, file_okay=False), metavar="DIR",
              help="A folder whose files and subfolders POST /ingest may name by path; repeatable "
              "[default: the current folder].")
@click.option("--uploads", type=click.Path(file_okay=False), metavar="DIR",
              help="Where uploaded files are kept (they are served back as sources) "
              "[default: uploads/ in the KB folder].")
@click.option("--max-upload-mb", type=click.FloatRange(0, min_open=True), default=100.0, envvar="KB_MAX_UPLOAD_MB",
              show_envvar=True, help="Largest upload (one request, all its files).")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]), default="info",
              help="Server log level (access log at info).")
@click.option("--watch", "watched", multiple=True, type=click.Path(exists=True), metavar="PATH",
              help="Keep the knowledge base in step with this folder (or file) as it changes, as `kb watch` "
              "does; repeatable.")
@click.option("--mcp", "with_mcp", is_flag=True,
              help="Also serve the Model Context Protocol (streamable HTTP) at /mcp, for AI assistants; behind "
              "the API token when one is set. Needs the mcp extra.")
def serve(kb_dir: str | None, host: str, port: int, llm: str | None, llm_model: str | None, llm_base_url: str | None,
          docs: tuple[str, ...], uploads: str | None, max_upload_mb: float, log_level: str, with_mcp: bool,
          watched: tuple[str, ...]) -> None:
    """Serve the knowledge base over HTTP: an API (POST /search, /ask, /ingest; GET /ask/stream, /status,
    /documents/ID; OpenAPI at /docs) and a web page at / to ask questions and open the cited pages.

    \b
    Listens on 127.0.0.1 unless told otherwise. On any other address, set
    KB_API_TOKEN to a long random secret first: every API request must then
    send `Authorization: Bearer <token>`.
    """
    token = api_token()
    check_bind(host, token)  # before loading any model
    if token and len(token) < 16:
        click.echo(f"kb: warning: {TOKEN_ENV} is short ({len(token)} characters); use 32 or more random ones",
                   err=True)
    try:
        # lazy: the serve and mcp extras (uvicorn, FastAPI, mcp) are optional
        import uvicorn
    except ImportError as e:
        raise DependencyError(f"kb serve needs uvicorn and FastAPI: {install_command('serve')}") from e
    if with_mcp:  # before loading any model: a missing extra is a one-line error with the install command
        # lazy: the serve and mcp extras (uvicorn, FastAPI, mcp) are optional
        from kb.integrations.mcp import TOOLS, create_server, http_app

        sdk_logs_to_stderr()
    # lazy: the serve and mcp extras (uvicorn, FastAPI, mcp) are optional
    from kb.server.app import create_app, mount

    ctx = click.get_current_context()
    store: dict[str, Any] = ctx.meta.get(STORE_META, {})
    click.echo("kb: loading the knowledge base and its models…", err=True)
    app = create_app(kb_dir, llm=llm, token=token, docs=list(docs) or None, uploads=uploads,
                     max_upload_mb=max_upload_mb, llm_model=llm_model, llm_base_url=llm_base_url, **store)
    svc = app.state.service
    if with_mcp:  # the same knowledge base and models as the API's
        mount(app, "/mcp", http_app(create_server(svc.kb, llm=svc.llm or llm), path="/mcp", host=host))
    shown = f"[{host}]" if ":" in host else host
    if svc.llm_error:
        click.echo(click.style(f"kb: {svc.llm_error}; answering from the passages' own sentences (a model server that "
                               "comes up later is used; a GGUF file is tried again when kb serve restarts)",
                               fg="yellow"), err=True)
    answers = svc.llm.name if svc.llm else "none, extractive"
    click.echo(f"kb: serving {svc.path} at http://{shown}:{port}/ (LLM: {answers}; "
               f"API token: {'required' if token else 'off'})", err=True)
    if with_mcp:
        click.echo(f"kb: MCP (streamable HTTP) at http://{shown}:{port}/mcp (tools: {', '.join(TOOLS)})", err=True)
    if watched:  # in the background: the first pass is a job of the server's writer, as every pass is

        def tell(batch: Batch) -> None:
            if batch.error:
                click.echo(f"kb watch: the changes could not be ingested yet ({batch.error}); trying again", err=True)
            for line in batch.lines():
                click.echo(f"kb watch: {line}", err=True)

        svc.watch(list(watched), on_batch=tell)
        click.echo(f"kb: watching {', '.join(watched)}", err=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
