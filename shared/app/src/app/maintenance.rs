//! Use cases that keep executions moving when something went wrong elsewhere: the sweep
//! (deadlines, executions left `queued`, tasks a start handed on that never reached a worker,
//! retention) and giving up on a task that cannot be handled (a poisoned task), the same way
//! in both homes.

use std::time::Duration;

use serde_json::{Value, json};
use tracing::{error, info, warn};
use wf_core::StepError;
use wf_core::damaged::is_damaged;
use wf_core::execution::{ExecutionQuery, ExecutionRecord, ExecutionStatus, HandedOff, StepTask};

use super::{App, AppError};

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    pub timed_out: usize,
    pub requeued: usize,
    pub deleted: usize,
    /// Executions whose record cannot be decoded (`wf_core::damaged`): passed over.
    pub damaged: usize,
    /// Executions the sweep could not handle this time (logged; the next sweep tries again).
    pub failed: usize,
    /// The sweep ran out of its time budget: it kept its place ([`SWEEP_MARK`]), the next one
    /// goes on from there; counted in `wf_sweep_incomplete_total`.
    pub incomplete: bool,
}

/// The mark where an incomplete sweep stopped: `{"status", "cursor"}`.
pub const SWEEP_MARK: &str = "sweep";

/// Executions one page of the sweep reads.
const SWEEP_PAGE: usize = 500;

/// Settings of the sweep.
#[derive(Debug, Clone)]
pub struct SweepSettings {
    /// A queued execution older than this gets its start task sent again, and a running one
    /// the tasks its start handed on that no worker took this long after they were due
    /// (idempotent).
    pub requeue_after: Duration,
    /// Executions that started longer ago than this are deleted. None keeps everything
    /// (on AWS, DynamoDB's TTL does it).
    pub retention: Option<Duration>,
    /// How long one sweep may go on: past it (checked after each page) the sweep keeps its
    /// place and stops, reported as incomplete. None: until done.
    pub budget: Option<Duration>,
    /// Executions per page read (500; smaller in tests).
    pub page: usize,
}

impl Default for SweepSettings {
    fn default() -> Self {
        Self {
            requeue_after: Duration::from_secs(60),
            retention: Some(Duration::from_secs(30 * 24 * 3600)),
            budget: None,
            page: SWEEP_PAGE,
        }
    }
}

impl SweepSettings {
    /// The sweep on AWS: retention is left to DynamoDB's TTL, and a sweep stops after 40 s
    /// (the trigger function has 60) and goes on at the next one.
    pub fn aws() -> Self {
        Self {
            retention: None,
            budget: Some(Duration::from_secs(40)),
            ..Self::default()
        }
    }
}

/// Retention from `WF_RETENTION_DAYS` (default 30).
pub fn retention_from_env() -> Result<Duration, AppError> {
    match std::env::var("WF_RETENTION_DAYS") {
        Err(_) => Ok(Duration::from_secs(30 * 24 * 3600)),
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|d| *d > 0)
            .map(|d| Duration::from_secs(d * 24 * 3600))
            .ok_or_else(|| {
                AppError::invalid(
                    "invalid_setting",
                    format!("WF_RETENTION_DAYS={v:?} must be a whole number of days, at least 1"),
                )
            }),
    }
}

/// How many deliveries a failing task gets before it is given up (SQS's `maxReceiveCount`;
/// the same default locally).
pub const DEFAULT_MAX_RECEIVE_COUNT: u32 = 5;

/// What to do with a delivered task whose handling failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailedDelivery {
    /// Leave it for the queue to deliver again (after its visibility timeout).
    Redeliver,
    /// It had its last delivery: its execution was failed with the reason. Locally the task is
    /// then acknowledged; on SQS it is reported once more, so the queue moves it to the
    /// dead-letter queue for inspection.
    GivenUp,
}

