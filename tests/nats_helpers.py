"""Reading a JetStream stream back in tests."""

from __future__ import annotations

import asyncio
import json


def stream_contents(url: str, stream: str = "COUNCIL") -> list[tuple[str, dict]]:
    """Every message in the stream, in order, read with an ephemeral pull consumer."""

    async def read() -> list[tuple[str, dict]]:
        from pipelines.sinks.publisher import connect  # credentials from the environment

        nc = await connect(url)
        js = nc.jetstream()
        total = (await js.stream_info(stream)).state.messages
        sub = await js.pull_subscribe(">", stream=stream)
        out: list[tuple[str, dict]] = []
        while len(out) < total:
            for m in await sub.fetch(min(total - len(out), 256), timeout=5):
                out.append((m.subject, json.loads(m.data)))
                await m.ack()
        await nc.close()
        return out

    return asyncio.run(read())
