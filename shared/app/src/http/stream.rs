//! `GET /executions/{id}/events`: an execution's progress as Server-Sent Events, for the console's
//! live canvas. Events: `execution` (the record without steps: first, and whenever its status
//! changes), `step` (a step record, each time it changes: claimed, retried, finished), and `end`
//! (the whole execution with its steps, once terminal; the stream then ends).
//!
//! The stream reads the store through [`crate::app::App::execution`] every ~100 ms and wakes at
//! once when this process finishes the execution ([`crate::app::App::subscribe_finished`]), so it
//! works whichever process runs the steps. Under AWS Lambda (`AWS_LAMBDA_RUNTIME_API` set) the
//! function URL's response is buffered (lambda_http without response streaming), so the route
//! answers `501 streaming_unavailable` and the console polls `GET /executions/{id}` instead.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use wf_core::execution::ExecutionView;

use super::AppState;
use crate::app::App;
use crate::http::{ApiError, ApiPath};

/// How often the store is read while nothing else wakes the stream.
const POLL: Duration = Duration::from_millis(100);

struct Progress {
    app: Arc<App>,
    id: String,
    finished: broadcast::Receiver<(String, wf_core::execution::ExecutionStatus)>,
    /// The last record sent per step path (as JSON), to send only changes.
    seen: HashMap<String, Value>,
    status: Option<String>,
    pending: std::collections::VecDeque<Event>,
    first: Option<ExecutionView>,
    done: bool,
}

fn event(name: &str, data: &Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

impl Progress {
    /// Queue the events for what changed since the last look; `true` when terminal.
    fn look(&mut self, view: ExecutionView) -> bool {
        let terminal = view.execution.status.is_terminal();
        let execution = serde_json::to_value(&view.execution).unwrap_or(Value::Null);
        let status = view.execution.status.as_str().to_string();
        if self.status.as_deref() != Some(status.as_str()) {
            self.pending.push_back(event("execution", &execution));
            self.status = Some(status);
        }
        for step in &view.steps {
            let value = serde_json::to_value(step).unwrap_or(Value::Null);
            if self.seen.get(&step.path) != Some(&value) {
                self.pending.push_back(event("step", &value));
                self.seen.insert(step.path.clone(), value);
            }
        }
        if terminal {
            let whole = serde_json::to_value(&view).unwrap_or(Value::Null);
            self.pending.push_back(event("end", &whole));
        }
        terminal
    }

    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some((Ok(e), self));
            }
            if self.done {
                return None;
            }
            let view = match self.first.take() {
                Some(v) => v,
                None => match self.app.execution(&self.id).await {
                    Ok(v) => v,
                    Err(e) if e.is_retryable() => {
                        tokio::time::sleep(POLL).await;
                        continue;
                    }
                    Err(e) => {
                        let body = json!({ "code": e.code(), "message": e.message() });
                        self.pending.push_back(event("error", &body));
                        self.done = true;
                        continue;
                    }
                },
            };
            if self.look(view) {
                self.done = true;
                continue;
            }
            if !self.pending.is_empty() {
                continue;
            }
            // Nothing new: wait for this process to finish it, or the next look.
            let id = self.id.clone();
            let finished = &mut self.finished;
            let _ = tokio::time::timeout(POLL, async {
                loop {
                    match finished.recv().await {
                        Ok((done, _)) if done == id => break,
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => {
                            std::future::pending::<()>().await
                        }
                    }
                }
            })
            .await;
        }
    }
}

fn progress(
    app: Arc<App>, id: String, first: ExecutionView,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let finished = app.subscribe_finished();
    let state = Progress {
        app,
        id,
        finished,
        seen: HashMap::new(),
        status: None,
        pending: Default::default(),
        first: Some(first),
        done: false,
    };
    futures::stream::unfold(state, Progress::next)
}

#[utoipa::path(get, path = "/executions/{id}/events", tag = "executions",
    params(("id" = String, Path, description = "Execution id")),
    responses((status = 200, description = "`text/event-stream`: `execution` (the record without steps, on start and on each status change), `step` (a step record each time it changes), `end` (the whole execution once terminal; the stream then ends)", content_type = "text/event-stream", body = super::schemas::ProgressEvent),
              (status = 404, description = "Unknown execution"),
              (status = 501, description = "`streaming_unavailable`: this deployment buffers responses (AWS Lambda function URLs); poll `GET /executions/{id}`")))]
pub async fn events(
    State(state): State<AppState>, ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "streaming_unavailable",
            "this deployment buffers responses (Lambda function URL): poll GET /executions/{id}",
        ));
    }
    let first = state.app.execution(&id).await?;
    let stream = progress(state.app.clone(), id, first);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
