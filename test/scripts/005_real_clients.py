"""Helper of 005_real_clients.sh (not a test by itself).

Runs the README's psycopg 3 example (doc/examples/popsell_pooled.py) as
real clients: several ambassadors at once through pgbouncer in
transaction mode, a client that forgets LOCAL (a plain session setting of
popsell.ambassador_id) on the same pool, and the mail worker on a direct
connection.  Counts every problem: a request that sees a row of another
ambassador or misses one of its own, a forgetful client identified in a
later transaction, any error raised by the driver (protocol errors
included), an outbox row the worker did not send, a worker never woken.

--variant readme runs the example as written; plain_set and auto_prepare
run a copy made wrong on purpose (the session-level setting the README
warns against; psycopg preparing statements through pgbouncer 1.18) and
must be caught.  Exit 0: no problem; 1: problems (listed); 2: the harness
could not run.
"""
import argparse
import importlib.util
import sys
import threading
import time
import traceback
import types

VARIANTS = {
    "readme": [],
    "plain_set": [(
        '    with conn.transaction():\n'
        '        # server-side parameters: SET LOCAL cannot take $1, set_config can\n'
        '        conn.execute("SELECT set_config(\'popsell.ambassador_id\', %s, true)",\n'
        '                     [str(ambassador_id)])\n',
        '    conn.execute("SELECT set_config(\'popsell.ambassador_id\', %s, false)",\n'
        '                 [str(ambassador_id)])\n'
        '    with conn.transaction():\n',
    )],
    "auto_prepare": [("prepare_threshold=None", "prepare_threshold=0")],
}