impl App {
    /// One pass over unfinished and expired executions.
    pub async fn sweep(&self, settings: &SweepSettings) -> Result<SweepReport, AppError> {
        let now = self.svc.clock.now_ms();
        let began = std::time::Instant::now();
        let mut report = SweepReport::default();
        // How far past its deadline the most overdue execution found was (0: none).
        let mut lag_ms = 0i64;
        // Where the last sweep ran out of time, if it did: go on from there.
        let resume = self.svc.executions.get_mark(SWEEP_MARK).await?;
        let resume_status = resume
            .get("status")
            .and_then(Value::as_str)
            .and_then(ExecutionStatus::parse);
        let statuses = [ExecutionStatus::Running, ExecutionStatus::Queued];
        let first = statuses
            .iter()
            .position(|s| Some(*s) == resume_status)
            .unwrap_or(0);
        for &status in &statuses[first..] {
            let mut query = ExecutionQuery {
                status: Some(status),
                limit: settings.page,
                cursor: (Some(status) == resume_status)
                    .then(|| resume.get("cursor").and_then(Value::as_str))
                    .flatten()
                    .map(str::to_string),
                ..ExecutionQuery::default()
            };
            loop {
                let page = match self.svc.executions.list_executions(&query).await {
                    // A kept place that no longer reads (a cursor of another layout): start over.
                    Err(wf_core::StoreError::Invalid(_)) if query.cursor.is_some() => {
                        query.cursor = None;
                        continue;
                    }
                    other => other?,
                };
                for mut exec in page.items {
                    // A record the store cannot decode comes back as a terminal stand-in
                    // (`wf_core::damaged`): nothing to time out or re-queue; the others go on.
                    if is_damaged(exec.error.as_ref()) {
                        report.damaged += 1;
                        continue;
                    }
                    if exec.status.is_terminal() {
                        continue;
                    }
                    let result = if now >= exec.deadline_at {
                        lag_ms = lag_ms.max(now - exec.deadline_at);
                        self.time_out(&mut exec)
                            .await
                            .map(|()| report.timed_out += 1)
                    } else if status == ExecutionStatus::Queued
                        && now - exec.started_at >= settings.requeue_after.as_millis() as i64
                    {
                        self.requeue(&exec).await.map(|sent| {
                            if sent {
                                report.requeued += 1;
                            }
                        })
                    } else if !exec.handoff.is_empty() {
                        let grace = settings.requeue_after.as_millis() as i64;
                        self.send_handoff_again(&exec, now, grace)
                            .await
                            .map(|sent| report.requeued += sent)
                    } else {
                        Ok(())
                    };
                    // One execution that cannot be handled (an unknown version, a record the
                    // store refuses) is logged and left for the next sweep; the others go on.
                    if let Err(e) = result {
                        if e.is_retryable() {
                            return Err(e);
                        }
                        warn!(execution_id = %exec.id, error = %e, "sweep: execution skipped");
                        report.failed += 1;
                    }
                }
                let Some(next) = page.next_cursor else { break };
                query.cursor = Some(next);
                if settings.budget.is_some_and(|b| began.elapsed() >= b) {
                    // Out of time: keep the place for the next sweep, say so, and stop (the
                    // retention pass waits for a sweep that completes).
                    let mark = json!({ "status": status.as_str(), "cursor": query.cursor });
                    self.svc.executions.put_mark(SWEEP_MARK, &mark).await?;
                    report.incomplete = true;
                    self.metrics.incr("wf_sweep_incomplete_total", "budget");
                    self.metrics.set_gauge("wf_sweep_lag_ms", lag_ms);
                    warn!(
                        status = status.as_str(),
                        elapsed_ms = began.elapsed().as_millis() as u64,
                        "sweep: out of its time budget; the next sweep goes on from here"
                    );
                    return Ok(report);
                }
            }
        }
        if !resume.is_null() {
            self.svc
                .executions
                .put_mark(SWEEP_MARK, &Value::Null)
                .await?;
        }
        self.metrics.set_gauge("wf_sweep_lag_ms", lag_ms);
        if let Some(retention) = settings.retention {
            let query = ExecutionQuery {
                started_before: Some(now - retention.as_millis() as i64),
                limit: 500,
                ..ExecutionQuery::default()
            };
            // Deleting shifts pages: always read the first page again until it is empty.
            loop {
                let page = self.svc.executions.list_executions(&query).await?;
                if page.items.is_empty() {
                    break;
                }
                for exec in page.items {
                    self.svc.executions.delete_execution(&exec.id).await?;
                    report.deleted += 1;
                }
            }
        }
        if report != SweepReport::default() {
            info!(
                timed_out = report.timed_out,
                requeued = report.requeued,
                deleted = report.deleted,
                damaged = report.damaged,
                failed = report.failed,
                "sweep"
            );
        }
        Ok(report)
    }

