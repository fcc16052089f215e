//! The local schedule trigger: a [`Scheduler`] that fires active workflows' cron schedules (UTC)
//! in process (`wf dev`). On AWS, EventBridge rules fire instead and the trigger function calls
//! [`App::fire_schedule`], so both homes derive the same execution id from the same fire.
//!
//! Rules:
//! * Each fire's time comes from the previous *scheduled* time (`CronSpec::next_after`), never
//!   from "now + interval", so there is no drift however late the process wakes.
//! * A fire missed while the scheduler was stopped is not replayed: when [`Scheduler::run`]
//!   starts, the first fire of every schedule is the next one after now.
//! * A late wake-up (the process was suspended, the machine slept) fires the latest due time
//!   once, not a burst of every time missed.
//! * A fire's execution id is a function of (workflow id, scheduled time)
//!   ([`scheduled_execution_id`]) and its dedupe key is `schedule:<scheduled RFC 3339>`, so two
//!   schedulers on one store, or a restart inside the same minute, start one execution.
//! * Time comes from a [`Clock`] and waiting from a [`Sleeper`], so tests drive time with a
//!   `testing::ManualClock` (feature `test-support`) instead of sleeping for real minutes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, watch};
use tracing::{debug, error, info, warn};
use wf_core::StoreResult;
use wf_core::cron::CronSpec;
use wf_core::model::{Trigger, Workflow};
use wf_core::ports::{Clock, DefinitionStore};
use wf_core::time_fmt::format_ms;

use crate::app::executions::Started;
use crate::app::{App, AppError};

/// Delays before retrying a fire that failed with a retryable error (store unavailable); the
/// execution id is deterministic, so a retry never starts a second execution.
const RETRY_DELAYS_MS: [i64; 3] = [1_000, 5_000, 30_000];

pub use crate::app::triggers::{schedule_dedupe_key, scheduled_execution_id};

