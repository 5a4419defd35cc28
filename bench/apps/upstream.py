"""The upstream server of bench/requests.py: answers every HTTP/1.1 request at once with a
small JSON body, keeping the connection alive. Raw asyncio, so that the service the apps call
costs next to nothing and the numbers are the apps'. It reads a request's body when it has one
(Content-Length), so it also serves as a stand-in Datadog agent for ddtrace's trace uploads.

    python upstream.py      # prints its port on the first line, serves until SIGTERM
"""

import asyncio
import signal
import sys

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    await reader.readexactly(int(line[15:]))
            writer.write(ANSWER)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
