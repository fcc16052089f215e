//! The local scheduler on a manual clock: simulated hours and months run in milliseconds, with
//! exact scheduled times (no drift), no double fires, no replay after a restart, and, on a real
//! SQLite store, one execution per fire however many schedulers fire it.

use std::collections::{BTreeSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use wf_app::local::{LocalApp, LocalOptions};
use wf_app::testing::ManualClock;
use wf_app::triggers::schedule::{
    FireSink, Fired, Scheduler, Sleeper, StartExecutionSink, TokioSleeper, schedule_specs,
    scheduled_execution_id,
};
use wf_app::{App, AppError};
use wf_core::cron::CronSpec;
use wf_core::execution::{ExecutionQuery, ExecutionStatus};
use wf_core::model::Workflow;
use wf_core::ports::{Clock, DefinitionStore, ExecutionStore, SystemClock};
use wf_core::time_fmt::{format_ms, parse_ms};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

fn ms(s: &str) -> i64 {
    parse_ms(s).unwrap_or_else(|| panic!("bad time {s}"))
}

fn spec(s: &str) -> Vec<CronSpec> {
    vec![CronSpec::parse(s).unwrap()]
}

/// Fail instead of hanging when a scheduler never becomes idle.
async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// One recorded fire.
#[derive(Debug, Clone, PartialEq)]
struct Rec {
    workflow: String,
    version: u32,
    scheduled: i64,
    /// The clock when it fired.
    at: i64,
    duplicate: bool,
}

/// Records fires (and passes them on to `inner` when set); fails while `failures` has some.
struct Recorder {
    clock: Arc<ManualClock>,
    inner: Option<Arc<dyn FireSink>>,
    fires: Mutex<Vec<Rec>>,
    failures: Mutex<VecDeque<AppError>>,
}

impl Recorder {
    fn new(clock: &Arc<ManualClock>) -> Arc<Self> {
        Self::wrapping(clock, None)
    }

    fn wrapping(clock: &Arc<ManualClock>, inner: Option<Arc<dyn FireSink>>) -> Arc<Self> {
        Arc::new(Self {
            clock: clock.clone(),
            inner,
            fires: Mutex::new(Vec::new()),
            failures: Mutex::new(VecDeque::new()),
        })
    }

    fn fires(&self) -> Vec<Rec> {
        self.fires.lock().unwrap().clone()
    }

    fn times(&self, workflow: &str) -> Vec<i64> {
        self.fires()
            .into_iter()
            .filter(|r| r.workflow == workflow)
            .map(|r| r.scheduled)
            .collect()
    }
}

#[async_trait]
impl FireSink for Recorder {
    async fn fire(
        &self, workflow_id: &str, version: u32, scheduled_ms: i64,
    ) -> Result<Fired, AppError> {
        if let Some(e) = self.failures.lock().unwrap().pop_front() {
            return Err(e);
        }
        let fired = match &self.inner {
            Some(inner) => inner.fire(workflow_id, version, scheduled_ms).await?,
            None => Fired {
                execution_id: scheduled_execution_id(workflow_id, scheduled_ms),
                duplicate: false,
                finished: None,
            },
        };
        self.fires.lock().unwrap().push(Rec {
            workflow: workflow_id.to_string(),
            version,
            scheduled: scheduled_ms,
            at: self.clock.now_ms(),
            duplicate: fired.duplicate,
        });
        Ok(fired)
    }
}

struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        self.stop.send(true).unwrap();
        within("scheduler stop", self.task).await.unwrap();
    }
}

fn scheduler(clock: &Arc<ManualClock>, sink: Arc<dyn FireSink>) -> Arc<Scheduler> {
    Arc::new(Scheduler::new(clock.clone(), clock.clone(), sink))
}

fn start(s: &Arc<Scheduler>) -> Running {
    let (stop, rx) = watch::channel(false);
    Running {
        stop,
        task: tokio::spawn(s.clone().run(rx)),
    }
}

/// Every `step` from `first` to `last` inclusive.
fn every(first: i64, last: i64, step: i64) -> Vec<i64> {
    (0..)
        .map(|i| first + i * step)
        .take_while(|t| *t <= last)
        .collect()
}

fn fmt_all(v: &[i64]) -> Vec<String> {
    v.iter().copied().map(format_ms).collect()
}

