//! `SqliteStore`: the definition, execution and record stores on one SQLite file.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params, params_from_iter};
use serde_json::Value;
use serde_json::value::RawValue;
use wf_core::damaged::{DamagedExecution, damaged_execution, damaged_step, ulid_time_ms};
use wf_core::execution::{
    ClaimOutcome, CreateOutcome, DedupeKey, ExecutionPage, ExecutionQuery, ExecutionRecord,
    ExecutionStatus, ExecutionUpdate, IterationCount, LoopState, StepKey, StepRecord, StepStatus,
    sort_steps,
};
use wf_core::keys::{
    DRAFT_SK, EXEC_SK, LOOP_ITEMS_PER_PAGE, MARK_SK, META_SK, STEP_PREFIX, cut_page, iter_prefix,
    iter_sk, iteration_of, loop_item_page, loop_items_sk, loop_sk, page_size, rejection_sk,
    rejections_pk, step_sk, version_sk,
};
use wf_core::model::Workflow;
use wf_core::ports::{
    DefinitionStore, ExecutionStore, REJECTIONS_KEPT_LOCALLY, RecordCreate, RecordStore,
    WorkflowMeta,
};
use wf_core::rejection::{EventRejection, RejectionPage};
use wf_core::{StoreError, StoreResult};

use crate::bus::LocalEventBus;
use crate::db::{Db, map_err};
use crate::items::{
    MAX_ITEM_BYTES, exec_items_with_prefix, from_body, get_exec_item, load_exec_item, prefix_upper,
    put_exec_item, to_body,
};
use crate::queue::{QueueConfig, SqliteQueue};

/// The local store: every table in one SQLite file (WAL, one writer thread with group commit,
/// read-only connections for reads). Cheap to clone; clones share the file and the writer.
#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) db: Db,
    path: PathBuf,
    item_limit: usize,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Delete every row of partition `pk` with `sql` (`DELETE FROM <table> WHERE pk = ?1`).
    async fn delete_partition(&self, sql: &'static str, pk: &str) -> StoreResult<()> {
        let pk = pk.to_string();
        self.db
            .write(move |txn| {
                txn.execute(sql, params![pk]).map_err(map_err)?;
                Ok(())
            })
            .await
    }

    /// One `workflows` item, decoded.
    async fn workflow_item<T: serde::de::DeserializeOwned + Send + 'static>(
        &self, workflow_id: &str, sk: String,
    ) -> StoreResult<Option<T>> {
        let pk = workflow_id.to_string();
        self.db
            .read(move |conn| {
                get_workflow_body(conn, &pk, &sk)?
                    .map(|b| from_body(&b, &pk, &sk))
                    .transpose()
            })
            .await
    }

    /// Open (or create) the database file, migrate its schema and start the writer thread.
    /// Blocks briefly (file open + migration): call it at startup.
    pub fn open(path: impl AsRef<Path>) -> StoreResult<Self> {
        let path = path.as_ref().to_path_buf();
        let db = Db::open(&path)?;
        tracing::debug!(path = %path.display(), "sqlite store opened");
        Ok(Self {
            db,
            path,
            item_limit: MAX_ITEM_BYTES,
        })
    }

    /// Write transactions committed so far; each holds a whole batch of writes (group commit),
    /// so this grows slower than the number of writes under load. For metrics and tests.
    pub fn write_commits(&self) -> u64 {
        self.db.commit_count()
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The task queue on the same file, sharing this store's writer.
    pub fn queue(&self, config: QueueConfig) -> SqliteQueue {
        SqliteQueue::new(self.db.clone(), config)
    }

    /// The local event bus on the same file (outbox table + in-process broadcast).
    pub fn event_bus(&self) -> LocalEventBus {
        LocalEventBus::new(self.db.clone())
    }

    /// Delete dedupe keys that expired at or before `now` (the local stand-in for DynamoDB TTL).
    /// Returns how many were deleted.
    pub async fn purge_expired_dedupe(&self, now: i64) -> StoreResult<usize> {
        self.db
            .write(move |txn| {
                txn.execute("DELETE FROM dedupe WHERE expires_at <= ?1", params![now])
                    .map_err(map_err)
            })
            .await
    }

    /// Ids of executions that started before `before` (for the retention sweep), oldest first.
    pub async fn executions_started_before(
        &self, before: i64, limit: usize,
    ) -> StoreResult<Vec<String>> {
        let limit = limit as i64;
        self.db
            .read(move |conn| {
                let mut st = conn
                    .prepare_cached(
                        "SELECT pk FROM executions WHERE sk = 'EXEC' AND started_at < ?1
                         ORDER BY started_at, pk LIMIT ?2",
                    )
                    .map_err(map_err)?;
                let rows = st
                    .query_map(params![before, limit], |r| r.get::<_, String>(0))
                    .map_err(map_err)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
            })
            .await
    }
}

// ---------------------------------------------------------------------------------------------
// Definitions

/// Put (insert or replace) a `workflows` item.
fn put_workflow_item(
    txn: &rusqlite::Connection, pk: &str, sk: &str, body: &str, updated_at: i64,
) -> StoreResult<()> {
    txn.prepare_cached(
        "INSERT INTO workflows (pk, sk, body, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (pk, sk) DO UPDATE
         SET body = excluded.body, updated_at = excluded.updated_at",
    )
    .and_then(|mut st| st.execute(params![pk, sk, body, updated_at]))
    .map_err(map_err)?;
    Ok(())
}

fn get_workflow_body(
    conn: &rusqlite::Connection, pk: &str, sk: &str,
) -> StoreResult<Option<String>> {
    conn.prepare_cached("SELECT body FROM workflows WHERE pk = ?1 AND sk = ?2")
        .and_then(|mut st| st.query_row(params![pk, sk], |r| r.get(0)).optional())
        .map_err(map_err)
}

#[async_trait]
impl DefinitionStore for SqliteStore {
    async fn put_draft(&self, workflow_id: &str, draft: &Value, now: i64) -> StoreResult<()> {
        let pk = workflow_id.to_string();
        let body = to_body(draft, &pk, DRAFT_SK, self.item_limit)?;
        self.db
            .write(move |txn| put_workflow_item(txn, &pk, DRAFT_SK, &body, now))
            .await
    }

