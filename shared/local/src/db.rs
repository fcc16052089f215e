//! The SQLite file: one writer thread with group commit, a small pool of read-only connections.
//!
//! A rusqlite `Connection` is `!Sync` and every call blocks, so no connection is ever touched
//! from an async task directly:
//! * writes are closures sent over a channel to ONE writer thread that owns the write
//!   connection. The thread takes everything pending (waiting a moment for more when writes come
//!   fast: `Arrivals`), runs the batch in ONE transaction (when a job fails, the batch runs again
//!   with each job inside its own `SAVEPOINT`, so a job that fails rolls back only its own
//!   changes: [`run_batch`]) and commits once (group commit: one fsync-free WAL append per batch
//!   instead of one per write). Replies are sent only after the commit, so a caller never sees a
//!   write that could still be lost to a failed commit;
//! * reads run on the calling thread against read-only connections from a small pool
//!   (`Db::read` says why not `spawn_blocking`). In WAL mode readers never block the writer and
//!   always see the last committed state.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags, Transaction, TransactionBehavior};
use tokio::sync::{Notify, broadcast, oneshot};
use wf_core::ports::PlatformEvent;
use wf_core::{StoreError, StoreResult};

use crate::schema;

/// How long a connection waits on a lock held by another connection (another process using the
/// same file, or a checkpoint) before the operation fails with `Unavailable`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound of jobs committed in one transaction (keeps a single commit short).
const MAX_BATCH: usize = 512;
/// WAL pages past which the writer checkpoints at its commit (and the next commit restarts the
/// WAL): 16,000 pages of 4 KiB, a 64 MB WAL file at most between restarts. Each of those
/// checkpoints holds the commits behind it for its fsyncs, and under the c=16 webhook load the
/// WAL grows by about 5 pages per execution (an estimate from `perf trace` of the fsyncs): at
/// 4,000 pages they came every ~70 ms at 12,000 executions/s and were the whole c=16
/// p99 (14-18 ms; 2.9-3.4 ms at 16,000, and ~10% more executions/s, as a page rewritten between
/// two checkpoints is copied once; scripts/bench-webhooks).
const WAL_RESTART_PAGES: i64 = 16_000;
/// How often the background checkpointer copies committed pages into the database, while there
/// are commits. Frequent passes leave the writer's own checkpoint little to copy: at 200 ms its
/// longest stall under the c=16 load was 22-39 ms, at 50 ms 14-22 ms.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);
/// Read-only connections kept open for reuse.
const READ_POOL: usize = 4;
/// Events buffered per subscriber of the local bus before a slow one starts lagging.
const EVENT_CAPACITY: usize = 1024;

