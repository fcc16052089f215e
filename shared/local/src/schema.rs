//! The tables, mirroring the DynamoDB design (pk/sk items with JSON bodies), and their
//! migrations, tracked with `PRAGMA user_version`.

use rusqlite::Connection;
use wf_core::{StoreError, StoreResult};

use crate::db::map_err;

/// Each entry upgrades the schema from version `index` to `index + 1`. Append only.
const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    r#"
    -- Definitions: sk = 'DRAFT' | 'V#000001' | 'META'.
    CREATE TABLE IF NOT EXISTS workflows (
        pk         TEXT NOT NULL,
        sk         TEXT NOT NULL,
        body       TEXT NOT NULL,
        updated_at INTEGER,
        PRIMARY KEY (pk, sk)
    ) WITHOUT ROWID;

    -- Executions: sk = 'EXEC' | 'STEP#<path>' | 'LOOP#<path>' | 'ITER#<path>[0000000003]'.
    -- The extra columns are set on EXEC items only (what the executions list filters on).
    CREATE TABLE IF NOT EXISTS executions (
        pk           TEXT NOT NULL,
        sk           TEXT NOT NULL,
        body         TEXT NOT NULL,
        workflow_id  TEXT,
        started_at   INTEGER,
        status       TEXT,
        trigger_type TEXT,
        version      INTEGER,
        PRIMARY KEY (pk, sk)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS executions_by_workflow
        ON executions (workflow_id, started_at DESC, pk DESC) WHERE sk = 'EXEC';
    CREATE INDEX IF NOT EXISTS executions_by_start
        ON executions (started_at DESC, pk DESC) WHERE sk = 'EXEC';
    -- Only the executions not yet terminal: the sweep and the queued/running filters read live
    -- work, not history (a query repeats this WHERE term literally to use it).
    CREATE INDEX IF NOT EXISTS executions_live
        ON executions (started_at DESC, pk DESC)
        WHERE sk = 'EXEC' AND status IN ('queued', 'running');

    -- Dedupe keys ('<workflowId>#<key>'), kept 24 h.
    CREATE TABLE IF NOT EXISTS dedupe (
        key          TEXT PRIMARY KEY,
        execution_id TEXT NOT NULL,
        expires_at   INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS dedupe_by_expiry ON dedupe (expires_at);

    -- What record.* actions read and write.
    CREATE TABLE IF NOT EXISTS records (
        collection      TEXT NOT NULL,
        id              TEXT NOT NULL,
        data            TEXT NOT NULL,
        idempotency_key TEXT,
        PRIMARY KEY (collection, id)
    ) WITHOUT ROWID;

    -- The step queue: a message is visible when visible_at <= now (ms since the epoch).
    CREATE TABLE IF NOT EXISTS queue (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        body          TEXT NOT NULL,
        visible_at    INTEGER NOT NULL,
        receive_count INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX IF NOT EXISTS queue_by_visibility ON queue (visible_at, id);

    -- The local event bus outbox (replay, inspection).
    CREATE TABLE IF NOT EXISTS events (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        id           TEXT NOT NULL,
        type         TEXT NOT NULL,
        source       TEXT NOT NULL,
        time         INTEGER NOT NULL,
        body         TEXT NOT NULL,
        published_at INTEGER NOT NULL
    );
    "#,
    // 2: one outbox row per event id (a redelivered publish repeats its deterministic id).
    r#"
    DELETE FROM events WHERE seq NOT IN (SELECT MIN(seq) FROM events GROUP BY id);
    CREATE UNIQUE INDEX IF NOT EXISTS events_by_id ON events (id);
    "#,
    // 3: the status and trigger filters of the executions list read indexes made for them,
    // alone and with a workflow, newest first (each matches `ORDER BY started_at DESC, pk
    // DESC` after its equality columns, so a page reads only matching rows; `listing.rs`
    // checks the plans). `executions_by_status` serves `queued`/`running` exactly, so the
    // partial index of live executions goes (one index less to write).
    r#"
    DROP INDEX IF EXISTS executions_live;
    CREATE INDEX IF NOT EXISTS executions_by_status
        ON executions (status, started_at DESC, pk DESC) WHERE sk = 'EXEC';
    CREATE INDEX IF NOT EXISTS executions_by_trigger
        ON executions (trigger_type, started_at DESC, pk DESC) WHERE sk = 'EXEC';
    CREATE INDEX IF NOT EXISTS executions_by_workflow_status
        ON executions (workflow_id, status, started_at DESC, pk DESC) WHERE sk = 'EXEC';
    CREATE INDEX IF NOT EXISTS executions_by_workflow_trigger
        ON executions (workflow_id, trigger_type, started_at DESC, pk DESC) WHERE sk = 'EXEC';
    "#,
];

/// Bring the schema up to date (idempotent; each step in its own transaction).
pub(crate) fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let current: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(map_err)?;
    let current = usize::try_from(current).unwrap_or(0);
    if current > MIGRATIONS.len() {
        return Err(StoreError::Permanent(format!(
            "the database schema (version {current}) is newer than this program (version {}): \
             upgrade wf",
            MIGRATIONS.len()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let txn = conn.transaction().map_err(map_err)?;
        txn.execute_batch(sql).map_err(map_err)?;
        txn.pragma_update(None, "user_version", (index + 1) as i64)
            .map_err(map_err)?;
        txn.commit().map_err(map_err)?;
        tracing::debug!(version = index + 1, "sqlite schema migrated");
    }
    Ok(())
}