    async fn get_draft(&self, workflow_id: &str) -> StoreResult<Option<Value>> {
        self.workflow_item(workflow_id, DRAFT_SK.to_string()).await
    }

    async fn put_version(&self, workflow: &Workflow, version: u32) -> StoreResult<()> {
        let pk = workflow.id.clone();
        let sk = version_sk(version);
        let body = to_body(workflow, &pk, &sk, self.item_limit)?;
        self.db
            .write(move |txn| {
                let inserted = txn
                    .execute(
                        "INSERT INTO workflows (pk, sk, body) VALUES (?1, ?2, ?3)
                         ON CONFLICT (pk, sk) DO NOTHING",
                        params![pk, sk, body],
                    )
                    .map_err(map_err)?;
                if inserted == 0 {
                    return Err(StoreError::Conflict(format!(
                        "workflow {pk} version {version} exists already"
                    )));
                }
                Ok(())
            })
            .await
    }

    async fn get_version(&self, workflow_id: &str, version: u32) -> StoreResult<Option<Workflow>> {
        self.workflow_item(workflow_id, version_sk(version)).await
    }

    async fn get_meta(&self, workflow_id: &str) -> StoreResult<Option<WorkflowMeta>> {
        self.workflow_item(workflow_id, META_SK.to_string()).await
    }

    async fn put_meta(
        &self, meta: &WorkflowMeta, expected_updated_at: Option<i64>,
    ) -> StoreResult<()> {
        let pk = meta.id.clone();
        let body = to_body(meta, &pk, META_SK, self.item_limit)?;
        let updated_at = meta.updated_at;
        self.db
            .write(move |txn| {
                let stored: Option<WorkflowMeta> = get_workflow_body(txn, &pk, META_SK)?
                    .map(|b| from_body(&b, &pk, META_SK))
                    .transpose()?;
                match (expected_updated_at, &stored) {
                    (None, None) => {}
                    (Some(expected), Some(stored)) if stored.updated_at == expected => {}
                    (None, Some(_)) => {
                        return Err(StoreError::Conflict(format!(
                            "workflow {pk} META exists already"
                        )));
                    }
                    (Some(expected), Some(stored)) => {
                        return Err(StoreError::Conflict(format!(
                            "workflow {pk} META changed (updatedAt {} , expected {expected})",
                            stored.updated_at
                        )));
                    }
                    (Some(_), None) => {
                        return Err(StoreError::Conflict(format!(
                            "workflow {pk} META does not exist"
                        )));
                    }
                }
                put_workflow_item(txn, &pk, META_SK, &body, updated_at)
            })
            .await
    }

    async fn list_metas(&self) -> StoreResult<Vec<WorkflowMeta>> {
        self.db
            .read(move |conn| {
                let mut st = conn
                    .prepare_cached("SELECT pk, body FROM workflows WHERE sk = ?1 ORDER BY pk")
                    .map_err(map_err)?;
                let rows = st
                    .query_map(params![META_SK], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                    })
                    .map_err(map_err)?;
                let mut out = Vec::new();
                for row in rows {
                    let (pk, body) = row.map_err(map_err)?;
                    out.push(from_body(&body, &pk, META_SK)?);
                }
                Ok(out)
            })
            .await
    }

    async fn delete_workflow(&self, workflow_id: &str) -> StoreResult<()> {
        self.delete_partition("DELETE FROM workflows WHERE pk = ?1", workflow_id)
            .await
    }
}

// ---------------------------------------------------------------------------------------------
// Executions

fn load_execution(conn: &rusqlite::Connection, id: &str) -> StoreResult<Option<ExecutionRecord>> {
    load_exec_item(conn, id, EXEC_SK)
}

/// An `EXEC` row as listing and `get_execution` read it: the body, and the columns kept apart
/// for filtering (what a damaged record's stand-in still says).
struct ExecRow {
    pk: String,
    body: String,
    workflow_id: String,
    started_at: i64,
    trigger_type: String,
    version: i64,
}

fn exec_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ExecRow> {
    Ok(ExecRow {
        pk: r.get(0)?,
        body: r.get(1)?,
        workflow_id: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
        started_at: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
        trigger_type: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
        version: r.get::<_, Option<i64>>(5)?.unwrap_or(0),
    })
}

impl ExecRow {
    /// The record, or its `damaged` stand-in when the body cannot be decoded: one bad record
    /// never fails a list, a page or the sweeper (wf_core::damaged).
    fn into_record(self) -> ExecutionRecord {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            tracing::warn!(execution_id = %self.pk, error = %e, "damaged execution record");
            let known = DamagedExecution {
                id: &self.pk,
                workflow_id: &self.workflow_id,
                version: u32::try_from(self.version).unwrap_or(0),
                started_at: self.started_at,
                trigger: &self.trigger_type,
            };
            damaged_execution(&known, &e.to_string())
        })
    }
}

fn put_execution(
    conn: &rusqlite::Connection, record: &ExecutionRecord, body: &str,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO executions
             (pk, sk, body, workflow_id, started_at, status, trigger_type, version)
         VALUES (?1, 'EXEC', ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (pk, sk) DO UPDATE SET
             body = excluded.body, workflow_id = excluded.workflow_id,
             started_at = excluded.started_at, status = excluded.status,
             trigger_type = excluded.trigger_type, version = excluded.version",
    )
    .and_then(|mut st| {
        st.execute(params![
            record.id,
            body,
            record.workflow_id,
            record.started_at,
            record.status.as_str(),
            record.trigger.kind,
            record.version,
        ])
    })
    .map_err(map_err)?;
    Ok(())
}

/// A step record of one execution, encoded for its row (encoded before the write job, so a
/// record over the size limit fails before anything is written).
struct StepRow {
    execution_id: String,
    record: StepRecord,
    sk: String,
    body: String,
}

impl StepRow {
    fn new(execution_id: &str, record: &StepRecord, limit: usize) -> StoreResult<Self> {
        let sk = step_sk(&record.path);
        let body = to_body(record, execution_id, &sk, limit)?;
        Ok(Self {
            execution_id: execution_id.to_string(),
            record: record.clone(),
            sk,
            body,
        })
    }

    fn put(&self, conn: &rusqlite::Connection) -> StoreResult<()> {
        put_exec_item(conn, &self.execution_id, &self.sk, &self.body)
    }

