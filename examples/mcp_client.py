"""Talk to babelindex's MCP server as an agent does: start `indexer mcp` over stdio with the
official SDK's client, then call a tool (or list the tools) and print what comes back.

    python examples/mcp_client.py INDEX search '{"query": "Wie bricht ein Vulkan aus?", "k": 2}'
    python examples/mcp_client.py INDEX index_info
    python examples/mcp_client.py INDEX --list-tools [--allow-writes]

A call prints the request and the result the client receives: its text content (what a model
reads) and its structured content (JSON, as the tool's output schema describes it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


async def main(index: str, tool: str | None, arguments: dict, allow_writes: bool) -> None:
    command = shutil.which("indexer")
    args = ["mcp", "--index", index, "--log-level", "warning", *(["--allow-writes"] if allow_writes else [])]
    if command is None:  # not installed as a script: run the module with this Python
        command, args = sys.executable, ["-m", "indexer.cli", *args]
    server = StdioServerParameters(command=command, args=args)
    async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        if tool is None:
            listed = await session.list_tools()
            print(json.dumps(listed.model_dump(mode="json", by_alias=True, exclude_none=True), indent=2))
            return
        print(f"→ tools/call {tool} {json.dumps(arguments, ensure_ascii=False)}")
        result = await session.call_tool(tool, arguments)
        print(f"← isError: {str(result.is_error).lower()}")
        for block in result.content:
            print(getattr(block, "text", block))
        if result.structured_content is not None:
            print("← structuredContent:")
            print(json.dumps(result.structured_content, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("index", help="the index directory")
    parser.add_argument("tool", nargs="?", help="the tool to call")
    parser.add_argument("arguments", nargs="?", default="{}", help="its arguments, a JSON object")
    parser.add_argument("--list-tools", action="store_true", help="print tools/list as the client receives it")
    parser.add_argument("--allow-writes", action="store_true", help="start the server with --allow-writes")
    options = parser.parse_args()
    if options.tool is None and not options.list_tools:
        parser.error("name a tool to call, or give --list-tools")
    tool = None if options.list_tools else options.tool
    asyncio.run(main(options.index, tool, json.loads(options.arguments), options.allow_writes))