/// The schedules (parsed crons) of a workflow's start step, in order. Empty when it has none.
pub fn schedule_specs(workflow: &Workflow) -> Result<Vec<CronSpec>, AppError> {
    let Some(start) = workflow.start_step() else {
        return Ok(Vec::new());
    };
    start
        .triggers
        .iter()
        .filter_map(|t| match t {
            Trigger::Schedule(s) => Some(CronSpec::parse(&s.cron).map_err(|e| {
                AppError::invalid(
                    "invalid_cron",
                    format!("workflow {}: schedule {:?}: {e}", workflow.id, s.cron),
                )
            })),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Firing

/// What a fire started (`duplicate`: another scheduler, or a restart, fired this very time
/// already: nothing new was started).
pub type Fired = Started;

/// Where due fires go. Production: [`StartExecutionSink`]; tests may record them. A retryable
/// error is tried again a few times (same scheduled time, so never a second execution).
#[async_trait]
pub trait FireSink: Send + Sync {
    async fn fire(
        &self, workflow_id: &str, version: u32, scheduled_ms: i64,
    ) -> Result<Fired, AppError>;
}

/// Starts an execution per fire ([`App::fire_schedule`]).
pub struct StartExecutionSink {
    app: Weak<App>,
}

impl StartExecutionSink {
    pub fn new(app: Weak<App>) -> Self {
        Self { app }
    }
}

#[async_trait]
impl FireSink for StartExecutionSink {
    async fn fire(
        &self, workflow_id: &str, version: u32, scheduled_ms: i64,
    ) -> Result<Fired, AppError> {
        let app = self
            .app
            .upgrade()
            .ok_or_else(|| AppError::retryable("shutting_down", "the application is stopping"))?;
        app.fire_schedule(workflow_id, version, scheduled_ms).await
    }
}

// ---------------------------------------------------------------------------------------------
// Waiting

/// Waits until a clock reads a given time. Implementations may return early (the scheduler
/// looks at its clock again); `i64::MAX` means "until cancelled".
#[async_trait]
pub trait Sleeper: Send + Sync {
    async fn sleep_until(&self, at_ms: i64);
}

/// Sleeps on tokio's timer against a wall [`Clock`], in naps of at most `max_nap`, so that a
/// wall-clock jump or a suspended machine (tokio's clock is monotonic and may stop while
/// suspended) is noticed within one nap.
pub struct TokioSleeper {
    clock: Arc<dyn Clock>,
    max_nap: Duration,
}

impl TokioSleeper {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            max_nap: Duration::from_secs(15),
        }
    }

    pub fn with_max_nap(mut self, max_nap: Duration) -> Self {
        self.max_nap = max_nap.max(Duration::from_millis(1));
        self
    }
}

#[async_trait]
impl Sleeper for TokioSleeper {
    async fn sleep_until(&self, at_ms: i64) {
        loop {
            let now = self.clock.now_ms();
            if now >= at_ms {
                return;
            }
            let wait = Duration::from_millis((at_ms - now) as u64).min(self.max_nap);
            tokio::time::sleep(wait).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The scheduler

/// One scheduled workflow, as [`Scheduler::scheduled`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledWorkflow {
    pub workflow_id: String,
    /// The version fires start (the active one).
    pub version: u32,
    /// The 5-field expressions.
    pub crons: Vec<String>,
    /// The next fire, if any.
    pub next_fire_ms: Option<i64>,
}

struct Entry {
    version: u32,
    /// Each schedule with its next fire time.
    specs: Vec<(CronSpec, Option<i64>)>,
}

/// One fire to perform.
#[derive(Debug, Clone)]
struct Fire {
    workflow_id: String,
    version: u32,
    scheduled_ms: i64,
    /// 0 for the first try.
    attempt: usize,
}

/// Fires the schedules of active workflows. Share it in an `Arc`: one task runs
/// [`Scheduler::run`], others update the set with [`Scheduler::set`] / [`Scheduler::remove`]
/// (or [`Scheduler::sync`]) as workflows are published, activated and deactivated.
pub struct Scheduler {
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
    sink: Arc<dyn FireSink>,
    entries: Mutex<BTreeMap<String, Entry>>,
    changed: Notify,
}

impl Scheduler {
    pub fn new(clock: Arc<dyn Clock>, sleeper: Arc<dyn Sleeper>, sink: Arc<dyn FireSink>) -> Self {
        Self {
            clock,
            sleeper,
            sink,
            entries: Mutex::new(BTreeMap::new()),
            changed: Notify::new(),
        }
    }

    /// The production scheduler: `clock`, tokio's timer, fires start executions of `app`.
    pub fn for_app(clock: Arc<dyn Clock>, app: Weak<App>) -> Self {
        Self::new(
            clock.clone(),
            Arc::new(TokioSleeper::new(clock)),
            Arc::new(StartExecutionSink::new(app)),
        )
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Schedule `workflow_id` at `version` on `specs` (replacing what it had; no specs removes
    /// it). A schedule it had already keeps its next fire, so an update at the very moment of
    /// a fire neither skips nor repeats it; a new schedule first fires after now.
    pub fn set(&self, workflow_id: &str, version: u32, specs: Vec<CronSpec>) {
        if specs.is_empty() {
            self.remove(workflow_id);
            return;
        }
        let now = self.clock.now_ms();
        {
            let mut entries = self.lock();
            let previous: HashMap<String, Option<i64>> = entries
                .get(workflow_id)
                .map(|e| {
                    e.specs
                        .iter()
                        .map(|(s, next)| (s.expression().to_string(), *next))
                        .collect()
                })
                .unwrap_or_default();
            let mut specs_with_next: Vec<(CronSpec, Option<i64>)> = Vec::new();
            for spec in specs {
                if specs_with_next
                    .iter()
                    .any(|(s, _)| s.expression() == spec.expression())
                {
                    continue;
                }
                let next = match previous.get(spec.expression()) {
                    Some(next) => *next,
                    None => spec.next_after(now),
                };
                specs_with_next.push((spec, next));
            }
            info!(
                workflow_id,
                version,
                crons = %specs_with_next.iter().map(|(s, _)| s.expression()).collect::<Vec<_>>().join(" | "),
                next = %specs_with_next.iter().filter_map(|(_, n)| *n).min().map(format_ms).unwrap_or_default(),
                "schedule set"
            );
            entries.insert(
                workflow_id.to_string(),
                Entry {
                    version,
                    specs: specs_with_next,
                },
            );
        }
        self.changed.notify_one();
    }

    /// Schedule a published version by its start step's schedule triggers (none removes it).
    /// Returns how many schedules it has.
    pub fn set_workflow(&self, workflow: &Workflow, version: u32) -> Result<usize, AppError> {
        let specs = schedule_specs(workflow)?;
        let n = specs.len();
        self.set(&workflow.id, version, specs);
        Ok(n)
    }

    /// Stop firing `workflow_id` (nothing happens if it is not scheduled).
    pub fn remove(&self, workflow_id: &str) {
        let removed = self.lock().remove(workflow_id).is_some();
        if removed {
            info!(workflow_id, "schedule removed");
            self.changed.notify_one();
        }
    }

    /// Make the set match the store: every active workflow's active version with schedule
    /// triggers is scheduled, everything else removed. Returns how many are scheduled. A
    /// version whose schedule does not parse is skipped with an error log (publishing
    /// validates, so that means a corrupted store).
    pub async fn sync(&self, defs: &dyn DefinitionStore) -> StoreResult<usize> {
        let mut wanted: Vec<(String, u32, Vec<CronSpec>)> = Vec::new();
        for meta in defs.list_metas().await? {
            let (true, Some(version)) = (meta.active, meta.active_version) else {
                continue;
            };
            let Some(workflow) = defs.get_version(&meta.id, version).await? else {
                warn!(workflow_id = %meta.id, version, "active version not found; not scheduled");
                continue;
            };
            match schedule_specs(&workflow) {
                Ok(specs) if !specs.is_empty() => wanted.push((meta.id.clone(), version, specs)),
                Ok(_) => {}
                Err(e) => {
                    error!(workflow_id = %meta.id, version, error = %e, "bad schedule; not scheduled")
                }
            }
        }
        let stale: Vec<String> = self
            .lock()
            .keys()
            .filter(|id| !wanted.iter().any(|(w, _, _)| w == *id))
            .cloned()
            .collect();
        for id in stale {
            self.remove(&id);
        }
        let n = wanted.len();
        for (id, version, specs) in wanted {
            self.set(&id, version, specs);
        }
        Ok(n)
    }

    /// What is scheduled, by workflow id.
    pub fn scheduled(&self) -> Vec<ScheduledWorkflow> {
        self.lock()
            .iter()
            .map(|(id, e)| ScheduledWorkflow {
                workflow_id: id.clone(),
                version: e.version,
                crons: e
                    .specs
                    .iter()
                    .map(|(s, _)| s.expression().to_string())
                    .collect(),
                next_fire_ms: e.specs.iter().filter_map(|(_, n)| *n).min(),
            })
            .collect()
    }

    /// The earliest next fire of any workflow.
    pub fn next_fire(&self) -> Option<i64> {
        self.lock()
            .values()
            .flat_map(|e| e.specs.iter().filter_map(|(_, n)| *n))
            .min()
    }

    /// Fire schedules until `shutdown` turns true (or its sender is dropped). One run loop per
    /// scheduler. Fires missed before the loop starts are not replayed: each schedule's first
    /// fire is the next one after now.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let started = self.clock.now_ms();
        {
            let mut entries = self.lock();
            for e in entries.values_mut() {
                for (spec, next) in &mut e.specs {
                    *next = spec.next_after(started);
                }
            }
        }
        let workflows = self.lock().len();
        let next = self.next_fire();
        info!(
            workflows,
            now = %format_ms(started),
            next = %next.map(format_ms).unwrap_or_default(),
            "scheduler started"
        );
        let mut retries: Vec<(i64, Fire)> = Vec::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let now = self.clock.now_ms();
            let mut due = self.take_due(now);
            let (ready, later): (Vec<_>, Vec<_>) =
                retries.drain(..).partition(|(at, _)| *at <= now);
            retries = later;
            for (_, mut fire) in ready {
                // A retry starts the version active now; a removed workflow is not retried.
                let active = self.lock().get(&fire.workflow_id).map(|e| e.version);
                if let Some(version) = active {
                    fire.version = version;
                    due.push(fire);
                }
            }
            if !due.is_empty() {
                for fire in due {
                    if let Some(retry) = self.fire(fire).await {
                        retries.push(retry);
                    }
                }
                continue;
            }
            let wake = self
                .next_fire()
                .into_iter()
                .chain(retries.iter().map(|(at, _)| *at))
                .min()
                .unwrap_or(i64::MAX);
            debug!(wake = %if wake == i64::MAX { "never".to_string() } else { format_ms(wake) }, "scheduler idle");
            tokio::select! {
                biased;
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                _ = self.changed.notified() => {}
                _ = self.sleeper.sleep_until(wake) => {}
            }
        }
        info!("scheduler stopped");
    }

    /// Take every fire due at `now` (the latest due time of each schedule, once per
    /// workflow and time) and advance each schedule past it.
    fn take_due(&self, now: i64) -> Vec<Fire> {
        let mut due: BTreeMap<(i64, String), u32> = BTreeMap::new();
        let mut entries = self.lock();
        for (id, entry) in entries.iter_mut() {
            for (spec, next) in &mut entry.specs {
                let Some(first) = *next else { continue };
                if first > now {
                    continue;
                }
                let latest = latest_due(spec, first, now);
                if latest > first {
                    warn!(
                        workflow_id = %id,
                        cron = %spec.expression(),
                        missed_from = %format_ms(first),
                        firing = %format_ms(latest),
                        "woke up late: firing the latest due time once, not the ones missed"
                    );
                }
                due.insert((latest, id.clone()), entry.version);
                *next = spec.next_after(latest);
            }
        }
        due.into_iter()
            .map(|((scheduled_ms, workflow_id), version)| Fire {
                workflow_id,
                version,
                scheduled_ms,
                attempt: 0,
            })
            .collect()
    }

    /// Perform one fire; a retryable failure answers when to try again.
    async fn fire(&self, fire: Fire) -> Option<(i64, Fire)> {
        let scheduled = format_ms(fire.scheduled_ms);
        match self
            .sink
            .fire(&fire.workflow_id, fire.version, fire.scheduled_ms)
            .await
        {
            Ok(fired) => {
                info!(
                    workflow_id = %fire.workflow_id,
                    version = fire.version,
                    scheduled_time = %scheduled,
                    execution_id = %fired.execution_id,
                    duplicate = fired.duplicate,
                    "schedule fired"
                );
                None
            }
            Err(e) if e.is_retryable() && fire.attempt < RETRY_DELAYS_MS.len() => {
                let delay = RETRY_DELAYS_MS[fire.attempt];
                warn!(
                    workflow_id = %fire.workflow_id,
                    version = fire.version,
                    scheduled_time = %scheduled,
                    error = %e,
                    retry_in_ms = delay,
                    "schedule fire failed; retrying"
                );
                let at = self.clock.now_ms() + delay;
                Some((
                    at,
                    Fire {
                        attempt: fire.attempt + 1,
                        ..fire
                    },
                ))
            }
            Err(e) => {
                error!(
                    workflow_id = %fire.workflow_id,
                    version = fire.version,
                    scheduled_time = %scheduled,
                    error = %e,
                    "schedule fire failed; this run is skipped"
                );
                None
            }
        }
    }
}

/// The latest fire time of `spec` in `[first, now]`, where `first` is a fire time `<= now`.
/// The walk starts near `now`, so a long suspension costs a few steps, not one per missed run.
fn latest_due(spec: &CronSpec, first: i64, now: i64) -> i64 {
    let walk = |mut t: i64| {
        while let Some(n) = spec.next_after(t) {
            if n > now {
                break;
            }
            t = n;
        }
        t
    };
    let mut window: i64 = 3_600_000;
    loop {
        let from = now.saturating_sub(window);
        if from < first {
            return walk(first);
        }
        if let Some(t) = spec.next_after(from)
            && t <= now
        {
            return walk(t);
        }
        window = window.saturating_mul(16);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wf_core::time_fmt::parse_ms;

    fn ms(s: &str) -> i64 {
        parse_ms(s).unwrap()
    }

    #[test]
    fn execution_ids_are_deterministic_ulids_at_the_scheduled_time() {
        let t = ms("2026-11-24T09:00:00Z");
        let a = scheduled_execution_id("daily-report", t);
        assert_eq!(a, scheduled_execution_id("daily-report", t));
        assert_ne!(a, scheduled_execution_id("daily-report", t + 60_000));
        assert_ne!(a, scheduled_execution_id("daily-reporT", t));
        let u: ulid::Ulid = a.parse().unwrap();
        assert_eq!(u.timestamp_ms(), t as u64);
        // sortable by scheduled time
        assert!(a < scheduled_execution_id("a", t + 1_000));
        // stable across releases: a fixed value
        assert_eq!(a, "01M86CH3M0MFX8MK3GE08189AY");
        assert_eq!(schedule_dedupe_key(t), "schedule:2026-11-24T09:00:00.000Z");
    }

    #[test]
    fn latest_due_skips_to_the_last_missed_time() {
        let spec = CronSpec::parse("*/5 * * * *").unwrap();
        let first = ms("2026-11-24T10:05:00Z");
        assert_eq!(latest_due(&spec, first, first), first);
        assert_eq!(
            latest_due(&spec, first, ms("2026-11-24T10:09:59.999Z")),
            first
        );
        assert_eq!(
            latest_due(&spec, first, ms("2026-11-24T11:17:00Z")),
            ms("2026-11-24T11:15:00Z")
        );
        // a suspension of a year costs a few steps
        assert_eq!(
            latest_due(&spec, first, ms("2027-11-24T11:17:30Z")),
            ms("2027-11-24T11:15:00Z")
        );
        let yearly = CronSpec::parse("0 0 1 1 *").unwrap();
        assert_eq!(
            latest_due(
                &yearly,
                ms("2027-01-01T00:00:00Z"),
                ms("2030-06-01T00:00:00Z")
            ),
            ms("2030-01-01T00:00:00Z")
        );
    }
}
