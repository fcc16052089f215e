//! Worker loops over a pollable queue (the local SQLite queue, or SQS in tests): receive a
//! batch, handle each task, acknowledge what succeeded. Unacknowledged tasks come back after
//! the queue's visibility timeout (at-least-once), which is how a crash mid-step recovers.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, warn};
use wf_core::StepError;
use wf_core::execution::{ExecutionStatus, ExecutionUpdate};
use wf_core::ports::TaskQueue;

use crate::worker::Worker;

/// Running worker loops; dropping the handle does not stop them, `shutdown` does.
pub struct WorkerPool {
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
}

impl WorkerPool {
    /// Start `n` loops, each receiving up to `batch` tasks at a time.
    pub fn start(worker: Arc<Worker>, queue: Arc<dyn TaskQueue>, n: usize, batch: usize) -> Self {
        let (stop, rx) = watch::channel(false);
        let handles = (0..n.max(1))
            .map(|_| {
                let worker = worker.clone();
                let queue = queue.clone();
                let mut rx = rx.clone();
                tokio::spawn(async move {
                    loop {
                        if *rx.borrow() {
                            break;
                        }
                        let received = tokio::select! {
                            r = queue.receive(batch, Duration::from_millis(500)) => r,
                            _ = rx.changed() => break,
                        };
                        let deliveries = match received {
                            Ok(d) => d,
                            Err(e) => {
                                warn!(error = %e, "receive failed; backing off");
                                tokio::time::sleep(Duration::from_millis(200)).await;
                                continue;
                            }
                        };
                        for d in deliveries {
                            match worker.handle(&d.task).await {
                                Ok(()) => {
                                    if let Err(e) = queue.ack(&d.receipt).await {
                                        warn!(error = %e, "ack failed; the task will be redelivered");
                                    }
                                }
                                Err(e) if e.is_retryable() => {
                                    warn!(error = %e, execution_id = %d.task.execution_id, "task failed; left for redelivery");
                                }
                                Err(e) => {
                                    // A poison task: fail its execution with the reason, then drop it.
                                    error!(error = %e, execution_id = %d.task.execution_id, path = %d.task.path, "task cannot be handled");
                                    let update = ExecutionUpdate {
                                        status: ExecutionStatus::Failed,
                                        output: None,
                                        error: Some(StepError::new("engine", e.to_string())),
                                        finished_at: Some(worker.services().clock.now_ms()),
                                    };
                                    let _ = worker.services().executions.update_execution(&d.task.execution_id, &update).await;
                                    let _ = queue.ack(&d.receipt).await;
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        Self { stop, handles }
    }

    /// Stop receiving and wait for the loops to finish their current batch.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for h in self.handles {
            let _ = h.await;
        }
    }
}
