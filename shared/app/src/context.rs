//! Builds the expression context of one step from the execution and the records it reads.

use std::collections::HashMap;

use futures::future::try_join_all;
use serde_json::{Map, Value, json};
use wf_core::StepError;
use wf_core::engine::{CompiledWorkflow, is_summarized_loop_output, loop_output};
use wf_core::execution::{ExecutionRecord, StepRecord, StepStatus};
use wf_core::path::StepPath;
use wf_core::time_fmt::format_ms;

use crate::services::Services;

/// Where a step runs: inside a loop iteration (the innermost loop's index and item, `index`
/// and `item` in templates) or not.
#[derive(Debug, Clone, Default)]
pub struct LoopScope {
    pub iteration: Option<(u32, Value)>,
}

/// Terminal step records a task holds, by path: they never change, so the templates of the
/// steps the task runs next read them here instead of from the store. Bounded: at most
/// [`Self::MAX`] records, and an iteration's records are dropped once it is counted (a
/// long chain of inline iterations does not pile them up).
#[derive(Debug, Default)]
pub struct KnownRecords(HashMap<String, StepRecord>);

impl KnownRecords {
    /// Records kept at most (past it, the others are read from the store when needed).
    pub const MAX: usize = 64;

    pub fn get(&self, path: &str) -> Option<&StepRecord> {
        self.0.get(path)
    }

    /// Keep `record` (by its path) if it is terminal and there is room.
    pub fn keep(&mut self, record: &StepRecord) {
        if record.status.is_terminal() && self.0.len() < Self::MAX {
            self.0.insert(record.path.clone(), record.clone());
        }
    }

    /// Drop the records of iteration `index` of the loop at `loop_path` (it was counted).
    pub fn forget_iteration(&mut self, loop_path: &str, index: u32) {
        let prefix = format!("{loop_path}[{index}]/");
        self.0.retain(|path, _| !path.starts_with(&prefix));
    }
}

/// Context for a step at `path`: `input`, `vars`, `execution`, `steps` (only the records the
/// step's templates read), `item`/`index` of the innermost loop, `secrets` it reads.
/// Records in `known` are not read again, and the terminal records read here are kept in it.
pub async fn step_context(
    svc: &Services, execution: &ExecutionRecord, compiled: &CompiledWorkflow, path: &StepPath,
    loops: &LoopScope, known: &mut KnownRecords,
) -> Result<Map<String, Value>, StepError> {
    let held = &*known;
    let records = try_join_all(
        steps_read(compiled, path)
            .into_iter()
            .map(|(id, p)| async move {
                // `fresh`: read now (to keep), as stored.
                let (mut rec, fresh) = match held.get(&p) {
                    Some(r) => (Some(r.clone()), None),
                    None => {
                        let read = svc.executions.get_step(&execution.id, &p).await?;
                        (read.clone(), read)
                    }
                };
                // A large loop's record holds a summary: its results are read from their items.
                if let Some(r) = rec.as_mut()
                    && let Some(step) = StepPath::parse(&p).and_then(|sp| compiled.step(&sp))
                    && is_summarized_loop_output(step, &r.output)
                {
                    r.output =
                        loop_output(svc.executions.list_iterations(&execution.id, &p).await?);
                }
                Ok::<_, StepError>(((id, rec), fresh))
            }),
    )
    .await?;
    let mut read = Vec::with_capacity(records.len());
    for (record, fresh) in records {
        if let Some(f) = fresh {
            known.keep(&f);
        }
        read.push(record);
    }
    context_from_records(svc, execution, compiled, path, loops, read)
}

/// The steps whose records the templates of the step at `path` read: (step id, record path).
pub fn steps_read(compiled: &CompiledWorkflow, path: &StepPath) -> Vec<(String, String)> {
    compiled
        .visible_step_paths(path)
        .unwrap_or_else(|| compiled.all_visible_step_paths(path))
}

/// [`step_context`] from the records it reads, as [`steps_read`] names them (a step without a
/// record is left out).
pub fn context_from_records(
    svc: &Services, execution: &ExecutionRecord, compiled: &CompiledWorkflow, path: &StepPath,
    loops: &LoopScope, records: Vec<(String, Option<StepRecord>)>,
) -> Result<Map<String, Value>, StepError> {
    let mut ctx = base_context(execution, compiled, compiled.reads_input(path));
    let mut steps = Map::new();
    for (id, rec) in records {
        let Some(rec) = rec else { continue };
        if matches!(
            rec.status,
            StepStatus::Succeeded | StepStatus::Failed | StepStatus::TimedOut
        ) {
            steps.insert(
                id,
                json!({ "output": rec.output, "error": rec.error, "status": rec.status }),
            );
        }
    }
    ctx.insert("steps".into(), Value::Object(steps));
    if let Some((index, item)) = &loops.iteration {
        ctx.insert("item".into(), item.clone());
        ctx.insert("index".into(), json!(index));
    }
    let mut secrets = Map::new();
    for name in compiled.secrets_read(path) {
        match svc.secrets.get(name) {
            Some(v) => {
                secrets.insert(name.to_string(), Value::String(v));
            }
            None => {
                return Err(StepError::new(
                    "secret.missing",
                    format!("secret {name} is not set (set the environment variable {name})"),
                ));
            }
        }
    }
    if !secrets.is_empty() {
        ctx.insert("secrets".into(), Value::Object(secrets));
    }
    Ok(ctx)
}

/// `input` (when `with_input`: a step whose templates never read it is not given a copy),
/// `vars` and `execution`: what every template sees.
fn base_context(
    execution: &ExecutionRecord, compiled: &CompiledWorkflow, with_input: bool,
) -> Map<String, Value> {
    let mut ctx = Map::new();
    if with_input {
        ctx.insert("input".into(), execution.input.clone());
    }
    ctx.insert(
        "vars".into(),
        Value::Object(compiled.workflow.config.variables.clone()),
    );
    ctx.insert(
        "execution".into(),
        json!({
            "id": execution.id,
            "workflowId": execution.workflow_id,
            "version": execution.version,
            "startedAt": format_ms(execution.started_at),
            "trigger": execution.trigger,
        }),
    );
    ctx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(path: &str, status: &str) -> StepRecord {
        serde_json::from_value(json!({
            "path": path, "type": "output", "status": status, "attempts": 1,
            "startedAt": "2026-01-01T00:00:00.000Z"
        }))
        .expect("a step record")
    }

    #[test]
    fn known_records_keep_terminal_ones_and_forget_a_counted_iteration() {
        let mut known = KnownRecords::default();
        known.keep(&record("fetch", "succeeded"));
        known.keep(&record("wait", "running"));
        known.keep(&record("each[1]/x", "succeeded"));
        known.keep(&record("each[10]/x", "failed"));
        assert!(known.get("fetch").is_some());
        assert!(known.get("wait").is_none(), "a running record may change");
        known.forget_iteration("each", 1);
        assert!(known.get("each[1]/x").is_none());
        assert!(known.get("each[10]/x").is_some(), "another iteration stays");
        assert!(known.get("fetch").is_some());
    }

    #[test]
    fn known_records_are_bounded() {
        let mut known = KnownRecords::default();
        for i in 0..KnownRecords::MAX + 10 {
            let path = format!("s{i}");
            known.keep(&record(&path, "succeeded"));
        }
        assert!(known.get("s0").is_some());
        assert!(known.get(&format!("s{}", KnownRecords::MAX)).is_none());
    }
}