    fn load_stored(&self, conn: &rusqlite::Connection) -> StoreResult<Option<StepRecord>> {
        load_step(conn, &self.execution_id, &self.record.path)
    }
}

/// Put a step record as [`ExecutionStore::claim_step`] does: unless the stored one is not
/// claimable (held, finished), which is returned instead.
fn claim_in(conn: &rusqlite::Connection, row: &StepRow, now: i64) -> StoreResult<ClaimOutcome> {
    if let Some(stored) = row.load_stored(conn)?
        && !claimable(&stored, &row.record, now)
    {
        return Ok(ClaimOutcome::Held(stored));
    }
    row.put(conn)?;
    Ok(ClaimOutcome::Claimed)
}

fn load_step(
    conn: &rusqlite::Connection, execution_id: &str, path: &str,
) -> StoreResult<Option<StepRecord>> {
    load_exec_item(conn, execution_id, &step_sk(path))
}

fn load_loop(
    conn: &rusqlite::Connection, execution_id: &str, loop_path: &str,
) -> StoreResult<Option<LoopState>> {
    load_exec_item(conn, execution_id, &loop_sk(loop_path))
}

/// Whether a claim of `new` may replace `stored` (see `ExecutionStore::claim_step`).
fn claimable(stored: &StepRecord, new: &StepRecord, now: i64) -> bool {
    match stored.status {
        // A running record without a lease is treated as expired: nobody can hold it.
        StepStatus::Running => {
            stored.lease_until.is_none_or(|lease| lease <= now) && stored.attempts <= new.attempts
        }
        StepStatus::Retrying => stored.attempts < new.attempts,
        _ => false,
    }
}

/// What the opaque cursor of `list_executions` holds: the last item's start time and id.
fn cursor_key(started_at: i64, id: &str) -> String {
    format!("{started_at}\n{id}")
}

fn decode_cursor(cursor: &str) -> StoreResult<(i64, String)> {
    let text = wf_core::keys::decode_cursor(cursor);
    match text.as_deref().and_then(|t| t.split_once('\n')) {
        Some((started_at, id)) => match started_at.parse() {
            Ok(ms) => Ok((ms, id.to_string())),
            Err(_) => Err(StoreError::Invalid(format!("invalid cursor {cursor:?}"))),
        },
        None => Err(StoreError::Invalid(format!("invalid cursor {cursor:?}"))),
    }
}

#[async_trait]
impl ExecutionStore for SqliteStore {
    async fn create_execution(
        &self, execution: &ExecutionRecord, dedupe: Option<&DedupeKey>,
    ) -> StoreResult<CreateOutcome> {
        self.create_execution_with_steps(execution, dedupe, &[])
            .await
    }

    async fn create_execution_with_steps(
        &self, execution: &ExecutionRecord, dedupe: Option<&DedupeKey>, steps: &[StepRecord],
    ) -> StoreResult<CreateOutcome> {
        let record = execution.clone();
        let body = to_body(&record, &record.id, EXEC_SK, self.item_limit)?;
        let steps = steps
            .iter()
            .map(|step| StepRow::new(&record.id, step, self.item_limit))
            .collect::<StoreResult<Vec<_>>>()?;
        let dedupe = dedupe.cloned();
        let limit = self.item_limit;
        self.db
            .write(move |txn| {
                // "Now" for the dedupe key's expiry is the execution's start: the trigger sets
                // it from its clock, so an injected clock governs dedupe as well.
                let now = record.started_at;
                if let Some(key) = &dedupe {
                    let existing: Option<(String, i64)> = txn
                        .prepare_cached(
                            "SELECT execution_id, expires_at FROM dedupe WHERE key = ?1",
                        )
                        .and_then(|mut st| {
                            st.query_row(params![key.key], |r| Ok((r.get(0)?, r.get(1)?)))
                                .optional()
                        })
                        .map_err(map_err)?;
                    if let Some((first, expires_at)) = existing
                        && expires_at > now
                        && first != record.id
                    {
                        return Ok(CreateOutcome::Duplicate(first));
                    }
                }
                match load_execution(txn, &record.id)? {
                    Some(mut stored) if stored.same_execution(&record) => {
                        // A redelivered create: the steps stored are kept, and the status is
                        // ours only if every step is (the port's rule).
                        let mut all_written = true;
                        for step in &steps {
                            let claimed = claim_in(txn, step, now)?;
                            all_written &= claimed == ClaimOutcome::Claimed;
                        }
                        if all_written
                            && record.status != ExecutionStatus::Queued
                            && stored.apply(&record.as_update())
                        {
                            let body = to_body(&stored, &record.id, EXEC_SK, limit)?;
                            put_execution(txn, &stored, &body)?;
                        }
                    }
                    Some(_) => {
                        return Err(StoreError::Conflict(format!(
                            "execution {} exists already and is a different execution",
                            record.id
                        )));
                    }
                    None => {
                        put_execution(txn, &record, &body)?;
                        for step in &steps {
                            step.put(txn)?;
                        }
                    }
                }
                if let Some(key) = &dedupe {
                    txn.prepare_cached(
                        "INSERT INTO dedupe (key, execution_id, expires_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT (key) DO UPDATE SET
                             execution_id = excluded.execution_id,
                             expires_at = excluded.expires_at",
                    )
                    .and_then(|mut st| st.execute(params![key.key, record.id, key.expires_at]))
                    .map_err(map_err)?;
                }
                Ok(CreateOutcome::Created)
            })
            .await
    }

    async fn get_execution(&self, id: &str) -> StoreResult<Option<ExecutionRecord>> {
        let id = id.to_string();
        self.db
            .read(move |conn| {
                let row = conn
                    .prepare_cached(
                        "SELECT pk, body, workflow_id, started_at, trigger_type, version
                         FROM executions WHERE pk = ?1 AND sk = 'EXEC'",
                    )
                    .and_then(|mut st| st.query_row(params![id], exec_row).optional())
                    .map_err(map_err)?;
                Ok(row.map(ExecRow::into_record))
            })
            .await
    }