    /// Send the tasks an execution's start handed on again where no worker took them
    /// ([`HandedOff::to_send_again`], `grace_ms` after they were due); returns how many.
    pub(super) async fn send_handoff_again(
        &self, exec: &ExecutionRecord, now: i64, grace_ms: i64,
    ) -> Result<usize, AppError> {
        let due = exec
            .handoff
            .iter()
            .any(|h| h.overdue(exec.started_at, now, grace_ms));
        if !due {
            return Ok(0);
        }
        let paths: Vec<String> = exec.handoff.iter().map(|h| h.path.clone()).collect();
        let records = self.svc.executions.get_steps(&exec.id, &paths).await?;
        let tasks = HandedOff::to_send_again(exec, &records, now, grace_ms);
        if !tasks.is_empty() {
            warn!(execution_id = %exec.id, tasks = tasks.len(), "tasks its start handed on never reached a worker: sent again");
            self.svc.queue.send(&tasks).await?;
        }
        Ok(tasks.len())
    }

    /// Send a queued execution's start task again (idempotent); false when it has no start.
    pub(super) async fn requeue(&self, exec: &ExecutionRecord) -> Result<bool, AppError> {
        let compiled = self.definition(&exec.workflow_id, exec.version).await?;
        let Some(start) = compiled.start_path() else {
            return Ok(false);
        };
        let path = exec
            .trigger
            .details
            .get("fromStep")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| start.to_string());
        let task = StepTask {
            execution_id: exec.id.clone(),
            path,
            attempt: 1,
        };
        self.svc.queue.send(&[(task, 0)]).await?;
        Ok(true)
    }

    /// A delivered task could not be handled (`reason`). Before its last delivery it is left
    /// to be delivered again; on its last one (`receive_count >= max_receive_count`) its
    /// execution is failed with the reason, through the same path as any finish, so waiters
    /// (`?wait`) see it end. The same rule in both homes: the local worker loop and the SQS
    /// batch handler both call this.
    pub async fn task_failed(
        &self, task: &StepTask, receive_count: u32, max_receive_count: u32, reason: &str,
    ) -> FailedDelivery {
        if receive_count < max_receive_count {
            warn!(execution_id = %task.execution_id, path = %task.path, attempt = task.attempt, receive_count, %reason, "task failed: left for redelivery");
            return FailedDelivery::Redeliver;
        }
        error!(execution_id = %task.execution_id, path = %task.path, receive_count, %reason, "poisoned task: failing its execution");
        if let Err(e) = self.fail_poisoned_task(task, receive_count, reason).await {
            error!(execution_id = %task.execution_id, error = %e, "cannot mark the execution failed; the sweeper will time it out");
        }
        FailedDelivery::GivenUp
    }

    /// Fail the execution of a task that could not be handled in `deliveries` deliveries.
    pub async fn fail_poisoned_task(
        &self, task: &StepTask, deliveries: u32, reason: &str,
    ) -> Result<(), AppError> {
        let Some(mut execution) = self
            .svc
            .executions
            .get_execution(&task.execution_id)
            .await?
        else {
            return Ok(());
        };
        let message = format!(
            "step {} (attempt {}) could not be handled in {deliveries} deliveries and was given \
             up (dead-lettered): {reason}",
            task.path, task.attempt
        );
        self.finish_execution(
            &mut execution,
            ExecutionStatus::Failed,
            Value::Null,
            Some(StepError::new("dead_letter", message)),
        )
        .await
    }
}