#[tokio::test]
async fn every_five_minutes_fires_on_the_scheduled_times_for_hours_without_drift() {
    let t0 = ms("2026-11-24T10:02:13.456Z");
    let clock = ManualClock::new(t0);
    let rec = Recorder::new(&clock);
    let s = scheduler(&clock, rec.clone());
    s.set("five", 1, spec("*/5 * * * *"));
    let run = start(&s);

    // Three hours woken exactly on time.
    within("3 h on time", clock.run_until(1, t0 + 3 * HOUR, 0)).await;
    let on_time = rec.fires();
    assert_eq!(
        fmt_all(&rec.times("five")),
        fmt_all(&every(
            ms("2026-11-24T10:05:00Z"),
            ms("2026-11-24T13:00:00Z"),
            5 * MINUTE
        ))
    );
    assert!(
        on_time
            .iter()
            .all(|r| r.at == r.scheduled && r.version == 1)
    );

    // Three more hours where every wake-up is 2.345 s late (a busy machine): the scheduled
    // times stay on the 5-minute grid: the next fire is computed from the previous scheduled
    // time, never from "now + 5 minutes".
    within("3 h late", clock.run_until(1, t0 + 6 * HOUR, 2_345)).await;
    let all = rec.times("five");
    assert_eq!(
        fmt_all(&all),
        fmt_all(&every(
            ms("2026-11-24T10:05:00Z"),
            ms("2026-11-24T16:00:00Z"),
            5 * MINUTE
        ))
    );
    for r in &rec.fires()[on_time.len()..] {
        assert_eq!(r.at - r.scheduled, 2_345, "{r:?}");
    }
    // No time fired twice.
    assert_eq!(all.iter().collect::<BTreeSet<_>>().len(), all.len());
    run.stop().await;
}

#[tokio::test]
async fn a_late_wake_up_fires_the_latest_due_time_once_not_a_burst() {
    let clock = ManualClock::new(ms("2026-11-24T10:02:00Z"));
    let rec = Recorder::new(&clock);
    let s = scheduler(&clock, rec.clone());
    s.set("five", 1, spec("*/5 * * * *"));
    let run = start(&s);
    within("idle", clock.wait_parked(1)).await;
    assert_eq!(clock.parked(), vec![ms("2026-11-24T10:05:00Z")]);

    // The machine slept from 10:02 to 11:17: 15 runs were due; one fires, the latest.
    clock.set(ms("2026-11-24T11:17:00Z"));
    within("after resume", clock.wait_parked(1)).await;
    assert_eq!(fmt_all(&rec.times("five")), ["2026-11-24T11:15:00.000Z"]);
    assert_eq!(clock.parked(), vec![ms("2026-11-24T11:20:00Z")]);

    within("on", clock.run_until(1, ms("2026-11-24T11:31:00Z"), 0)).await;
    assert_eq!(
        fmt_all(&rec.times("five")),
        [
            "2026-11-24T11:15:00.000Z",
            "2026-11-24T11:20:00.000Z",
            "2026-11-24T11:25:00.000Z",
            "2026-11-24T11:30:00.000Z"
        ]
    );
    run.stop().await;
}

#[tokio::test]
async fn a_restart_does_not_replay_the_fires_missed_while_stopped() {
    let clock = ManualClock::new(ms("2026-11-24T10:00:30Z"));
    let rec = Recorder::new(&clock);

    let first = scheduler(&clock, rec.clone());
    first.set("five", 1, spec("*/5 * * * *"));
    let run = start(&first);
    within(
        "first run",
        clock.run_until(1, ms("2026-11-24T10:20:30Z"), 0),
    )
    .await;
    run.stop().await;

    // Stopped from 10:20:30 to 10:42:10: 10:25 ... 10:40 are missed, and stay missed.
    clock.set(ms("2026-11-24T10:42:10Z"));
    let second = scheduler(&clock, rec.clone());
    second.set("five", 1, spec("*/5 * * * *"));
    let run = start(&second);
    within(
        "second run",
        clock.run_until(1, ms("2026-11-24T11:00:00Z"), 0),
    )
    .await;
    run.stop().await;

    // A restart in the very minute of a fire (at 11:00:00.000, just after it fired) does not
    // fire it again either.
    let third = scheduler(&clock, rec.clone());
    third.set("five", 1, spec("*/5 * * * *"));
    let run = start(&third);
    within(
        "third run",
        clock.run_until(1, ms("2026-11-24T11:05:00Z"), 0),
    )
    .await;
    run.stop().await;

    assert_eq!(
        fmt_all(&rec.times("five")),
        [
            "2026-11-24T10:05:00.000Z",
            "2026-11-24T10:10:00.000Z",
            "2026-11-24T10:15:00.000Z",
            "2026-11-24T10:20:00.000Z",
            "2026-11-24T10:45:00.000Z",
            "2026-11-24T10:50:00.000Z",
            "2026-11-24T10:55:00.000Z",
            "2026-11-24T11:00:00.000Z",
            "2026-11-24T11:05:00.000Z"
        ]
    );
}