/// One write sent to the writer thread.
trait WriteJob: Send {
    /// Run inside the batch transaction and keep the result; returns whether it succeeded. May
    /// run again after the transaction was rolled back (see [`run_batch`]): the closure is
    /// `FnMut`, and every job's closure is a function of what it captured and the database.
    fn run(&mut self, txn: &Transaction<'_>) -> bool;
    /// Answer the caller with the kept result, or with `commit_error` when the commit failed
    /// (the job's changes are lost).
    fn answer(self: Box<Self>, commit_error: Option<StoreError>);
    /// Answer the caller without running (the transaction could not be started).
    fn fail(self: Box<Self>, err: StoreError);
}

/// A write job with its caller's closure. The job goes back to the caller with the answer and is
/// dropped there: what the closure holds (records, rows) was allocated on the caller's thread,
/// and freeing it on the writer thread takes the caller's glibc malloc arena lock while the caller
/// allocates. Under the c=16 webhook load the two threads queued on that lock (perf: the writer
/// waiting in `_int_free` of a dropped `StepRow`, the request thread waking it from `malloc`).
struct TypedJob<F, R> {
    f: F,
    /// What the last run returned (`None`: not run, or it panicked).
    result: Option<StoreResult<R>>,
    reply: Option<oneshot::Sender<Answered<F, R>>>,
}

/// The job's result and the job itself (to be dropped by the caller).
type Answered<F, R> = (StoreResult<R>, Box<TypedJob<F, R>>);

impl<F, R> TypedJob<F, R> {
    fn send(mut self: Box<Self>, answer: StoreResult<R>) {
        if let Some(reply) = self.reply.take() {
            // The caller may have gone away (its future dropped): nothing to answer.
            let _ = reply.send((answer, self));
        }
    }
}

impl<F, R> WriteJob for TypedJob<F, R>
where
    R: Send + 'static,
    F: FnMut(&Transaction<'_>) -> StoreResult<R> + Send + 'static,
{
    fn run(&mut self, txn: &Transaction<'_>) -> bool {
        self.result = None;
        let result = (self.f)(txn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn answer(mut self: Box<Self>, commit_error: Option<StoreError>) {
        let answer = match (self.result.take(), commit_error) {
            (None, _) => Err(StoreError::Permanent(
                "sqlite write job panicked; rolled back".into(),
            )),
            (Some(Ok(_)), Some(e)) => Err(e),
            (Some(result), _) => result,
        };
        self.send(answer);
    }

    fn fail(self: Box<Self>, err: StoreError) {
        self.send(Err(err));
    }
}

type Job = Box<dyn WriteJob>;

/// Map a rusqlite error: busy/locked is retryable, anything else is permanent.
pub(crate) fn map_err(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable(format!("sqlite: {e}"))
        }
        _ => StoreError::Permanent(format!("sqlite: {e}")),
    }
}

/// Shared handle on the database file (cheap to clone).
#[derive(Clone)]
pub(crate) struct Db {
    inner: Arc<DbInner>,
}

struct DbInner {
    path: PathBuf,
    sender: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    writer_id: ThreadId,
    /// The background checkpointer: dropping the sender stops it.
    checkpointer: Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>,
    /// Transactions committed by the writer (a batch of jobs is one).
    commits: Arc<AtomicU64>,
    readers: Mutex<Vec<Connection>>,
    /// Woken on every local queue send (receivers waiting on an empty queue re-check).
    queue_notify: Notify,
    /// The local event bus's in-process fan-out (shared by every bus handle on this file).
    events: broadcast::Sender<PlatformEvent>,
}

impl Db {
    /// Open (or create) the file, apply the schema, start the writer thread.
    pub(crate) fn open(path: &Path) -> StoreResult<Self> {
        let mut conn = Connection::open(path).map_err(map_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(map_err)?;
        // WAL: readers and the writer do not block each other. `synchronous=NORMAL` with WAL
        // syncs the WAL only at checkpoints, not on every commit: a committed transaction is in
        // the WAL file (the OS page cache) when commit returns, so it survives the process
        // crashing or being killed; only an OS crash or power loss can lose the last commits
        // (the database itself never corrupts). That is the right trade for a local dev engine.
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(map_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(%mode, "sqlite did not switch to WAL mode");
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(map_err)?;
        // Checkpoints, mostly off the commit path. SQLite's automatic checkpoint runs inside the
        // commit that takes the WAL past `wal_autocheckpoint` pages: with the default 1,000 that
        // was every ~100th webhook execution, and its page copies and fsyncs (3-6 ms) were the
        // whole p99 at concurrency 1 (scripts/bench-webhooks: p99 4.7 ms with them, 0.64 ms
        // without). So a checkpointer thread (`checkpointer_loop`) copies committed pages into
        // the database in the background (PASSIVE: it never blocks the writer or a reader), and
        // the writer's own checkpoint only comes at `WAL_RESTART_PAGES`: by then the background
        // passes have copied nearly everything, so it costs an fsync or two, and it is what
        // lets the next commit restart the WAL from its beginning (a background pass can never
        // do that under load: the writer appends while it copies, so its pass is never complete;
        // with checkpoints only in the background the WAL grew to 415 MB in 10 s).
        conn.pragma_update(None, "wal_autocheckpoint", WAL_RESTART_PAGES)
            .map_err(map_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(map_err)?;
        // Every write job runs in a savepoint of the batch's transaction, so SQLite keeps the
        // pages a job changes in a sub-journal. By default that spills to a temporary file past
        // 64 KiB and stays a file for the rest of the transaction: a `pwrite` per page, 17% of
        // `wf dev`'s CPU under webhook load (perf, scripts/bench-webhooks). In memory it costs a
        // batch's changed pages at most (MAX_BATCH jobs, a few MB), released at the commit.
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(map_err)?;
        schema::migrate(&mut conn)?;

        let (sender, receiver) = mpsc::channel::<Job>();
        let commits = Arc::new(AtomicU64::new(0));
        let writer_commits = commits.clone();
        let writer = thread::Builder::new()
            .name("wf-sqlite-writer".into())
            .spawn(move || writer_loop(conn, receiver, &writer_commits))
            .map_err(|e| StoreError::Permanent(format!("cannot start the sqlite writer: {e}")))?;
        let writer_id = writer.thread().id();
        let (checkpoint_stop, stop) = mpsc::channel::<()>();
        let checkpointer_path = path.to_path_buf();
        let checkpointer_commits = commits.clone();
        let checkpointer = thread::Builder::new()
            .name("wf-sqlite-checkpoint".into())
            .spawn(move || checkpointer_loop(&checkpointer_path, &stop, &checkpointer_commits))
            .map_err(|e| {
                StoreError::Permanent(format!("cannot start the sqlite checkpointer: {e}"))
            })?;
        Ok(Self {
            inner: Arc::new(DbInner {
                path: path.to_path_buf(),
                sender: Mutex::new(Some(sender)),
                writer: Mutex::new(Some(writer)),
                writer_id,
                checkpointer: Mutex::new(Some((checkpoint_stop, checkpointer))),
                commits,
                readers: Mutex::new(Vec::new()),
                queue_notify: Notify::new(),
                events: broadcast::channel(EVENT_CAPACITY).0,
            }),
        })
    }

    /// Run `f` on the writer thread inside the current batch's transaction. `Ok` is answered
    /// only after the batch committed. `f` may run more than once (when another job of its
    /// batch fails, after a rollback: [`run_batch`]): it must be a function of what it captured
    /// and of the database, with no effect outside the transaction.
    pub(crate) async fn write<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnMut(&Transaction<'_>) -> StoreResult<R> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel::<Answered<F, R>>();
        let job: Job = Box::new(TypedJob {
            f,
            result: None,
            reply: Some(reply),
        });
        {
            let sender = self
                .inner
                .sender
                .lock()
                .map_err(|_| StoreError::Permanent("sqlite writer lock poisoned".into()))?;
            let sender = sender
                .as_ref()
                .ok_or_else(|| StoreError::Permanent("sqlite store is closed".into()))?;
            sender
                .send(job)
                .map_err(|_| StoreError::Permanent("sqlite writer thread is gone".into()))?;
        }
        let (answer, job) = rx
            .await
            .map_err(|_| StoreError::Permanent("sqlite writer dropped the job".into()))?;
        // Dropped here, on the caller's thread (see `TypedJob`).
        drop(job);
        answer
    }

    /// Run `f` with a read-only connection, on the calling thread. A WAL read served from the
    /// page cache takes microseconds: less than the two thread handoffs of `spawn_blocking`,
    /// which profiling showed to dominate `wf dev` under load (reads never wait on the writer).
    pub(crate) async fn read<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
    {
        let conn = self.take_reader()?;
        let result = f(&conn);
        self.give_back_reader(conn);
        result
    }

    /// Write transactions committed so far (each holds a batch of jobs).
    pub(crate) fn commit_count(&self) -> u64 {
        self.inner.commits.load(Ordering::Relaxed)
    }

    pub(crate) fn queue_notify(&self) -> &Notify {
        &self.inner.queue_notify
    }

    pub(crate) fn events(&self) -> &broadcast::Sender<PlatformEvent> {
        &self.inner.events
    }

    fn take_reader(&self) -> StoreResult<Connection> {
        if let Ok(mut pool) = self.inner.readers.lock()
            && let Some(conn) = pool.pop()
        {
            return Ok(conn);
        }
        let conn = Connection::open_with_flags(
            &self.inner.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(map_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(map_err)?;
        Ok(conn)
    }

    fn give_back_reader(&self, conn: Connection) {
        // A connection left inside a transaction (should not happen) is not reused.
        if !conn.is_autocommit() {
            return;
        }
        if let Ok(mut pool) = self.inner.readers.lock()
            && pool.len() < READ_POOL
        {
            pool.push(conn);
        }
    }
}

impl Drop for DbInner {
    fn drop(&mut self) {
        // Closing the channel ends the writer loop once it has committed what is pending; wait
        // for it so that reopening the same file right after a drop sees every write.
        if let Ok(mut sender) = self.sender.lock() {
            sender.take();
        }
        if let Ok(mut checkpointer) = self.checkpointer.lock()
            && let Some((stop, handle)) = checkpointer.take()
        {
            drop(stop);
            if thread::current().id() != handle.thread().id() && handle.join().is_err() {
                tracing::error!("sqlite checkpointer thread panicked");
            }
        }
        if thread::current().id() == self.writer_id {
            return;
        }
        if let Ok(mut writer) = self.writer.lock()
            && let Some(handle) = writer.take()
            && handle.join().is_err()
        {
            tracing::error!("sqlite writer thread panicked");
        }
    }
}

fn writer_loop(mut conn: Connection, receiver: mpsc::Receiver<Job>, commits: &AtomicU64) {
    tracing::debug!("sqlite writer started");
    let mut arrivals = Arrivals::new(Instant::now());
    // Block for the first job, then take whatever else is already waiting: that is the batch;
    // when writes come fast, wait `LINGER` for more first (`Arrivals`).
    while let Ok(first) = receiver.recv() {
        let mut batch = Vec::with_capacity(16);
        batch.push(first);
        take_waiting(&receiver, &mut batch);
        if arrivals.busy(batch.len(), Instant::now()) {
            thread::sleep(LINGER);
            let before = batch.len();
            take_waiting(&receiver, &mut batch);
            arrivals.count(batch.len() - before);
        }
        run_batch(&mut conn, batch, commits);
    }
    tracing::debug!("sqlite writer stopped");
}

/// Add the jobs already waiting to `batch`, up to `MAX_BATCH`.
fn take_waiting(receiver: &mpsc::Receiver<Job>, batch: &mut Vec<Job>) {
    while batch.len() < MAX_BATCH {
        match receiver.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

/// How fast write jobs arrive, over windows of `ARRIVAL_WINDOW`: past `BUSY_JOBS_PER_SEC` the
/// writer lingers before each commit.
///
/// Why: a commit appends every page the batch changed to the WAL (about ten 4 KiB pages for a
/// webhook's execution: its rows and the index entries of the executions list), whatever the
/// number of jobs in it. Under the c=16 webhook load the jobs came one at a time (1.4 per
/// commit on average, scripts/bench-webhooks): the writer was fast enough to commit each
/// alone, and the WAL appends were a third of `wf dev`'s CPU. Waiting `LINGER` when jobs come
/// fast gathers 5-8 per commit. A single client never waits for it: one request at a time
/// comes at most every ~0.3 ms (its round trip), under the threshold.
struct Arrivals {
    window_start: Instant,
    jobs: usize,
    busy: bool,
}

/// Write jobs per second past which the writer lingers.
const BUSY_JOBS_PER_SEC: u128 = 5_000;
/// How long the writer waits for more jobs before a commit, when busy.
const LINGER: Duration = Duration::from_micros(100);
/// The window `Arrivals` measures over.
const ARRIVAL_WINDOW: Duration = Duration::from_millis(10);

impl Arrivals {
    fn new(now: Instant) -> Self {
        Self {
            window_start: now,
            jobs: 0,
            busy: false,
        }
    }

    /// Count `jobs` that just arrived and say whether the writer is busy: the rate of the last
    /// complete window (a window ends at the first arrival after it: after an idle spell, the
    /// rate over it is low).
    fn busy(&mut self, jobs: usize, now: Instant) -> bool {
        self.count(jobs);
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= ARRIVAL_WINDOW {
            self.busy = self.jobs as u128 * 1_000_000 >= BUSY_JOBS_PER_SEC * elapsed.as_micros();
            self.window_start = now;
            self.jobs = 0;
        }
        self.busy
    }

    fn count(&mut self, jobs: usize) {
        self.jobs += jobs;
    }
}

/// Run a batch of jobs in as few transactions as possible (one unless SQLite aborts one), and
/// answer each after its transaction's commit.
///
/// First the whole batch runs in one transaction, job after job. When every job succeeds that
/// transaction is committed: the usual case. When one fails (an error, a panic), the
/// transaction is rolled back and the batch runs again with each job in its own `SAVEPOINT`
/// ([`run_guarded`]), so the failed job's changes are rolled back alone and the others still
/// commit. Savepoints on every job cost a copy of each page a job changes into the
/// sub-journal (`subjournalPage`, with its release: 8% of `wf dev`'s CPU under the c=16
/// webhook load of scripts/bench-webhooks), for the rare job that fails.
fn run_batch(conn: &mut Connection, mut batch: Vec<Job>, commits: &AtomicU64) {
    let txn = match begin(conn) {
        Ok(txn) => txn,
        Err(err) => return fail_all(batch, &err),
    };
    let all_ok = batch.iter_mut().all(|job| run_caught(job, &txn));
    if !all_ok || txn.is_autocommit() {
        // A job failed: none of this transaction is kept (dropping it rolls back, or SQLite
        // already did).
        let aborted = txn.is_autocommit();
        drop(txn);
        if batch.len() > 1 {
            // Every job runs again, each in its own savepoint.
            return run_guarded(conn, batch, commits);
        }
        // A job alone: its own error, or SQLite's abort of what it wrote.
        let abort = (all_ok && aborted).then(aborted_error);
        for job in batch {
            job.answer(abort.clone());
        }
        return;
    }
    commit(txn, batch, commits);
}

/// Run a batch in which a job failed: each job in its own savepoint, rolled back alone when it
/// fails again.
fn run_guarded(conn: &mut Connection, batch: Vec<Job>, commits: &AtomicU64) {
    let mut jobs = batch.into_iter().peekable();
    while jobs.peek().is_some() {
        let txn = match begin(conn) {
            Ok(txn) => txn,
            Err(err) => return fail_all(jobs, &err),
        };
        let mut ran: Vec<Job> = Vec::new();
        let mut aborted = false;
        for mut job in jobs.by_ref() {
            if let Err(e) = txn.execute_batch("SAVEPOINT job") {
                fail_unrun(job, map_err(e));
                continue;
            }
            let ok = run_caught(&mut job, &txn);
            if txn.is_autocommit() {
                // SQLite rolled back the whole transaction (e.g. disk full, I/O error):
                // every job of this transaction so far is lost; answer them all with an error.
                tracing::error!("sqlite rolled back a write transaction");
                let err = aborted_error();
                for j in ran.drain(..) {
                    j.answer(Some(err.clone()));
                }
                job.answer(Some(err));
                aborted = true;
                break;
            }
            let end = if ok {
                "RELEASE job"
            } else {
                "ROLLBACK TO job; RELEASE job"
            };
            if let Err(e) = txn.execute_batch(end) {
                let err = map_err(e);
                tracing::error!(error = %err, "sqlite: cannot close a savepoint");
                // Make sure nothing of a job answered with an error gets committed.
                let _ = txn.execute_batch("ROLLBACK TO job; RELEASE job");
                job.answer(Some(err));
                continue;
            }
            ran.push(job);
        }
        if aborted {
            // The transaction is gone already; drop the handle without a second rollback.
            drop(txn);
            continue;
        }
        commit(txn, ran, commits);
    }
}

/// Begin a batch's write transaction.
fn begin(conn: &mut Connection) -> StoreResult<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| {
            let err = map_err(e);
            tracing::warn!(error = %err, "sqlite: cannot begin a write transaction");
            err
        })
}

/// Run a job inside `txn`; a panic is a failure (logged; the caller rolls its changes back).
fn run_caught(job: &mut Job, txn: &Transaction<'_>) -> bool {
    catch_unwind(AssertUnwindSafe(|| job.run(txn))).unwrap_or_else(|_| {
        tracing::error!("sqlite write job panicked; rolled back");
        false
    })
}

/// Commit `txn` and answer the jobs it holds (with the commit's error when it failed: their
/// changes are lost).
fn commit(txn: Transaction<'_>, jobs: Vec<Job>, commits: &AtomicU64) {
    let commit_error = txn.commit().err().map(map_err);
    match &commit_error {
        Some(err) => tracing::error!(error = %err, "sqlite: group commit failed"),
        None => {
            commits.fetch_add(1, Ordering::Relaxed);
        }
    }
    for job in jobs {
        job.answer(commit_error.clone());
    }
}

/// What a job hears when SQLite itself rolled its transaction back (disk full, I/O error).
fn aborted_error() -> StoreError {
    StoreError::Unavailable("sqlite aborted the write transaction; retry".to_string())
}

/// Answer every job with `err`: none of them ran (the transaction could not begin).
fn fail_all(jobs: impl IntoIterator<Item = Job>, err: &StoreError) {
    for job in jobs {
        fail_unrun(job, err.clone());
    }
}

/// Copy committed WAL pages into the database every `CHECKPOINT_EVERY` while there were
/// commits (PASSIVE: frames a reader may still need are left for a later pass), until `stop` is
/// dropped. A failed pass (the file busy or gone) is tried again at the next tick: the writer's
/// own checkpoint at `WAL_RESTART_PAGES` bounds the WAL whatever happens here.
fn checkpointer_loop(path: &Path, stop: &mpsc::Receiver<()>, commits: &AtomicU64) {
    yield_to_requests();
    let conn = match Connection::open(path) {
        Ok(conn) => conn,
        Err(e) => {
            tracing::warn!(error = %e, "sqlite checkpointer not started; the writer checkpoints alone");
            return;
        }
    };
    let mut seen = commits.load(Ordering::Relaxed);
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        let now = commits.load(Ordering::Relaxed);
        if now == seen {
            continue;
        }
        seen = now;
        let pass = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        match pass {
            Ok((wal, copied)) => tracing::trace!(wal, copied, "sqlite checkpoint pass"),
            Err(e) => tracing::debug!(error = %e, "sqlite checkpoint pass failed; next tick"),
        }
    }
}

/// Give this thread (the checkpointer) the lowest CPU priority (nice 19): on a busy machine the
/// request path and the writer preempt a pass instead of queueing behind it, and the pass still
/// gets its share (it is not starved: a pass holds SQLite's checkpoint lock, which the writer's
/// own checkpoint at `WAL_RESTART_PAGES` waits for).
fn yield_to_requests() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority only reads its integer arguments; on Linux `PRIO_PROCESS` with
        // id 0 sets the calling thread's nice value (a per-thread attribute). Its failure
        // leaves the priority as it was, which is only slower, so the result is ignored.
        let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
    }
}

/// Answer a job that never ran.
fn fail_unrun(job: Job, err: StoreError) {
    tracing::warn!(error = %err, "sqlite write job not run");
    job.fail(err);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::params;

    fn open() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("t.db")).expect("open");
        (dir, db)
    }

    async fn create_table(db: &Db) {
        db.write(|txn| {
            txn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
                .map_err(map_err)
        })
        .await
        .expect("create table");
    }

    async fn count(db: &Db) -> i64 {
        db.read(|conn| {
            conn.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
                .map_err(map_err)
        })
        .await
        .expect("count")
    }

    /// Occupy the writer until the returned sender is used, so the jobs sent meanwhile are
    /// pending together and form one batch.
    fn block_writer(db: &Db) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let db = db.clone();
        let handle = tokio::spawn(async move {
            // Waits on its first run only: a job may run again (when its batch has a failing
            // job), and `release` is used once.
            let mut wait = Some(wait);
            db.write(move |_| {
                if let Some(wait) = wait.take() {
                    let _ = wait.recv();
                }
                Ok(())
            })
            .await
            .expect("blocking job");
        });
        (release, handle)
    }

    /// What a job's closure holds is freed by its caller, not by the writer thread (see
    /// `TypedJob`: freeing on the writer contended for the caller's malloc arena).
    #[tokio::test(flavor = "current_thread")]
    async fn a_job_is_dropped_on_its_callers_thread() {
        type DroppedOn = Arc<Mutex<Option<std::thread::ThreadId>>>;
        struct NoteDrop(DroppedOn);
        impl Drop for NoteDrop {
            fn drop(&mut self) {
                *self.0.lock().expect("lock") = Some(std::thread::current().id());
            }
        }
        let (_dir, db) = open();
        let dropped_on = DroppedOn::default();
        let held = NoteDrop(dropped_on.clone());
        let ran_on = db
            .write(move |_| {
                let _ = &held;
                Ok(std::thread::current().id())
            })
            .await
            .expect("write");
        let caller = std::thread::current().id();
        assert_ne!(ran_on, caller, "the job ran on the writer thread");
        assert_eq!(*dropped_on.lock().expect("lock"), Some(caller));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_writes_all_land_in_few_commits() {
        let (_dir, db) = open();
        create_table(&db).await;
        let (release, blocker) = block_writer(&db);
        let mut tasks = Vec::new();
        for k in 0..500i64 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                db.write(move |txn| {
                    txn.execute("INSERT INTO t (k, v) VALUES (?1, 'x')", params![k])
                        .map_err(map_err)
                })
                .await
            }));
        }
        // Let the writes queue up behind the blocker, then let the writer go.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = db.commit_count();
        release.send(()).expect("release");
        blocker.await.expect("blocker");
        for t in tasks {
            assert_eq!(t.await.expect("join").expect("write"), 1);
        }
        assert_eq!(count(&db).await, 500);
        let commits = db.commit_count() - before;
        assert!(
            commits <= 3,
            "500 pending writes should be group-committed, took {commits} commits"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_job_rolls_back_only_itself() {
        let (_dir, db) = open();
        create_table(&db).await;
        let (release, blocker) = block_writer(&db);
        let mut tasks = Vec::new();
        for k in 0..20i64 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                db.write(move |txn| {
                    txn.execute("INSERT INTO t (k, v) VALUES (?1, 'x')", params![k])
                        .map_err(map_err)?;
                    if k % 5 == 0 {
                        // Wrote, then failed: its insert must be rolled back.
                        return Err(StoreError::Conflict(format!("job {k} fails")));
                    }
                    if k == 7 {
                        // A SQL error (NOT NULL) after a successful insert.
                        txn.execute("INSERT INTO t (k, v) VALUES (1007, NULL)", [])
                            .map_err(map_err)?;
                    }
                    Ok(k)
                })
                .await
            }));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = db.commit_count();
        release.send(()).expect("release");
        blocker.await.expect("blocker");
        let mut ok = Vec::new();
        for (k, t) in tasks.into_iter().enumerate() {
            match t.await.expect("join") {
                Ok(v) => ok.push(v),
                Err(StoreError::Conflict(m)) => assert!(k % 5 == 0, "{m}"),
                Err(StoreError::Permanent(m)) => assert_eq!(k, 7, "{m}"),
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        assert_eq!(ok.len(), 15);
        assert_eq!(count(&db).await, 15);
        assert!(db.commit_count() - before <= 2);
        let stored: Vec<i64> = db
            .read(|conn| {
                let mut st = conn
                    .prepare("SELECT k FROM t ORDER BY k")
                    .map_err(map_err)?;
                let rows = st.query_map([], |r| r.get(0)).map_err(map_err)?;
                rows.collect::<Result<Vec<i64>, _>>().map_err(map_err)
            })
            .await
            .expect("read");
        assert_eq!(stored, ok);
    }

    /// Send jobs for keys `keys` as one batch (queued behind a blocked writer): each inserts its
    /// key, and the one for `failing` then fails. Returns how often each job ran, and answers.
    async fn run_counted(
        db: &Db, keys: std::ops::Range<i64>, failing: Option<i64>,
    ) -> (Vec<u64>, Vec<StoreResult<i64>>) {
        let (release, blocker) = block_writer(db);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut runs = Vec::new();
        let mut tasks = Vec::new();
        for k in keys {
            let ran = Arc::new(AtomicU64::new(0));
            runs.push(ran.clone());
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                db.write(move |txn| {
                    ran.fetch_add(1, Ordering::Relaxed);
                    txn.execute("INSERT INTO t (k, v) VALUES (?1, 'x')", params![k])
                        .map_err(map_err)?;
                    if Some(k) == failing {
                        return Err(StoreError::Conflict(format!("job {k} fails")));
                    }
                    Ok(k)
                })
                .await
            }));
            // One after the other, so the batch holds them in this order.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        release.send(()).expect("release");
        blocker.await.expect("blocker");
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.expect("join"));
        }
        (
            runs.iter().map(|r| r.load(Ordering::Relaxed)).collect(),
            answers,
        )
    }

    /// A batch runs once, without savepoints, when every job succeeds; when one fails, the
    /// whole batch is rolled back and runs again with a savepoint per job (every job that ran
    /// runs a second time), and the others still commit; a job alone that fails does not run
    /// again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_runs_again_with_savepoints_only_when_a_job_fails() {
        let (_dir, db) = open();
        create_table(&db).await;

        let (runs, answers) = run_counted(&db, 0..10, None).await;
        assert_eq!(runs, vec![1; 10], "all succeed: each job ran once");
        assert!(answers.iter().all(Result::is_ok), "{answers:?}");
        assert_eq!(count(&db).await, 10);

        let (runs, answers) = run_counted(&db, 10..20, Some(13)).await;
        assert_eq!(
            runs[..4],
            [2, 2, 2, 2],
            "up to the failure: run, rolled back, run again"
        );
        assert_eq!(runs[4..], [1; 6], "after it: run once, with savepoints");
        for (k, answer) in (10..20).zip(&answers) {
            match answer {
                Err(StoreError::Conflict(_)) if k == 13 => {}
                Ok(v) if k != 13 => assert_eq!(*v, k),
                other => panic!("job {k}: {other:?}"),
            }
        }
        assert_eq!(count(&db).await, 19, "all but the failed job's insert");

        let err = db
            .write(|txn| -> StoreResult<()> {
                txn.execute("INSERT INTO t (k, v) VALUES (99, 'x')", [])
                    .map_err(map_err)?;
                Err(StoreError::Conflict("alone".into()))
            })
            .await
            .expect_err("fails");
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        assert_eq!(count(&db).await, 19, "its insert was rolled back");
    }

    /// The writer lingers only while jobs come faster than `BUSY_JOBS_PER_SEC`: not for one
    /// client's requests one after the other, and not for the first job after a busy spell.
    #[test]
    fn the_writer_lingers_only_while_jobs_come_fast() {
        let t0 = Instant::now();
        let at = |us: u64| t0 + Duration::from_micros(us);
        let mut one_client = Arrivals::new(t0);
        // One job every 300 us (a single client's round trip): never busy.
        assert!((1..=200).all(|i| !one_client.busy(1, at(i * 300))));

        let mut loaded = Arrivals::new(t0);
        // One job every 100 us (10,000/s): busy from the end of the first window on.
        let busy: Vec<bool> = (1..=300).map(|i| loaded.busy(1, at(i * 100))).collect();
        assert!(
            !busy[..99].iter().any(|&b| b),
            "not before a window was measured"
        );
        assert!(busy[100..].iter().all(|&b| b), "busy once measured");
        // Then a pause of a second: the first job after it is not held back.
        assert!(!loaded.busy(1, at(300 * 100 + 1_000_000)));
        // Batches count by their jobs: 8 jobs every millisecond is 8,000/s.
        let mut batched = Arrivals::new(t0);
        let busy: Vec<bool> = (1..=30).map(|i| batched.busy(8, at(i * 1_000))).collect();
        assert!(busy[10..].iter().all(|&b| b), "{busy:?}");
    }

    #[tokio::test]
    async fn a_panicking_job_does_not_stop_the_writer() {
        let (_dir, db) = open();
        create_table(&db).await;
        let err = db
            .write(|_| -> StoreResult<()> { panic!("boom") })
            .await
            .expect_err("panicked job");
        assert!(matches!(err, StoreError::Permanent(_)), "{err:?}");
        db.write(|txn| {
            txn.execute("INSERT INTO t (k, v) VALUES (1, 'after')", [])
                .map_err(map_err)
        })
        .await
        .expect("writer still alive");
        assert_eq!(count(&db).await, 1);
    }

    #[tokio::test]
    async fn writes_survive_drop_and_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        {
            let db = Db::open(&path).expect("open");
            create_table(&db).await;
            db.write(|txn| {
                txn.execute("INSERT INTO t (k, v) VALUES (1, 'kept')", [])
                    .map_err(map_err)
            })
            .await
            .expect("insert");
        }
        let db = Db::open(&path).expect("reopen");
        assert_eq!(count(&db).await, 1);
        let mode: String = db
            .read(|conn| {
                conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))
                    .map_err(map_err)
            })
            .await
            .expect("pragma");
        assert_eq!(mode, "wal");
    }

    #[test]
    fn busy_and_locked_are_retryable() {
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        assert!(map_err(busy).is_retryable());
        let locked = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_LOCKED),
            None,
        );
        assert!(map_err(locked).is_retryable());
        assert!(!map_err(rusqlite::Error::QueryReturnedNoRows).is_retryable());
    }

    #[tokio::test]
    async fn a_second_process_holding_the_lock_is_unavailable() {
        let (dir, db) = open();
        create_table(&db).await;
        // Lower the writer's busy timeout so the test is quick.
        db.write(|txn| txn.busy_timeout(Duration::from_millis(50)).map_err(map_err))
            .await
            .expect("set timeout");
        // Another connection (as another process would) takes the write lock and keeps it.
        let other = Connection::open(dir.path().join("t.db")).expect("other");
        other.execute_batch("BEGIN IMMEDIATE").expect("lock");
        let err = db
            .write(|txn| {
                txn.execute("INSERT INTO t (k, v) VALUES (1, 'x')", [])
                    .map_err(map_err)
            })
            .await
            .expect_err("locked");
        assert!(err.is_retryable(), "{err:?}");
        other.execute_batch("ROLLBACK").expect("unlock");
        db.write(|txn| {
            txn.execute("INSERT INTO t (k, v) VALUES (1, 'x')", [])
                .map_err(map_err)
        })
        .await
        .expect("works again");
    }

    async fn insert_rows(db: &Db, keys: std::ops::Range<i64>, bytes: usize) {
        for k in keys {
            db.write(move |txn| {
                txn.execute(
                    "INSERT INTO t (k, v) VALUES (?1, ?2)",
                    params![k, "x".repeat(bytes)],
                )
                .map(|_| ())
                .map_err(map_err)
            })
            .await
            .expect("insert");
        }
    }

    fn file_len(path: &Path) -> u64 {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn committed_pages_reach_the_database_file_in_the_background() {
        let (dir, db) = open();
        create_table(&db).await;
        let main = dir.path().join("t.db");
        let before = file_len(&main);
        // ~600 WAL pages: far below the writer's own checkpoint at WAL_RESTART_PAGES.
        insert_rows(&db, 0..200, 8_000).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(4);
        while file_len(&main) < before + 200 * 8_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "the rows are still only in the WAL: {} bytes in the database file",
                file_len(&main)
            );
            tokio::time::sleep(CHECKPOINT_EVERY / 4).await;
        }
        assert_eq!(count(&db).await, 200);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_restarts_instead_of_growing() {
        let (dir, db) = open();
        create_table(&db).await;
        // 20,000 rows of 8 KB: over 40,000 WAL pages written, 2.5 times the restart bound.
        insert_rows(&db, 0..20_000, 8_000).await;
        // A writer checkpoint that meets a background pass (or a reader's snapshot) is tried
        // again at the next commit, so the WAL may pass the bound by some pages; without
        // restarts it would hold every page written.
        let frame = 4096 + 24;
        let bound = 32 + 2 * WAL_RESTART_PAGES as u64 * frame;
        let wal = file_len(&dir.path().join("t.db-wal"));
        assert!(wal <= bound, "WAL of {wal} bytes, bound {bound}");
        assert!(
            20_000 * 8_000 > bound,
            "the rows alone would not fit the bound"
        );
        assert_eq!(count(&db).await, 20_000);
    }
}
