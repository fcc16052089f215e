//! The sweeper (every minute locally; the trigger function's sweep on AWS): times out
//! executions past their deadline, re-queues executions left `queued` (their start task may
//! have been lost between the create and the send), and deletes executions past retention.

use std::time::Duration;

use tracing::{info, warn};
use wf_core::execution::{ExecutionQuery, ExecutionStatus, StepTask};

use crate::worker::{Worker, WorkerError};

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    pub timed_out: usize,
    pub requeued: usize,
    pub deleted: usize,
}

/// Settings of the sweep.
#[derive(Debug, Clone)]
pub struct SweepSettings {
    /// A queued execution older than this gets its start task sent again (idempotent).
    pub requeue_after: Duration,
    /// Executions that started longer ago than this are deleted. None keeps everything
    /// (on AWS, DynamoDB's TTL does it).
    pub retention: Option<Duration>,
}

impl Default for SweepSettings {
    fn default() -> Self {
        Self {
            requeue_after: Duration::from_secs(60),
            retention: Some(Duration::from_secs(30 * 24 * 3600)),
        }
    }
}

/// Retention from `WF_RETENTION_DAYS` (default 30).
pub fn retention_from_env() -> Result<Duration, String> {
    match std::env::var("WF_RETENTION_DAYS") {
        Err(_) => Ok(Duration::from_secs(30 * 24 * 3600)),
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|d| *d > 0)
            .map(|d| Duration::from_secs(d * 24 * 3600))
            .ok_or_else(|| {
                format!("WF_RETENTION_DAYS={v:?} must be a whole number of days, at least 1")
            }),
    }
}

/// One pass over unfinished and expired executions.
pub async fn sweep_once(
    worker: &Worker,
    settings: &SweepSettings,
) -> Result<SweepReport, WorkerError> {
    let svc = worker.services();
    let now = svc.clock.now_ms();
    let mut report = SweepReport::default();
    for status in [ExecutionStatus::Running, ExecutionStatus::Queued] {
        let mut query = ExecutionQuery {
            status: Some(status),
            limit: 500,
            ..ExecutionQuery::default()
        };
        loop {
            let page = svc.executions.list_executions(&query).await?;
            for mut exec in page.items {
                if now >= exec.deadline_at {
                    let compiled = worker.definition(&exec.workflow_id, exec.version).await?;
                    worker
                        .time_out(&mut exec, compiled.workflow.config.timeout_ms)
                        .await?;
                    report.timed_out += 1;
                } else if status == ExecutionStatus::Queued
                    && now - exec.started_at >= settings.requeue_after.as_millis() as i64
                {
                    let compiled = worker.definition(&exec.workflow_id, exec.version).await?;
                    let Some(start) = compiled.start_path() else {
                        continue;
                    };
                    let task = StepTask {
                        execution_id: exec.id.clone(),
                        path: exec
                            .trigger
                            .details
                            .get("fromStep")
                            .and_then(|v| v.as_str())
                            .map(str::to_string)
                            .unwrap_or_else(|| start.to_string()),
                        attempt: 1,
                    };
                    svc.queue.send(&[(task, 0)]).await?;
                    report.requeued += 1;
                }
            }
            match page.next_cursor {
                Some(c) => query.cursor = Some(c),
                None => break,
            }
        }
    }
    if let Some(retention) = settings.retention {
        let query = ExecutionQuery {
            started_before: Some(now - retention.as_millis() as i64),
            limit: 500,
            ..ExecutionQuery::default()
        };
        // Deleting shifts pages: always read the first page again until it is empty.
        loop {
            let page = svc.executions.list_executions(&query).await?;
            if page.items.is_empty() {
                break;
            }
            for exec in page.items {
                svc.executions.delete_execution(&exec.id).await?;
                report.deleted += 1;
            }
        }
    }
    if report != SweepReport::default() {
        info!(
            timed_out = report.timed_out,
            requeued = report.requeued,
            deleted = report.deleted,
            "sweep"
        );
    }
    Ok(report)
}

/// Sweep every `interval` until `shutdown` flips to true.
pub async fn run_sweeper(
    worker: std::sync::Arc<Worker>,
    settings: SweepSettings,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = sweep_once(&worker, &settings).await {
            warn!(error = %e, "sweep failed; trying again next time");
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}
