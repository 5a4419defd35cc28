"""The Flask app of bench/requests.py: each request runs four SQL statements on a sqlite3
file and makes one outgoing HTTP request (requests, over a kept-alive session).

BENCH_DATABASE names the database (the runner creates it fresh for every server start),
BENCH_UPSTREAM the URL of the runner's upstream server.
"""

import os
import sqlite3
from contextlib import closing

import requests
from flask import Flask, jsonify

app = Flask(__name__)
DATABASE = os.environ["BENCH_DATABASE"]
UPSTREAM = os.environ["BENCH_UPSTREAM"]
# One session per worker process: the sync worker serves one request at a time, and a kept-alive
# connection is what an app calling another service does (a connect per request would measure TCP).
session = requests.Session()


@app.route("/items/<int:item_id>")
def item(item_id):
    # a connection per request, as Flask's own tutorial opens one per request context
    with closing(sqlite3.connect(DATABASE)) as connection:
        # through a cursor: opentelemetry's sqlite3 instrumentation traces cursors only, not
        # connection.execute (open-telemetry/opentelemetry-python-contrib#3082), and each tool should see the SQL
        cursor = connection.cursor()
        cursor.execute("pragma synchronous = normal")  # WAL without an fsync per commit
        name, price = cursor.execute("select name, price from items where id = ?", (item_id,)).fetchone()
        cursor.execute("insert into visits (item) values (?)", (item_id,))
        visits = cursor.execute("select count(*) from visits where item = ?", (item_id,)).fetchone()[0]
        connection.commit()
    answer = session.get(f"{UPSTREAM}/price/{item_id}", timeout=10)
    return jsonify(id=item_id, name=name, price=price, visits=visits, upstream=answer.status_code)