#[tokio::test]
async fn a_schedule_set_before_the_loop_starts_fires_only_after_the_start() {
    let clock = ManualClock::new(ms("2026-11-24T10:00:30Z"));
    let rec = Recorder::new(&clock);
    let s = scheduler(&clock, rec.clone());
    s.set("five", 1, spec("*/5 * * * *"));
    assert_eq!(s.next_fire(), Some(ms("2026-11-24T10:05:00Z")));
    // The process takes a while before the loop starts: 10:05 passed meanwhile.
    clock.set(ms("2026-11-24T10:06:00Z"));
    let run = start(&s);
    within("run", clock.run_until(1, ms("2026-11-24T10:10:00Z"), 0)).await;
    assert_eq!(fmt_all(&rec.times("five")), ["2026-11-24T10:10:00.000Z"]);
    run.stop().await;
}

#[tokio::test]
async fn removing_a_workflow_stops_its_fires_and_others_go_on() {
    let clock = ManualClock::new(ms("2026-11-24T10:01:00Z"));
    let rec = Recorder::new(&clock);
    let s = scheduler(&clock, rec.clone());
    s.set("five", 1, spec("*/5 * * * *"));
    s.set("quarter", 4, spec("*/15 * * * *"));
    let run = start(&s);
    within(
        "first half hour",
        clock.run_until(1, ms("2026-11-24T10:31:00Z"), 0),
    )
    .await;

    let parks = clock.parks();
    s.remove("five");
    s.remove("never-scheduled"); // harmless
    within("re-plan", clock.wait_parked_since(1, parks)).await;
    assert_eq!(
        s.scheduled()
            .iter()
            .map(|w| w.workflow_id.as_str())
            .collect::<Vec<_>>(),
        ["quarter"]
    );
    within(
        "an hour on",
        clock.run_until(1, ms("2026-11-24T11:31:00Z"), 0),
    )
    .await;

    assert_eq!(
        fmt_all(&rec.times("five")),
        fmt_all(&every(
            ms("2026-11-24T10:05:00Z"),
            ms("2026-11-24T10:30:00Z"),
            5 * MINUTE
        ))
    );
    assert_eq!(
        fmt_all(&rec.times("quarter")),
        fmt_all(&every(
            ms("2026-11-24T10:15:00Z"),
            ms("2026-11-24T11:30:00Z"),
            15 * MINUTE
        ))
    );
    assert!(
        rec.fires()
            .iter()
            .filter(|r| r.workflow == "quarter")
            .all(|r| r.version == 4)
    );

    // With nothing scheduled the loop waits for changes (no busy loop) and still stops.
    let parks = clock.parks();
    s.remove("quarter");
    within("idle forever", clock.wait_parked_since(1, parks)).await;
    assert_eq!(clock.parked(), vec![i64::MAX]);
    assert_eq!(s.next_fire(), None);
    run.stop().await;
}

#[tokio::test]
async fn updating_to_a_new_version_fires_the_new_version() {
    let clock = ManualClock::new(ms("2026-11-24T10:01:00Z"));
    let rec = Recorder::new(&clock);
    let s = scheduler(&clock, rec.clone());
    s.set("report", 1, spec("*/5 * * * *"));
    let run = start(&s);
    within("v1", clock.run_until(1, ms("2026-11-24T10:12:00Z"), 0)).await;

    // v2, same schedule: the next fire keeps its time and starts v2.
    let parks = clock.parks();
    s.set("report", 2, spec("*/5 * * * *"));
    within("re-plan", clock.wait_parked_since(1, parks)).await;
    within("v2", clock.run_until(1, ms("2026-11-24T10:22:00Z"), 0)).await;

    // v3 moves to hourly: the 5-minute schedule is gone, the first hourly fire is 11:00.
    let parks = clock.parks();
    s.set("report", 3, spec("@hourly"));
    within("re-plan", clock.wait_parked_since(1, parks)).await;
    within("v3", clock.run_until(1, ms("2026-11-24T12:30:00Z"), 0)).await;

    let got: Vec<(String, u32)> = rec
        .fires()
        .into_iter()
        .map(|r| (format_ms(r.scheduled), r.version))
        .collect();
    let want: Vec<(String, u32)> = [
        ("2026-11-24T10:05:00.000Z", 1),
        ("2026-11-24T10:10:00.000Z", 1),
        ("2026-11-24T10:15:00.000Z", 2),
        ("2026-11-24T10:20:00.000Z", 2),
        ("2026-11-24T11:00:00.000Z", 3),
        ("2026-11-24T12:00:00.000Z", 3),
    ]
    .into_iter()
    .map(|(t, v)| (t.to_string(), v))
    .collect();
    assert_eq!(got, want);
    run.stop().await;
}