    async fn get_execution_status(&self, id: &str) -> StoreResult<Option<ExecutionStatus>> {
        let id = id.to_string();
        self.db
            .read(move |conn| {
                let status: Option<Option<String>> = conn
                    .prepare_cached("SELECT status FROM executions WHERE pk = ?1 AND sk = 'EXEC'")
                    .and_then(|mut st| st.query_row(params![id], |r| r.get(0)).optional())
                    .map_err(map_err)?;
                Ok(status.map(|s| {
                    // The column mirrors the body's status; a row without one reads as damaged
                    // would (failed), as `get_execution` would answer.
                    s.as_deref()
                        .and_then(ExecutionStatus::parse)
                        .unwrap_or(ExecutionStatus::Failed)
                }))
            })
            .await
    }

    async fn update_execution(&self, id: &str, update: &ExecutionUpdate) -> StoreResult<bool> {
        let id = id.to_string();
        let update = update.clone();
        let limit = self.item_limit;
        self.db
            .write(move |txn| {
                let Some(mut record) = load_execution(txn, &id)? else {
                    return Err(StoreError::NotFound(format!("execution {id}")));
                };
                if !record.apply(&update) {
                    return Ok(false);
                }
                let body = to_body(&record, &id, EXEC_SK, limit)?;
                put_execution(txn, &record, &body)?;
                Ok(true)
            })
            .await
    }

    async fn list_executions(&self, query: &ExecutionQuery) -> StoreResult<ExecutionPage> {
        let query = query.clone();
        let limit = page_size(query.limit);
        let cursor = query.cursor.as_deref().map(decode_cursor).transpose()?;
        self.db
            .read(move |conn| {
                let (sql, args) = crate::listing::executions_sql(&query, cursor.as_ref(), limit);
                let mut st = conn.prepare_cached(&sql).map_err(map_err)?;
                let rows = st
                    .query_map(params_from_iter(args.iter()), exec_row)
                    .map_err(map_err)?;
                let rows = rows
                    .map(|row| {
                        let record = row.map_err(map_err)?.into_record();
                        Ok((cursor_key(record.started_at, &record.id), record))
                    })
                    .collect::<StoreResult<Vec<_>>>()?;
                let (items, next_cursor) = cut_page(rows, limit);
                Ok(ExecutionPage { items, next_cursor })
            })
            .await
    }

    async fn delete_execution(&self, id: &str) -> StoreResult<()> {
        self.delete_partition("DELETE FROM executions WHERE pk = ?1", id)
            .await
    }

    async fn get_step(&self, execution_id: &str, path: &str) -> StoreResult<Option<StepRecord>> {
        let (id, path) = (execution_id.to_string(), path.to_string());
        self.db.read(move |conn| load_step(conn, &id, &path)).await
    }

    async fn list_steps(&self, execution_id: &str) -> StoreResult<Vec<StepRecord>> {
        let id = execution_id.to_string();
        self.db
            .read(move |conn| {
                let mut out = Vec::new();
                for (sk, body) in exec_items_with_prefix(conn, &id, STEP_PREFIX)? {
                    out.push(decode_step(&id, &sk, &body));
                }
                sort_steps(&mut out);
                Ok(out)
            })
            .await
    }

    async fn list_step_keys(&self, execution_id: &str) -> StoreResult<Vec<StepKey>> {
        let id = execution_id.to_string();
        self.db
            .read(move |conn| {
                // Only the three fields, read by SQLite (not the records' input and output).
                let mut st = conn
                    .prepare_cached(
                        "SELECT sk,
                                CASE WHEN json_valid(body) THEN json_extract(body, '$.startedAt') END,
                                CASE WHEN json_valid(body) THEN json_extract(body, '$.next') END
                         FROM executions WHERE pk = ?1 AND sk >= ?2 AND sk < ?3",
                    )
                    .map_err(map_err)?;
                let rows = st
                    .query_map(
                        params![id, STEP_PREFIX, prefix_upper(STEP_PREFIX)],
                        |r| {
                            Ok((
                                r.get::<_, String>(0)?,
                                r.get::<_, Option<String>>(1).ok().flatten(),
                                r.get::<_, Option<String>>(2).ok().flatten(),
                            ))
                        },
                    )
                    .map_err(map_err)?;
                let fallback = ulid_time_ms(&id).unwrap_or(0);
                rows.map(|row| {
                    let (sk, started_at, next) = row.map_err(map_err)?;
                    Ok(StepKey {
                        path: sk.strip_prefix(STEP_PREFIX).unwrap_or(&sk).to_string(),
                        // A damaged record shows the execution's start (as list_steps does).
                        started_at: started_at
                            .as_deref()
                            .and_then(wf_core::time_fmt::parse_ms)
                            .unwrap_or(fallback),
                        next,
                    })
                })
                .collect()
            })
            .await
    }

    async fn get_steps(
        &self, execution_id: &str, paths: &[String],
    ) -> StoreResult<Vec<StepRecord>> {
        let id = execution_id.to_string();
        let paths = paths.to_vec();
        self.db
            .read(move |conn| {
                let mut out = Vec::with_capacity(paths.len());
                for path in &paths {
                    let sk = step_sk(path);
                    if let Some(body) = get_exec_item(conn, &id, &sk)? {
                        out.push(decode_step(&id, &sk, &body));
                    }
                }
                Ok(out)
            })
            .await
    }

    async fn claim_step(
        &self, execution_id: &str, record: &StepRecord, now: i64,
    ) -> StoreResult<ClaimOutcome> {
        let row = StepRow::new(execution_id, record, self.item_limit)?;
        self.db.write(move |txn| claim_in(txn, &row, now)).await
    }

    async fn finish_step(&self, execution_id: &str, record: &StepRecord) -> StoreResult<bool> {
        let row = StepRow::new(execution_id, record, self.item_limit)?;
        self.db
            .write(move |txn| {
                match row.load_stored(txn)? {
                    Some(stored)
                        if stored.status == StepStatus::Running
                            && stored.attempts == row.record.attempts => {}
                    _ => return Ok(false),
                }
                row.put(txn)?;
                Ok(true)
            })
            .await
    }

