"""popsell from a pooled web service and a mail worker (psycopg 3).

Web requests go through a transaction pooler (pgbouncer, pool_mode =
transaction).  Each request is one explicit transaction that names its
ambassador with set_config(..., true) and becomes popsell_ambassador with
SET LOCAL ROLE: both end with the transaction, so the next client of the
same server connection inherits nothing.  The mail worker LISTENs, which
needs a session of its own: it connects to PostgreSQL directly.
"""
import select

import psycopg


def connect_pooled(conninfo):
    # pgbouncer below 1.21 does not track prepared statements: psycopg must
    # not prepare any (prepare_threshold=None).  autocommit: every request
    # opens and closes its own transaction below.
    return psycopg.connect(conninfo, autocommit=True, prepare_threshold=None)


def as_ambassador(conn, ambassador_id, sql, params=None):
    """Run one request for one ambassador; return its rows (or None)."""
    with conn.transaction():
        # server-side parameters: SET LOCAL cannot take $1, set_config can
        conn.execute("SELECT set_config('popsell.ambassador_id', %s, true)",
                     [str(ambassador_id)])
        conn.execute("SET LOCAL ROLE popsell_ambassador")
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else None


def mail_worker(conninfo, send, keep_going, wait=1.0, on_notify=None):
    """Send what popsell.outbox holds, woken by NOTIFY popsell_outbox.

    conninfo is a direct connection (not the transaction pooler) of a
    popsell_app member.  The notification only wakes the worker: the outbox
    itself says what to send, so nothing is lost while it was not listening.
    """
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if on_notify is not None:
            conn.add_notify_handler(on_notify)
        conn.execute("LISTEN popsell_outbox")
        while keep_going():
            with conn.transaction():
                rows = conn.execute(
                    "SELECT o.id, o.kind, o.ambassador_id, o.contact_id, c.email"
                    "  FROM popsell.outbox o"
                    "  LEFT JOIN popsell.contacts c ON c.id = o.contact_id"
                    " WHERE o.sent_at IS NULL"
                    " ORDER BY o.id LIMIT 100"
                    "   FOR UPDATE OF o SKIP LOCKED").fetchall()
                for row in rows:
                    send(row)
                    conn.execute("UPDATE popsell.outbox SET sent_at = now()"
                                 " WHERE id = %s", [row[0]])
            if not rows:
                # sleep until a notification arrives (or `wait` seconds);
                # the next query reads it
                select.select([conn.fileno()], [], [], wait)
