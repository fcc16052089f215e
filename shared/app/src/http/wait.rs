//! `?wait=N`: answer with the finished execution if it finishes within N seconds.

use std::time::{Duration, Instant};

use wf_core::execution::ExecutionView;
use wf_core::ports::ExecutionStore;

use crate::http::ApiError;
use crate::worker::Worker;

/// Wait up to `secs` for an execution to be terminal. Wakes on this process's worker finishing
/// it (local), and polls the store otherwise (AWS: another function's worker finishes it).
/// Returns the view when finished, None when still running.
pub async fn wait_for_execution(
    worker: &Worker,
    id: &str,
    secs: u64,
) -> Result<Option<ExecutionView>, ApiError> {
    let store = &worker.services().executions;
    let mut finished = worker.subscribe_finished();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut poll = Duration::from_millis(20);
    loop {
        if let Some(view) = finished_view(&**store, id).await? {
            return Ok(Some(view));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let nap = poll.min(left);
        let _ = tokio::time::timeout(nap, async {
            while let Ok((done, _)) = finished.recv().await {
                if done == id {
                    break;
                }
            }
        })
        .await;
        poll = (poll * 2).min(Duration::from_millis(250));
    }
}

async fn finished_view(
    store: &dyn ExecutionStore,
    id: &str,
) -> Result<Option<ExecutionView>, ApiError> {
    let Some(execution) = store.get_execution(id).await? else {
        return Err(ApiError::not_found(format!(
            "execution {id} does not exist"
        )));
    };
    if !execution.status.is_terminal() {
        return Ok(None);
    }
    let steps = store.list_steps(id).await?;
    Ok(Some(ExecutionView { execution, steps }))
}