#[tokio::test]
async fn presets_fire_on_their_calendar() {
    let t0 = ms("2026-11-24T10:02:00Z"); // a Tuesday
    let clock = ManualClock::new(t0);
    let rec = Recorder::new(&clock);
    let s = scheduler(&clock, rec.clone());
    s.set("hourly", 1, spec("@hourly"));
    s.set("daily", 1, spec("@daily"));
    s.set("weekly", 1, spec("@weekly"));
    s.set("monthly", 1, spec("@monthly"));
    let run = start(&s);
    let end = ms("2027-03-02T00:00:00Z");
    within("98 days", clock.run_until(1, end, 0)).await;
    run.stop().await;

    assert_eq!(
        fmt_all(&rec.times("hourly")),
        fmt_all(&every(ms("2026-11-24T11:00:00Z"), end, HOUR))
    );
    assert_eq!(
        fmt_all(&rec.times("daily")),
        fmt_all(&every(ms("2026-11-25T00:00:00Z"), end, DAY))
    );
    // Sundays at midnight
    assert_eq!(
        fmt_all(&rec.times("weekly")),
        fmt_all(&every(ms("2026-11-29T00:00:00Z"), end, 7 * DAY))
    );
    assert_eq!(
        fmt_all(&rec.times("monthly")),
        [
            "2026-12-01T00:00:00.000Z",
            "2027-01-01T00:00:00.000Z",
            "2027-02-01T00:00:00.000Z",
            "2027-03-01T00:00:00.000Z"
        ]
    );
    assert!(rec.fires().iter().all(|r| r.at == r.scheduled));

    // @every5m over two hours
    let clock = ManualClock::new(t0);
    let rec = Recorder::new(&clock);
    let s = scheduler(&clock, rec.clone());
    s.set("every5m", 1, spec("@every5m"));
    let run = start(&s);
    within("2 h", clock.run_until(1, t0 + 2 * HOUR, 0)).await;
    run.stop().await;
    assert_eq!(
        fmt_all(&rec.times("every5m")),
        fmt_all(&every(
            ms("2026-11-24T10:05:00Z"),
            t0 + 2 * HOUR,
            5 * MINUTE
        ))
    );
}

#[tokio::test]
async fn schedules_of_one_workflow_that_coincide_fire_once() {
    let wf: Workflow = serde_json::from_value(json!({
        "id": "twice",
        "steps": [
            { "id": "start", "type": "start", "triggers": [
                { "type": "schedule", "cron": "*/30 * * * *" },
                { "type": "manual" },
                { "type": "schedule", "cron": "@hourly" },
                { "type": "schedule", "cron": "0 * * * *" } ] }
        ]
    }))
    .unwrap();
    assert_eq!(schedule_specs(&wf).unwrap().len(), 3);
    let clock = ManualClock::new(ms("2026-11-24T10:01:00Z"));
    let rec = Recorder::new(&clock);
    let s = scheduler(&clock, rec.clone());
    assert_eq!(s.set_workflow(&wf, 7).unwrap(), 3);
    // identical expressions are one schedule
    assert_eq!(s.scheduled()[0].crons, ["*/30 * * * *", "0 * * * *"]);
    let run = start(&s);
    within("2 h", clock.run_until(1, ms("2026-11-24T12:01:00Z"), 0)).await;
    assert_eq!(
        fmt_all(&rec.times("twice")),
        fmt_all(&every(
            ms("2026-11-24T10:30:00Z"),
            ms("2026-11-24T12:00:00Z"),
            30 * MINUTE
        ))
    );

    // A version without schedule triggers unschedules the workflow.
    let manual_only: Workflow = serde_json::from_value(json!({
        "id": "twice",
        "steps": [ { "id": "start", "type": "start", "triggers": [ { "type": "manual" } ] } ]
    }))
    .unwrap();
    assert_eq!(s.set_workflow(&manual_only, 8).unwrap(), 0);
    assert!(s.scheduled().is_empty());
    run.stop().await;
}

