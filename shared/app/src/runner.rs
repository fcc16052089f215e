//! Worker loops over a pollable queue (the local SQLite queue, or SQS in tests): receive a
//! batch, run each task, acknowledge what succeeded. A task that fails is left for redelivery
//! (it comes back after the queue's visibility timeout: at-least-once, which is how a crash
//! mid-step recovers) until its last delivery, when [`App::task_failed`] gives it up exactly as
//! the SQS batch handler does.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::warn;
use wf_core::ports::{Delivery, TaskQueue};

use crate::app::App;
use crate::app::maintenance::FailedDelivery;

/// Running worker loops; dropping the handle does not stop them, `shutdown` does.
pub struct WorkerPool {
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
}

/// Settings of the worker loops.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Loops polling the queue.
    pub loops: usize,
    /// Tasks received at a time.
    pub batch: usize,
    /// Deliveries a failing task gets before it is given up.
    pub max_receive_count: u32,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            loops: 4,
            batch: 10,
            max_receive_count: crate::app::maintenance::DEFAULT_MAX_RECEIVE_COUNT,
        }
    }
}

/// Run one delivery: acknowledge it when it ran (or was given up), else leave it.
pub async fn handle_delivery(app: &App, queue: &dyn TaskQueue, d: &Delivery, max_receive: u32) {
    let done = match app.run_task(&d.task).await {
        Ok(()) => true,
        Err(e) => {
            let verdict = app
                .task_failed(&d.task, d.receive_count, max_receive, &e.to_string())
                .await;
            verdict == FailedDelivery::GivenUp
        }
    };
    if done && let Err(e) = queue.ack(&d.receipt).await {
        warn!(error = %e, "ack failed; the task will be redelivered");
    }
}

impl WorkerPool {
    /// Start the loops.
    pub fn start(app: Arc<App>, queue: Arc<dyn TaskQueue>, settings: PoolSettings) -> Self {
        let (stop, rx) = watch::channel(false);
        let handles = (0..settings.loops.max(1))
            .map(|_| {
                let app = app.clone();
                let queue = queue.clone();
                let mut rx = rx.clone();
                let settings = settings.clone();
                tokio::spawn(async move {
                    loop {
                        if *rx.borrow() {
                            break;
                        }
                        let received = tokio::select! {
                            r = queue.receive(settings.batch, Duration::from_millis(500)) => r,
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
                        // The batch's tasks run at once: they are independent (each claims
                        // its own step), and their writes then share the store's group commits.
                        futures::future::join_all(deliveries.iter().map(|d| {
                            handle_delivery(&app, &*queue, d, settings.max_receive_count)
                        }))
                        .await;
                    }
                })
            })
            .collect();
        Self { stop, handles }
    }

    /// Stop the loops at once, as a crash would: tasks in flight are dropped mid-step without
    /// acknowledgement (their queue delivers them again after the visibility timeout, and
    /// their claims' leases run out since nothing renews them).
    pub fn kill(self) {
        for h in self.handles {
            h.abort();
        }
    }

    /// Stop receiving and wait for the loops to finish their current batch.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for h in self.handles {
            let _ = h.await;
        }
    }
}