def load_example(path, variant):
    with open(path) as f:
        text = f.read()
    for old, new in VARIANTS[variant]:
        if old not in text:
            print(f"harness: the example no longer contains {old!r}", file=sys.stderr)
            sys.exit(2)
        text = text.replace(old, new)
    module = types.ModuleType("popsell_pooled_" + variant)
    exec(compile(text, path, "exec"), module.__dict__)
    return module


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--example", required=True)
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="readme")
    ap.add_argument("--pooled", required=True, help="conninfo through pgbouncer")
    ap.add_argument("--direct", required=True, help="conninfo of the mail worker")
    ap.add_argument("--ambassadors", required=True, help="comma-separated ids")
    ap.add_argument("--forgetful", required=True, type=int, help="ambassador id of the forgetful client")
    ap.add_argument("--requests", type=int, default=60)
    args = ap.parse_args()

    ex = load_example(args.example, args.variant)
    ambassadors = [int(a) for a in args.ambassadors.split(",")]
    problems = []
    lock = threading.Lock()
    counters = {"requests": 0, "queued": 0, "sent": 0, "notifies": 0}
    queued_ids = set()
    sent_ids = set()

    def problem(msg):
        with lock:
            problems.append(msg)

    def count(key, n=1):
        with lock:
            counters[key] += n

    # Each ambassador's contacts are named "A<id>-..." by the set-up; the
    # forgetful client's ambassador's too.
    def check_rows(amb, rows, expected_ids, what):
        foreign = [r for r in rows if not str(r[1]).startswith(f"A{amb}-")]
        if foreign:
            problem(f"ambassador {amb} {what}: saw {len(foreign)} row(s) of another ambassador, "
                    f"e.g. {foreign[0][1]}")
        got = {r[0] for r in rows}
        if expected_ids is not None and not expected_ids <= got:
            problem(f"ambassador {amb} {what}: saw {len(got)} of its {len(expected_ids)} contacts")

    def client(amb):
        try:
            conn = ex.connect_pooled(args.pooled)
        except Exception as e:  # noqa: BLE001
            problem(f"ambassador {amb}: cannot connect through the pooler: {e}")
            return
        mine = None
        for i in range(args.requests):
            try:
                rows = ex.as_ambassador(conn, amb, "SELECT id, first_name FROM popsell.my_contacts ORDER BY id")
                count("requests")
                if mine is None:
                    mine = {r[0] for r in rows if str(r[1]).startswith(f"A{amb}-")}
                    if not mine:
                        problem(f"ambassador {amb}: first request saw none of its contacts")
                check_rows(amb, rows, mine, f"request {i}")
                if i % 5 == 2:
                    new = ex.as_ambassador(
                        conn, amb,
                        "INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)"
                        " VALUES (%s, 'crm_manual', %s, %s) RETURNING id",
                        [amb, f"A{amb}-new{i}", f"a{amb}-new{i}@contacts.example.test"])
                    cid = new[0][0]
                    if mine is not None:
                        mine.add(cid)
                    ex.as_ambassador(conn, amb, "SELECT popsell.send_invitation(%s)", [cid])
                    with lock:
                        queued_ids.add(cid)
                    count("requests", 2)
                    count("queued")
                if i % 5 == 4:
                    rows = ex.as_ambassador(
                        conn, amb, "SELECT id, first_name FROM popsell.contacts WHERE first_name LIKE 'A%%'")
                    check_rows(amb, rows, None, f"request {i} (table)")
                    count("requests")
            except Exception as e:  # noqa: BLE001  (protocol errors included)
                problem(f"ambassador {amb} request {i}: {type(e).__name__}: {str(e).strip().splitlines()[0]}")
                try:
                    conn.close()
                except Exception:  # noqa: BLE001
                    pass
                try:
                    conn = ex.connect_pooled(args.pooled)
                except Exception as e2:  # noqa: BLE001
                    problem(f"ambassador {amb}: cannot reconnect: {e2}")
                    return
        conn.close()

    def forgetful():
        # Forgets LOCAL: sets the identity for the session, outside any
        # transaction, then runs a transaction as popsell_ambassador.
        import psycopg
        try:
            conn = psycopg.connect(args.pooled, autocommit=True, prepare_threshold=None)
        except Exception as e:  # noqa: BLE001
            problem(f"forgetful client: cannot connect: {e}")
            return
        for i in range(args.requests):
            try:
                conn.execute("SELECT set_config('popsell.ambassador_id', %s, false)", [str(args.forgetful)])
                with conn.transaction():
                    conn.execute("SET LOCAL ROLE popsell_ambassador")
                    n = conn.execute("SELECT count(*) FROM popsell.contacts").fetchone()[0]
                if n != 0:
                    problem(f"forgetful client, request {i}: a plain SET in an earlier transaction "
                            f"still identified ambassador {args.forgetful} ({n} contacts seen)")
            except Exception as e:  # noqa: BLE001
                problem(f"forgetful client request {i}: {type(e).__name__}: {str(e).strip().splitlines()[0]}")
                return
        conn.close()

    running = {"on": True}

    def on_notify(n):
        if n.channel == "popsell_outbox":
            count("notifies")

    def send(row):
        oid, kind, amb, contact, email = row
        with lock:
            counters["sent"] += 1
            if contact is not None:
                sent_ids.add(contact)
        if kind == "invitation" and (email is None or "@" not in email):
            problem(f"mail worker: invitation {oid} without a readable email")

    def worker():
        try:
            ex.mail_worker(args.direct, send, lambda: running["on"], wait=0.2, on_notify=on_notify)
        except Exception as e:  # noqa: BLE001
            problem(f"mail worker: {type(e).__name__}: {str(e).strip().splitlines()[0]}")
            traceback.print_exc()

    t0 = time.monotonic()
    w = threading.Thread(target=worker, daemon=True)
    w.start()
    threads = [threading.Thread(target=client, args=(a,), daemon=True) for a in ambassadors]
    threads.append(threading.Thread(target=forgetful, daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=45)
        if t.is_alive():
            problem("a client did not finish within 45 s")
    # the worker drains the outbox
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with lock:
            if queued_ids <= sent_ids:
                break
        time.sleep(0.1)
    running["on"] = False
    w.join(timeout=5)
    with lock:
        missing = queued_ids - sent_ids
    if missing:
        problem(f"mail worker: {len(missing)} of {len(queued_ids)} invitations not sent")
    if counters["queued"] and not counters["notifies"]:
        problem("mail worker: never woken by NOTIFY popsell_outbox")
    elapsed = time.monotonic() - t0

    print(f"variant {args.variant}: {len(ambassadors)} ambassadors + 1 forgetful client through the pooler, "
          f"{counters['requests']} requests, {counters['queued']} invitations queued, "
          f"{counters['sent']} outbox rows sent, {counters['notifies']} notifications, {elapsed:.1f} s")
    if problems:
        print(f"{len(problems)} problem(s):")
        for p in problems[:15]:
            print("  " + p)
        if len(problems) > 15:
            print(f"  ... and {len(problems) - 15} more")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
