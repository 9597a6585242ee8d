"""`kb mcp`: the knowledge base for AI assistants, as a Model Context Protocol server on stdio."""

from __future__ import annotations

import logging
import sys

import click

from kb.cli.common import CONTEXT, kb_option, llm_options, open_kb, store_options


@click.command("mcp", context_settings=CONTEXT)
@kb_option
@store_options
@llm_options("What the ask tool answers with: ")
def mcp_command(kb_dir: str | None, llm: str | None, llm_model: str | None, llm_base_url: str | None) -> None:
    """Serve the knowledge base to an AI assistant (Claude Desktop, an IDE, any MCP client) over the
    Model Context Protocol, on stdin/stdout. The client starts this command itself.

    \b
    Tools: search, ask, get_document, list_documents; each document is also a
    resource (kb://document/ID). In the client's configuration (Claude Desktop:
    claude_desktop_config.json):
      {"mcpServers": {"kb": {"command": "/path/to/.venv/bin/kb", "args": ["mcp"],
                             "env": {"KB_DIR": "/path/to/knowledge-base"}}}}
    stdout carries only the protocol; messages go to stderr. Needs the mcp extra.
    Over HTTP instead: kb serve --mcp (at /mcp).
    """
    # lazy: the mcp extra is optional; a missing one is a one-line error with the install command
    from kb.integrations.mcp import TOOLS, create_server

    sdk_logs_to_stderr()
    with open_kb(kb_dir, llm=llm, llm_model=llm_model, llm_base_url=llm_base_url) as kb:
        if not kb.exists:
            click.echo(f"kb: warning: the knowledge base at {kb.path} is empty: `kb ingest PATH` first "
                       "(or set KB_DIR / --kb to yours)", err=True)
        else:  # the model loads now (about a second), not during the first question
            kb.warm()
        server = create_server(kb, llm=llm)
        click.echo(f"kb: MCP server for {kb.path} on stdio (tools: {', '.join(TOOLS)})", err=True)
        server.run("stdio")
    # Leaving the block closed the knowledge base, after any search still running.


def sdk_logs_to_stderr(level: int = logging.WARNING) -> None:
    """The MCP SDK's log messages (a tool that crashed, with its traceback) on stderr, one prefix like
    kb's own. A handler on the root logger first also stops the SDK from installing its own there,
    at INFO, which would log every request and print kb's messages a second time."""
    root = logging.getLogger()
    if any(getattr(h, "kb_sdk", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.kb_sdk = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("kb: %(name)s: %(message)s"))
    handler.addFilter(lambda record: not record.name.startswith("kb"))  # kb's own have their handler (kb.cli.common)
    handler.setLevel(level)
    root.addHandler(handler)
    if root.level > level or root.level == logging.NOTSET:
        root.setLevel(level)