#[tokio::test]
async fn a_failed_fire_is_retried_for_the_same_time_and_a_permanent_failure_skips_one_run() {
    let clock = ManualClock::new(ms("2026-11-24T10:01:00Z"));
    let rec = Recorder::new(&clock);
    rec.failures
        .lock()
        .unwrap()
        .extend([AppError::retryable("unavailable", "store unavailable")]);
    let s = scheduler(&clock, rec.clone());
    s.set("five", 1, spec("*/5 * * * *"));
    let run = start(&s);
    within("retry", clock.run_until(1, ms("2026-11-24T10:06:00Z"), 0)).await;
    assert_eq!(
        rec.fires()
            .iter()
            .map(|r| (format_ms(r.scheduled), format_ms(r.at)))
            .collect::<Vec<_>>(),
        [(
            "2026-11-24T10:05:00.000Z".to_string(),
            "2026-11-24T10:05:01.000Z".to_string()
        )]
    );

    rec.failures
        .lock()
        .unwrap()
        .extend([AppError::invalid("invalid_input", "input does not match")]);
    within("skip", clock.run_until(1, ms("2026-11-24T10:16:00Z"), 0)).await;
    assert_eq!(
        fmt_all(&rec.times("five")),
        ["2026-11-24T10:05:00.000Z", "2026-11-24T10:15:00.000Z"]
    );
    run.stop().await;
}

fn tick_workflow(label: &str) -> Workflow {
    serde_json::from_value(json!({
        "id": "tick",
        "steps": [
            { "id": "start", "type": "start",
              "triggers": [ { "type": "schedule", "cron": "*/5 * * * *" } ],
              "next": "out" },
            { "id": "out", "type": "output",
              "output": { "at": "{{ input.scheduledTime }}", "label": label,
                          "trigger": "{{ execution.trigger.scheduledTime }}" } }
        ]
    }))
    .unwrap()
}

async fn tick_executions(app: &LocalApp) -> Vec<wf_core::execution::ExecutionRecord> {
    let page = app
        .store
        .list_executions(&ExecutionQuery {
            workflow_id: Some("tick".into()),
            limit: 1000,
            ..ExecutionQuery::default()
        })
        .await
        .unwrap();
    assert!(page.next_cursor.is_none());
    let mut items = page.items;
    items.sort_by(|a, b| a.id.cmp(&b.id));
    items
}

