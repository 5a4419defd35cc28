"""The FastAPI app of bench/requests.py: each request runs four SQL statements on a sqlite3
file and makes one outgoing HTTP request (httpx.AsyncClient, kept alive).

BENCH_DATABASE names the database (the runner creates it fresh for every server start),
BENCH_UPSTREAM the URL of the runner's upstream server.
"""

import os
import sqlite3
from contextlib import closing

import httpx
from fastapi import FastAPI

app = FastAPI()
DATABASE = os.environ["BENCH_DATABASE"]
UPSTREAM = os.environ["BENCH_UPSTREAM"]
# One client for the process: its pool keeps the connection to the upstream alive, as an app should.
client = httpx.AsyncClient(timeout=10)


@app.get("/items/{item_id}")
async def item(item_id: int):
    # sqlite3 straight in the coroutine: a few fast statements, the way many small apps do it
    with closing(sqlite3.connect(DATABASE)) as connection:
        # through a cursor: opentelemetry's sqlite3 instrumentation traces cursors only, not
        # connection.execute (open-telemetry/opentelemetry-python-contrib#3082), and each tool should see the SQL
        cursor = connection.cursor()
        cursor.execute("pragma synchronous = normal")  # WAL without an fsync per commit
        name, price = cursor.execute("select name, price from items where id = ?", (item_id,)).fetchone()
        cursor.execute("insert into visits (item) values (?)", (item_id,))
        visits = cursor.execute("select count(*) from visits where item = ?", (item_id,)).fetchone()[0]
        connection.commit()
    answer = await client.get(f"{UPSTREAM}/price/{item_id}")
    return {"id": item_id, "name": name, "price": price, "visits": visits, "upstream": answer.status_code}
