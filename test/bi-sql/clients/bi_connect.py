"""Drives the BI SQL endpoint with clickhouse-connect (PyPI), as a Python notebook or
Superset would: connect, list the BI views, run a query with a bound parameter, and try
statements that must be refused. Prints one JSON document for test/bi-sql to check.

usage: bi_connect.py HOST PORT USER PASSWORD EVENT
"""
import json
import sys

import clickhouse_connect

host, port, user, password, event = sys.argv[1:6]
out = {}
client = clickhouse_connect.get_client(host=host, port=int(port), username=user, password=password)
out["version"] = client.server_version
out["views"] = [r[0] for r in client.query("SELECT name FROM system.tables ORDER BY name").result_rows]
out["columns"] = [
    r[0]
    for r in client.query(
        "SELECT name FROM system.columns WHERE table = {t:String} ORDER BY position", parameters={"t": "bi_events"}
    ).result_rows
]
rows = client.query(
    "SELECT workspace_id, event, count() AS n FROM bi_events WHERE event = {e:String} GROUP BY workspace_id, event",
    parameters={"e": event},
).result_rows
out["counts"] = [[r[0], r[1], int(r[2])] for r in rows]
out["workspaces"] = [r[0] for r in client.query("SELECT DISTINCT workspace_id FROM bi_events").result_rows]
refused = {}
for name, sql in [
    ("system_users", "SELECT name FROM system.users"),
    ("file", "SELECT * FROM file('/etc/passwd', 'LineAsString')"),
    ("raw_table", "SELECT count() FROM events"),
    ("drop", "DROP TABLE bi_events"),
]:
    try:
        client.query(sql)
        refused[name] = None
    except Exception as e:  # noqa: BLE001 - the error text is what is checked
        refused[name] = str(e)[:300]
out["refused"] = refused
try:
    clickhouse_connect.get_client(host=host, port=int(port), username=user, password=password + "x").query("SELECT 1")
    out["wrong_password"] = None
except Exception as e:  # noqa: BLE001
    out["wrong_password"] = str(e)[:300]
print(json.dumps(out))