#[tokio::test]
async fn two_schedulers_on_one_store_start_one_execution_per_fire() {
    let dir = tempfile::tempdir().unwrap();
    let app = LocalApp::open(&dir.path().join("wf.db"), LocalOptions::default()).unwrap();
    let v1 = app.publish(tick_workflow("v1")).await.unwrap();
    assert_eq!(v1.version, 1);

    // Two schedulers (two processes, in effect: each with its own worker) on one store and one
    // clock: every fire time is fired by both.
    let clock = ManualClock::new(ms("2026-11-24T10:01:00Z"));
    let apps: Vec<Arc<App>> = (0..2)
        .map(|_| Arc::new(App::new(app.services().clone())))
        .collect();
    let recorders: Vec<Arc<Recorder>> = apps
        .iter()
        .map(|own| {
            let sink = StartExecutionSink::new(Arc::downgrade(own));
            Recorder::wrapping(&clock, Some(Arc::new(sink)))
        })
        .collect();
    let schedulers: Vec<Arc<Scheduler>> = recorders
        .iter()
        .map(|r| scheduler(&clock, r.clone()))
        .collect();
    for s in &schedulers {
        s.set("tick", 1, spec("*/5 * * * *"));
    }
    let runs: Vec<Running> = schedulers.iter().map(start).collect();
    within("an hour", clock.run_until(2, ms("2026-11-24T11:01:00Z"), 0)).await;

    // Then the workflow moves to v2 (both schedulers are told) for half an hour more.
    let v2 = app.publish(tick_workflow("v2")).await.unwrap();
    let parks = clock.parks();
    for s in &schedulers {
        s.set("tick", v2.version, spec("*/5 * * * *"));
    }
    within("re-plan", clock.wait_parked_since(2, parks + 1)).await;
    within(
        "half an hour",
        clock.run_until(2, ms("2026-11-24T11:31:00Z"), 0),
    )
    .await;
    for r in runs {
        r.stop().await;
    }

    let times = every(
        ms("2026-11-24T10:05:00Z"),
        ms("2026-11-24T11:30:00Z"),
        5 * MINUTE,
    );
    for r in &recorders {
        assert_eq!(fmt_all(&r.times("tick")), fmt_all(&times));
        // each fired on time, first try (a conflict would have been a retry a second later)
        assert!(
            r.fires().iter().all(|f| f.at == f.scheduled),
            "{:?}",
            r.fires()
        );
    }
    // One execution per fire time, with the derived id, the schedule input and trigger.
    let execs = tick_executions(&app).await;
    assert_eq!(execs.len(), times.len());
    for (e, t) in execs.iter().zip(&times) {
        let at = format_ms(*t);
        assert_eq!(e.id, scheduled_execution_id("tick", *t));
        assert_eq!(e.input, json!({ "scheduledTime": at }));
        assert_eq!(e.trigger.kind, "schedule");
        assert_eq!(e.trigger.details["scheduledTime"], json!(at));
        assert_eq!(
            e.version,
            if *t < ms("2026-11-24T11:05:00Z") {
                1
            } else {
                2
            }
        );
    }

    // A third process that believes 10:05 is due (restarted inside that minute): the same
    // execution, nothing new.
    let again = app.app.fire_schedule("tick", 1, times[0]).await.unwrap();
    assert_eq!(again.execution_id, execs[0].id);
    assert!(again.duplicate);
    assert_eq!(tick_executions(&app).await.len(), times.len());

    // The executions run to completion with the scheduled time as input.
    let pool = app.start_workers();
    for (e, t) in execs.iter().zip(&times) {
        let view = within("execution", app.wait_finished(&e.id)).await.unwrap();
        assert_eq!(
            view.execution.status,
            ExecutionStatus::Succeeded,
            "{view:?}"
        );
        let label = if e.version == 1 { "v1" } else { "v2" };
        assert_eq!(
            view.execution.output,
            json!({ "at": format_ms(*t), "label": label, "trigger": format_ms(*t) })
        );
    }
    pool.shutdown().await;
}

#[tokio::test]
async fn sync_schedules_the_active_versions_of_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let app = LocalApp::open(&dir.path().join("wf.db"), LocalOptions::default()).unwrap();
    app.publish(tick_workflow("v1")).await.unwrap();
    app.publish(tick_workflow("v2")).await.unwrap();
    let clock = ManualClock::new(ms("2026-11-24T10:01:00Z"));
    let s = scheduler(&clock, Recorder::new(&clock));

    // Published but not active: nothing.
    assert_eq!(s.sync(&*app.store).await.unwrap(), 0);
    assert!(s.scheduled().is_empty());

    let set_active = |active: bool, version: u32| {
        let store = app.store.clone();
        async move {
            let mut meta = store.get_meta("tick").await.unwrap().unwrap();
            let expected = meta.updated_at;
            meta.active = active;
            meta.active_version = Some(version);
            meta.updated_at = expected + 1;
            store.put_meta(&meta, Some(expected)).await.unwrap();
        }
    };
    set_active(true, 1).await;
    assert_eq!(s.sync(&*app.store).await.unwrap(), 1);
    let listed = s.scheduled();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].workflow_id, "tick");
    assert_eq!(listed[0].version, 1);
    assert_eq!(listed[0].crons, ["*/5 * * * *"]);
    assert_eq!(listed[0].next_fire_ms, Some(ms("2026-11-24T10:05:00Z")));

    set_active(true, 2).await; // rollforward
    s.sync(&*app.store).await.unwrap();
    assert_eq!(s.scheduled()[0].version, 2);

    set_active(false, 2).await;
    assert_eq!(s.sync(&*app.store).await.unwrap(), 0);
    assert!(s.scheduled().is_empty());
}

#[tokio::test]
async fn the_tokio_sleeper_wakes_at_the_wall_clock_time() {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let sleeper = TokioSleeper::new(clock.clone()).with_max_nap(Duration::from_millis(20));
    let target = clock.now_ms() + 150;
    within("sleep", sleeper.sleep_until(target)).await;
    let now = clock.now_ms();
    assert!(now >= target && now < target + 1_000, "{now} vs {target}");
    // a time in the past returns at once
    within("past", sleeper.sleep_until(target - 10_000)).await;
}
