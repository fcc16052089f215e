//! Use cases of AI-assisted authoring (the logic lives in [`crate::ai`]): a workflow from a
//! description, a draft changed in plain words, plain English to cron. Their failures are
//! [`AppError`]s like every other use case's.

use serde_json::{Value, json};
use wf_core::time_fmt::parse_ms;

use super::{App, AppError};
use crate::ai::chat::{self, ChatReply, ChatTurn};
use crate::ai::cron::{Resolved, resolve};
use crate::ai::generate::{GenerateRequest, Generated, generate_with};
use crate::ai::{AiError, AiSettings};

impl From<AiError> for AppError {
    fn from(e: AiError) -> Self {
        match e {
            AiError::Provider(err) => {
                let mut details = json!({ "providerCode": err.code, "retryable": err.retryable });
                if let Some(d) = &err.details {
                    details["provider"] = (**d).clone();
                }
                if err.code == "timeout" {
                    AppError::retryable(
                        "llm_timeout",
                        format!("the LLM did not answer in time: {}", err.message),
                    )
                } else if err.retryable {
                    AppError::retryable(
                        "llm_unavailable",
                        format!("the LLM provider is unavailable: {}", err.message),
                    )
                } else {
                    AppError::permanent(
                        "llm_error",
                        format!("the LLM provider refused the request: {}", err.message),
                    )
                }
                .with_details(details)
            }
            AiError::Invalid(inv) => AppError::invalid(
                "ai_invalid_workflow",
                format!(
                    "the model's workflow still has {} problem(s) after {} answer(s); nothing was saved",
                    inv.problems.len(),
                    inv.rounds
                ),
            )
            .with_details(serde_json::to_value(&*inv).unwrap_or(Value::Null)),
            AiError::Cron(f) => AppError::invalid("invalid_cron", f.message.clone())
                .with_details(json!({ "explanation": f.explanation, "rounds": f.rounds })),
            AiError::NotFound(m) => AppError::not_found(m),
            AiError::Exists(m) => AppError::conflict("exists", m),
            e @ AiError::FileBacked { .. } => AppError::conflict("file_backed", e.to_string()),
            AiError::DraftChanged(m) => AppError::conflict("draft_changed", m),
            AiError::BadRequest(code, m) => AppError::invalid(code, m),
            AiError::Store(s) => s.into(),
        }
    }
}

impl App {
    /// A new draft written by the configured LLM from a description (repaired until valid, at
    /// most 3 rounds); never published or activated. `taken` marks ids that are unavailable
    /// besides the stored ones (`wf new` passes the files in `workflows/`).
    pub async fn generate_workflow(
        &self, settings: &AiSettings, req: GenerateRequest,
        taken: &(dyn Fn(&str) -> bool + Send + Sync),
    ) -> Result<Generated, AppError> {
        Ok(generate_with(&self.svc, settings, req, taken).await?)
    }

    /// Change a draft in plain words; stored only when valid and changed.
    pub async fn chat(
        &self, settings: &AiSettings, workflow_id: &str, message: &str,
    ) -> Result<ChatReply, AppError> {
        Ok(chat::chat(&self.svc, settings, workflow_id, message).await?)
    }

    /// The conversation about a workflow (the last 20 turns, oldest first).
    pub async fn chat_history(&self, workflow_id: &str) -> Result<Vec<ChatTurn>, AppError> {
        self.workflow(workflow_id).await?;
        Ok(chat::history(&*self.svc.records, workflow_id).await?)
    }

    /// Forget the conversation (the draft is unchanged).
    pub async fn forget_chat(&self, workflow_id: &str) -> Result<(), AppError> {
        self.workflow(workflow_id).await?;
        Ok(chat::clear_history(&*self.svc.records, workflow_id).await?)
    }

    /// A schedule from cron, a preset or plain English (the LLM, with `ai`, only for what the
    /// parser cannot read), and its next `count` runs after `from` (RFC 3339; default now).
    pub async fn resolve_cron(
        &self, settings: &AiSettings, expression: &str, ai: bool, from: Option<&str>, count: usize,
    ) -> Result<(Resolved, Vec<i64>), AppError> {
        if !(1..=100).contains(&count) {
            return Err(AppError::invalid(
                "invalid_option",
                "\"count\" must be between 1 and 100",
            ));
        }
        let from = match from {
            Some(s) => parse_ms(s).ok_or_else(|| {
                AppError::invalid(
                    "invalid_option",
                    format!("\"from\" {s:?} is not an RFC 3339 time (e.g. 2026-11-24T08:00:00Z)"),
                )
            })?,
            None => self.svc.clock.now_ms(),
        };
        let llm = ai.then(|| &*self.svc.llm);
        let resolved = resolve(expression, llm, settings).await?;
        let next = resolved.spec.next_n(from, count);
        Ok((resolved, next))
    }
}