    async fn renew_lease(
        &self, execution_id: &str, claim: &StepRecord, lease_until: i64,
    ) -> StoreResult<bool> {
        let id = execution_id.to_string();
        let claim = claim.clone();
        let sk = step_sk(&claim.path);
        let limit = self.item_limit;
        self.db
            .write(move |txn| {
                let mut stored = match load_step(txn, &id, &claim.path)? {
                    Some(stored)
                        if stored.status == StepStatus::Running
                            && stored.attempts == claim.attempts
                            && stored.lease_lost == claim.lease_lost =>
                    {
                        stored
                    }
                    _ => return Ok(false),
                };
                stored.lease_until = Some(lease_until);
                let body = to_body(&stored, &id, &sk, limit)?;
                put_exec_item(txn, &id, &sk, &body)?;
                Ok(true)
            })
            .await
    }

    async fn init_loop(
        &self, execution_id: &str, loop_path: &str, state: &LoopState, items: &[Value],
    ) -> StoreResult<LoopState> {
        let id = execution_id.to_string();
        let loop_path = loop_path.to_string();
        let state = *state;
        let sk = loop_sk(&loop_path);
        let body = to_body(&state, &id, &sk, self.item_limit)?;
        let pages = items
            .chunks(LOOP_ITEMS_PER_PAGE as usize)
            .zip(0u32..)
            .map(|(page, n)| {
                let page_sk = loop_items_sk(&loop_path, n);
                to_body(page, &id, &page_sk, self.item_limit).map(|b| (page_sk, b))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.db
            .write(move |txn| {
                if let Some(stored) = load_loop(txn, &id, &loop_path)? {
                    return Ok(stored);
                }
                for (page_sk, page) in &pages {
                    put_exec_item(txn, &id, page_sk, page)?;
                }
                put_exec_item(txn, &id, &sk, &body)?;
                Ok(state)
            })
            .await
    }

    async fn loop_item(
        &self, execution_id: &str, loop_path: &str, index: u32,
    ) -> StoreResult<Option<Value>> {
        let (page, offset) = loop_item_page(index);
        let (id, sk) = (execution_id.to_string(), loop_items_sk(loop_path, page));
        self.db
            .read(move |conn| {
                let Some(body) = get_exec_item(conn, &id, &sk)? else {
                    return Ok(None);
                };
                // Only the wanted item is decoded; the others stay raw text.
                let raw: Vec<&RawValue> = serde_json::from_str(&body).map_err(|e| {
                    StoreError::Permanent(format!("cannot decode item {id}/{sk}: {e}"))
                })?;
                raw.get(offset)
                    .map(|item| from_body(item.get(), &id, &sk))
                    .transpose()
            })
            .await
    }

    async fn get_loop(
        &self, execution_id: &str, loop_path: &str,
    ) -> StoreResult<Option<LoopState>> {
        let (id, loop_path) = (execution_id.to_string(), loop_path.to_string());
        self.db
            .read(move |conn| load_loop(conn, &id, &loop_path))
            .await
    }

    async fn fail_loop(&self, execution_id: &str, loop_path: &str) -> StoreResult<()> {
        let (id, loop_path) = (execution_id.to_string(), loop_path.to_string());
        let limit = self.item_limit;
        self.db
            .write(move |txn| {
                let Some(mut state) = load_loop(txn, &id, &loop_path)? else {
                    return Err(StoreError::NotFound(format!("loop {loop_path} of {id}")));
                };
                if !state.failed {
                    state.failed = true;
                    let sk = loop_sk(&loop_path);
                    let body = to_body(&state, &id, &sk, limit)?;
                    put_exec_item(txn, &id, &sk, &body)?;
                }
                Ok(())
            })
            .await
    }

    /// One transaction for the whole batch: each iteration's `ITER#` row and the counter's
    /// decrement commit together, so a batch is counted entirely or not at all.
    async fn count_iterations(
        &self, execution_id: &str, loop_path: &str, results: &[(u32, Value)],
    ) -> StoreResult<IterationCount> {
        let (id, loop_path) = (execution_id.to_string(), loop_path.to_string());
        let rows = results
            .iter()
            .map(|(index, result)| {
                let sk = iter_sk(&loop_path, *index);
                let body = to_body(result, &id, &sk, self.item_limit)?;
                Ok((*index, sk, body))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let limit = self.item_limit;
        self.db
            .write(move |txn| {
                let Some(mut state) = load_loop(txn, &id, &loop_path)? else {
                    return Err(StoreError::NotFound(format!("loop {loop_path} of {id}")));
                };
                let mut counted_now = false;
                for (index, iter_key, iter_body) in &rows {
                    if get_exec_item(txn, &id, iter_key)?.is_some() {
                        continue; // counted before (a redelivery): its first result stays
                    }
                    if *index >= state.total {
                        return Err(StoreError::Permanent(format!(
                            "loop {loop_path} of {id} has {} items; there is no iteration {index}",
                            state.total
                        )));
                    }
                    if state.remaining == 0 {
                        return Err(StoreError::Conflict(format!(
                            "loop {loop_path} of {id} has no iteration left to count (index {index})"
                        )));
                    }
                    state.remaining -= 1;
                    put_exec_item(txn, &id, iter_key, iter_body)?;
                    counted_now = true;
                }
                if !counted_now {
                    return Ok(IterationCount::AlreadyCounted);
                }
                let sk = loop_sk(&loop_path);
                let body = to_body(&state, &id, &sk, limit)?;
                put_exec_item(txn, &id, &sk, &body)?;
                Ok(IterationCount::Counted(state))
            })
            .await
    }

    async fn list_iterations(
        &self, execution_id: &str, loop_path: &str,
    ) -> StoreResult<Vec<(u32, Value)>> {
        let id = execution_id.to_string();
        let loop_path = loop_path.to_string();
        let prefix = iter_prefix(&loop_path);
        self.db
            .read(move |conn| {
                let mut out = Vec::new();
                for (sk, body) in exec_items_with_prefix(conn, &id, &prefix)? {
                    // The prefix also matches iterations of loops nested in this one
                    // (`ITER#each[..]/inner[..]`): keep only this loop's.
                    let Some(index) = iteration_of(&loop_path, &sk) else {
                        continue;
                    };
                    out.push((index, from_body(&body, &id, &sk)?));
                }
                Ok(out)
            })
            .await
    }

    async fn get_mark(&self, name: &str) -> StoreResult<Value> {
        let pk = wf_core::keys::mark_pk(name);
        self.db
            .read(move |conn| Ok(load_exec_item(conn, &pk, MARK_SK)?.unwrap_or(Value::Null)))
            .await
    }

    async fn put_mark(&self, name: &str, value: &Value) -> StoreResult<()> {
        let pk = wf_core::keys::mark_pk(name);
        let body = (!value.is_null())
            .then(|| to_body(value, &pk, MARK_SK, self.item_limit))
            .transpose()?;
        self.db
            .write(move |txn| match &body {
                Some(body) => put_exec_item(txn, &pk, MARK_SK, body),
                None => {
                    txn.execute(
                        "DELETE FROM executions WHERE pk = ?1 AND sk = ?2",
                        params![pk, MARK_SK],
                    )
                    .map_err(map_err)?;
                    Ok(())
                }
            })
            .await
    }

    async fn record_rejection(&self, rejection: &EventRejection) -> StoreResult<()> {
        let pk = rejections_pk(&rejection.workflow_id);
        let sk = rejection_sk(rejection.event_time, &rejection.event_id);
        let body = to_body(rejection, &pk, &sk, self.item_limit)?;
        self.db
            .write(move |txn| {
                put_exec_item(txn, &pk, &sk, &body)?;
                // The bound: the newest REJECTIONS_KEPT_LOCALLY stay (SQLite has no TTL).
                txn.prepare_cached(
                    "DELETE FROM executions WHERE pk = ?1 AND sk < (
                         SELECT sk FROM executions WHERE pk = ?1
                         ORDER BY sk DESC LIMIT 1 OFFSET ?2)",
                )
                .and_then(|mut st| st.execute(params![pk, (REJECTIONS_KEPT_LOCALLY - 1) as i64]))
                .map_err(map_err)?;
                Ok(())
            })
            .await
    }

    async fn list_rejections(
        &self, workflow_id: &str, limit: usize, cursor: Option<&str>,
    ) -> StoreResult<RejectionPage> {
        let limit = page_size(limit);
        let before = cursor.map(decode_rejection_cursor).transpose()?;
        let pk = rejections_pk(workflow_id);
        self.db
            .read(move |conn| {
                let mut st = conn
                    .prepare_cached(
                        "SELECT sk, body FROM executions WHERE pk = ?1 AND sk < ?2
                         ORDER BY sk DESC LIMIT ?3",
                    )
                    .map_err(map_err)?;
                // `~` sorts after every digit: no bound without a cursor.
                let bound = before.unwrap_or_else(|| "~".to_string());
                let rows = st
                    .query_map(params![pk, bound, (limit + 1) as i64], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                    })
                    .map_err(map_err)?
                    .map(|row| {
                        let (sk, body) = row.map_err(map_err)?;
                        let rejection = from_body(&body, &pk, &sk)?;
                        Ok((sk, rejection))
                    })
                    .collect::<StoreResult<Vec<_>>>()?;
                let (items, next_cursor) = cut_page(rows, limit);
                Ok(RejectionPage { items, next_cursor })
            })
            .await
    }
}

/// A step record as listing reads it: one that cannot be decoded is shown as damaged, not an
/// error for the whole execution (wf_core::damaged).
fn decode_step(id: &str, sk: &str, body: &str) -> StepRecord {
    serde_json::from_str(body).unwrap_or_else(|e| {
        let path = sk.strip_prefix(STEP_PREFIX).unwrap_or(sk);
        tracing::warn!(execution_id = %id, sk = %sk, error = %e, "damaged step record");
        damaged_step(id, path, ulid_time_ms(id).unwrap_or(0), &e.to_string())
    })
}

/// The sort key a rejections cursor holds (`<16 digits>#<event id>`).
fn decode_rejection_cursor(cursor: &str) -> StoreResult<String> {
    wf_core::keys::decode_time_cursor(cursor)
        .ok_or_else(|| StoreError::Invalid(format!("invalid cursor {cursor:?}")))
}

// ---------------------------------------------------------------------------------------------
// Records

fn load_record(
    conn: &rusqlite::Connection, collection: &str, id: &str,
) -> StoreResult<Option<(Value, Option<String>)>> {
    let row: Option<(String, Option<String>)> = conn
        .prepare_cached(
            "SELECT data, idempotency_key FROM records WHERE collection = ?1 AND id = ?2",
        )
        .and_then(|mut st| {
            st.query_row(params![collection, id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(map_err)?;
    row.map(|(data, key)| Ok((from_body(&data, collection, id)?, key)))
        .transpose()
}

#[async_trait]
impl RecordStore for SqliteStore {
    async fn create(
        &self, collection: &str, id: &str, data: &Value, idempotency_key: &str,
    ) -> StoreResult<RecordCreate> {
        let (collection, id) = (collection.to_string(), id.to_string());
        let key = idempotency_key.to_string();
        let body = to_body(
            data,
            &collection,
            &id,
            self.item_limit.saturating_sub(key.len()),
        )?;
        let data = data.clone();
        self.db
            .write(move |txn| {
                if let Some((stored, stored_key)) = load_record(txn, &collection, &id)? {
                    return Ok(if stored_key.as_deref() == Some(key.as_str()) {
                        RecordCreate::Replayed(stored)
                    } else {
                        RecordCreate::Exists
                    });
                }
                txn.execute(
                    "INSERT INTO records (collection, id, data, idempotency_key)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![collection, id, body, key],
                )
                .map_err(map_err)?;
                // Cloned, not moved out: a job may run again (`Db::write`).
                Ok(RecordCreate::Created(data.clone()))
            })
            .await
    }

    async fn get(&self, collection: &str, id: &str) -> StoreResult<Option<Value>> {
        let (collection, id) = (collection.to_string(), id.to_string());
        self.db
            .read(move |conn| Ok(load_record(conn, &collection, &id)?.map(|(data, _)| data)))
            .await
    }

    async fn update(&self, collection: &str, id: &str, patch: &Value) -> StoreResult<Value> {
        let (collection, id) = (collection.to_string(), id.to_string());
        let Value::Object(patch) = patch.clone() else {
            return Err(StoreError::Permanent(format!(
                "record {collection}/{id}: an update needs a JSON object to merge"
            )));
        };
        let limit = self.item_limit;
        self.db
            .write(move |txn| {
                let Some((stored, key)) = load_record(txn, &collection, &id)? else {
                    return Err(StoreError::NotFound(format!("record {collection}/{id}")));
                };
                // Cloned, not moved out: a job may run again (`Db::write`).
                let patch = patch.clone();
                let merged = match stored {
                    Value::Object(mut object) => {
                        object.extend(patch);
                        Value::Object(object)
                    }
                    _ => Value::Object(patch),
                };
                let key_len = key.as_deref().map_or(0, str::len);
                let body = to_body(&merged, &collection, &id, limit.saturating_sub(key_len))?;
                txn.execute(
                    "UPDATE records SET data = ?3 WHERE collection = ?1 AND id = ?2",
                    params![collection, id, body],
                )
                .map_err(map_err)?;
                Ok(merged)
            })
            .await
    }

    async fn delete(&self, collection: &str, id: &str) -> StoreResult<bool> {
        let (collection, id) = (collection.to_string(), id.to_string());
        self.db
            .write(move |txn| {
                let n = txn
                    .execute(
                        "DELETE FROM records WHERE collection = ?1 AND id = ?2",
                        params![collection, id],
                    )
                    .map_err(map_err)?;
                Ok(n > 0)
            })
            .await
    }

    async fn query(
        &self, collection: &str, after: Option<&str>, limit: usize,
    ) -> StoreResult<Vec<(String, Value)>> {
        let collection = collection.to_string();
        let after = after.map(str::to_string);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .read(move |conn| {
                let mut st = conn
                    .prepare_cached(
                        "SELECT id, data FROM records
                         WHERE collection = ?1 AND (?2 IS NULL OR id > ?2)
                         ORDER BY id LIMIT ?3",
                    )
                    .map_err(map_err)?;
                let rows = st
                    .query_map(params![collection, after, limit], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                    })
                    .map_err(map_err)?;
                let mut out = Vec::new();
                for row in rows {
                    let (id, data) = row.map_err(map_err)?;
                    let value = from_body(&data, &collection, &id)?;
                    out.push((id, value));
                }
                Ok(out)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use wf_core::execution::{ExecutionStatus, TriggerInfo};

    use super::*;

    fn record(id: &str, started_at: i64) -> ExecutionRecord {
        ExecutionRecord {
            id: id.into(),
            workflow_id: "wf".into(),
            version: 1,
            status: ExecutionStatus::Queued,
            trigger: TriggerInfo::new("manual"),
            input: json!({}),
            output: Value::Null,
            error: None,
            started_at,
            finished_at: None,
            duration_ms: None,
            deadline_at: started_at + 1000,
            rerun_of: None,
            handoff: Vec::new(),
        }
    }

    fn open() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path().join("s.db")).expect("open");
        (dir, store)
    }

    #[test]
    fn the_sql_spells_the_exec_key_of_the_shared_layout() {
        // The statements and the partial indexes (schema.rs) write `'EXEC'` literally: SQLite
        // only uses a partial index when the query repeats its WHERE term.
        assert_eq!(EXEC_SK, "EXEC");
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = wf_core::keys::encode_cursor(&cursor_key(1_700_000_000_000, "01JD#weird id"));
        assert_eq!(
            decode_cursor(&c).expect("decode"),
            (1_700_000_000_000, "01JD#weird id".to_string())
        );
        for bad in ["", "zz", "abc", "00", "é1"] {
            assert!(decode_cursor(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn a_bad_cursor_is_an_error_and_limit_zero_is_the_default_page() {
        let (_dir, store) = open();
        for i in 0..(wf_core::keys::DEFAULT_PAGE_SIZE as i64 + 5) {
            let outcome = store
                .create_execution(&record(&format!("e{i:03}"), i), None)
                .await
                .expect("create");
            assert_eq!(outcome, CreateOutcome::Created);
        }
        let page = store
            .list_executions(&ExecutionQuery::default())
            .await
            .expect("list");
        assert_eq!(page.items.len(), wf_core::keys::DEFAULT_PAGE_SIZE);
        assert!(page.next_cursor.is_some());
        let bad = store
            .list_executions(&ExecutionQuery {
                cursor: Some("not-a-cursor".into()),
                ..Default::default()
            })
            .await;
        assert!(matches!(bad, Err(StoreError::Invalid(_))), "{bad:?}");
        let old = store
            .executions_started_before(3, 10)
            .await
            .expect("retention");
        assert_eq!(old, ["e000", "e001", "e002"]);
    }

    #[tokio::test]
    async fn only_the_newest_rejections_per_workflow_are_kept() {
        let (_dir, store) = open();
        let rejection = |workflow: &str, i: usize| wf_core::rejection::EventRejection {
            workflow_id: workflow.into(),
            event_id: format!("e{i:05}"),
            event_type: "t".into(),
            source: "api".into(),
            event_time: i as i64,
            reason: wf_core::rejection::RejectionReason::Filter,
            message: "m".into(),
            rejected_at: i as i64,
        };
        store
            .record_rejection(&rejection("other", 0))
            .await
            .expect("record");
        for i in 0..REJECTIONS_KEPT_LOCALLY + 3 {
            store
                .record_rejection(&rejection("w", i))
                .await
                .expect("record");
        }
        let mut kept = Vec::new();
        let mut cursor = None;
        loop {
            let page = store
                .list_rejections("w", wf_core::keys::MAX_PAGE_SIZE, cursor.as_deref())
                .await
                .expect("list");
            kept.extend(page.items.into_iter().map(|r| r.event_id));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(kept.len(), REJECTIONS_KEPT_LOCALLY);
        assert_eq!(kept.first().map(String::as_str), Some("e01002"));
        assert_eq!(
            kept.last().map(String::as_str),
            Some("e00003"),
            "the 3 oldest went"
        );
        let other = store.list_rejections("other", 0, None).await.expect("list");
        assert_eq!(other.items.len(), 1, "another workflow's list is untouched");
    }

    #[tokio::test]
    async fn expired_dedupe_keys_are_purged() {
        let (_dir, store) = open();
        let key = DedupeKey {
            key: "wf#k".into(),
            expires_at: 100,
        };
        store
            .create_execution(&record("e1", 10), Some(&key))
            .await
            .expect("create");
        assert_eq!(store.purge_expired_dedupe(99).await.expect("purge"), 0);
        assert_eq!(
            store
                .create_execution(&record("e2", 20), Some(&key))
                .await
                .expect("create"),
            CreateOutcome::Duplicate("e1".into())
        );
        assert_eq!(store.purge_expired_dedupe(100).await.expect("purge"), 1);
        assert_eq!(
            store
                .create_execution(&record("e2", 20), Some(&key))
                .await
                .expect("create"),
            CreateOutcome::Created
        );
    }

    #[tokio::test]
    async fn count_iteration_without_a_loop_is_not_found_and_writes_nothing() {
        let (_dir, store) = open();
        store
            .create_execution(&record("e1", 10), None)
            .await
            .expect("create");
        let err = store
            .count_iteration("e1", "each", 0, &json!(1))
            .await
            .expect_err("no loop");
        assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
        assert!(
            store
                .list_iterations("e1", "each")
                .await
                .expect("list")
                .is_empty()
        );
    }
}

#[cfg(test)]
mod damaged_tests {
    use serde_json::json;
    use wf_core::damaged::DAMAGED;
    use wf_core::execution::{ExecutionStatus, StepRecord, StepStatus, TriggerInfo};

    use super::*;

    fn record(id: &str, started_at: i64) -> ExecutionRecord {
        ExecutionRecord {
            id: id.into(),
            workflow_id: "wf".into(),
            version: 3,
            status: ExecutionStatus::Queued,
            trigger: TriggerInfo::new("webhook"),
            input: json!({ "n": 1 }),
            output: Value::Null,
            error: None,
            started_at,
            finished_at: None,
            duration_ms: None,
            deadline_at: started_at + 1000,
            rerun_of: None,
            handoff: Vec::new(),
        }
    }

    fn step(path: &str) -> StepRecord {
        StepRecord {
            path: path.into(),
            step_type: "action".into(),
            status: StepStatus::Succeeded,
            attempts: 1,
            input: json!({}),
            output: json!({ "ok": true }),
            error: None,
            started_at: 10,
            finished_at: Some(11),
            duration_ms: Some(1),
            lease_until: None,
            next: None,
            lease_lost: 0,
        }
    }

    /// What the store once wrote and serde_json cannot read back: a body nested 200 deep (the
    /// failure of issue 10: a 127-deep webhook input inside its record), or plain garbage.
    fn corrupt(store: &SqliteStore, pk: &str, sk: &str, body: &str) {
        let conn = rusqlite::Connection::open(store.path()).expect("open a second connection");
        let n = conn
            .execute(
                "UPDATE executions SET body = ?3 WHERE pk = ?1 AND sk = ?2",
                params![pk, sk, body],
            )
            .expect("corrupt the row");
        assert_eq!(n, 1, "{pk}/{sk} exists");
    }

    #[tokio::test]
    async fn an_undecodable_record_is_listed_as_damaged_and_the_others_still_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path().join("s.db")).expect("open");
        for (id, at) in [("e1", 10), ("e2", 20), ("e3", 30)] {
            store
                .create_execution(&record(id, at), None)
                .await
                .expect("create");
        }
        for path in ["a", "b"] {
            let mut claim = step(path);
            claim.status = StepStatus::Running;
            claim.lease_until = Some(1_000);
            store.claim_step("e1", &claim, 10).await.expect("claim");
            assert!(store.finish_step("e1", &step(path)).await.expect("finish"));
        }
        let deep = format!(
            r#"{{"id":"e2","input":{}{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        corrupt(&store, "e2", EXEC_SK, &deep);
        corrupt(&store, "e1", &step_sk("b"), "{not json");

        // The list: every execution, the damaged one as a failed stand-in naming its item.
        let page = store
            .list_executions(&ExecutionQuery::default())
            .await
            .expect("one bad record does not fail the list");
        let ids: Vec<&str> = page.items.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["e3", "e2", "e1"]);
        let damaged = &page.items[1];
        assert_eq!(damaged.status, ExecutionStatus::Failed);
        assert_eq!(
            (
                damaged.workflow_id.as_str(),
                damaged.version,
                damaged.started_at
            ),
            ("wf", 3, 20),
            "what the columns still know"
        );
        assert_eq!(damaged.trigger.kind, "webhook");
        let error = damaged.error.as_ref().expect("an error");
        assert_eq!(error.code, DAMAGED);
        assert!(
            error.message.contains("e2/EXEC") && error.message.contains("recursion limit"),
            "{}",
            error.message
        );
        // Filtered by the status column (what the sweeper asks): still listed, as the stand-in.
        let queued = store
            .list_executions(&ExecutionQuery {
                status: Some(ExecutionStatus::Queued),
                ..Default::default()
            })
            .await
            .expect("list queued");
        assert_eq!(queued.items.len(), 3);
        assert_eq!(
            queued.items[1].error.as_ref().map(|e| e.code.as_str()),
            Some(DAMAGED)
        );

        // One execution: the stand-in too.
        let one = store
            .get_execution("e2")
            .await
            .expect("get")
            .expect("found");
        assert_eq!(one.error.expect("error").code, DAMAGED);
        assert_eq!(store.get_execution("nope").await.expect("get"), None);
        let good = store
            .get_execution("e3")
            .await
            .expect("get")
            .expect("found");
        assert_eq!(good, record("e3", 30));

        // Steps: the good one as stored, the bad one damaged (named by its key).
        // (A damaged step sorts at its execution's start, the time in its ULID id: here, whose
        // id is no ULID, first.)
        let steps = store.list_steps("e1").await.expect("list steps");
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[1], step("a"));
        assert_eq!(steps[0].path, "b");
        assert_eq!(steps[0].status, StepStatus::Failed);
        assert!(
            steps[0]
                .error
                .as_ref()
                .is_some_and(|e| e.code == DAMAGED && e.message.contains("e1/STEP#b"))
        );

        // Writes still refuse what they cannot read (nothing is overwritten blindly).
        let update = ExecutionUpdate {
            status: ExecutionStatus::Failed,
            output: None,
            error: None,
            finished_at: Some(40),
        };
        assert!(matches!(
            store.update_execution("e2", &update).await,
            Err(StoreError::Permanent(_))
        ));
        // And the record can still be deleted (retention).
        store.delete_execution("e2").await.expect("delete");
        assert_eq!(store.get_execution("e2").await.expect("get"), None);
    }
}
