//! Refine a draft in plain words: the model gets the current draft, its problems, the
//! conversation so far and the request, and returns the changed workflow. The reply shows a
//! step-level diff; the new draft is stored only when it is valid (and only if it changed).
//! Published versions and activation are never touched.
//!
//! The conversation is kept durably and bounded (the last [`MAX_TURNS`] turns) beside the draft,
//! as one record in the records store: collection [`HISTORY_COLLECTION`], id = workflow id.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use wf_core::StoreResult;
use wf_core::ports::{RecordCreate, RecordStore};
use wf_core::time_fmt::format_ms;
use wf_core::validate::{format_problems, validate_value};

use super::{AiError, AiSettings, Rejected, Validation, author, prompts, truncate_chars};
use crate::services::Services;

/// The records collection holding conversations (one record per workflow).
pub const HISTORY_COLLECTION: &str = "_chat";
/// Turns kept per workflow (older ones are dropped).
pub const MAX_TURNS: usize = 20;
/// Longest accepted request.
pub const MAX_MESSAGE_CHARS: usize = 4_000;
/// Longest explanation kept in the history.
const MAX_EXPLANATION_CHARS: usize = 2_000;
/// Turns of the history shown to the model (the most recent).
const PROMPT_TURNS: usize = 10;
/// Longest message or explanation of an earlier turn shown to the model.
const PROMPT_TEXT_CHARS: usize = 600;

/// `POST /workflows/{id}/chat`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    /// Not blank.
    #[schema(
        min_length = 1,
        pattern = "\\S",
        example = "make it run on weekdays only"
    )]
    pub message: String,
}

/// One exchange of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatTurn {
    /// RFC 3339.
    pub at: String,
    pub message: String,
    #[serde(default)]
    pub explanation: String,
    /// Whether a new draft was stored.
    #[serde(default)]
    pub applied: bool,
    /// What changed (when applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<StepDiff>,
    /// How many problems the last answer had (when not applied because it stayed invalid).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub problems: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A step-level diff of two workflow documents (raw JSON: the old draft may be invalid).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepDiff {
    pub added_steps: Vec<String>,
    pub removed_steps: Vec<String>,
    /// Steps whose fields changed, with the changed field names.
    pub changed_steps: Vec<ChangedStep>,
    /// Config keys that changed (added, removed or different).
    pub changed_config: Vec<String>,
    /// Other top-level fields that changed (`name`, `description`).
    pub changed_fields: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedStep {
    pub id: String,
    pub keys: Vec<String>,
}

impl StepDiff {
    pub fn is_empty(&self) -> bool {
        self.added_steps.is_empty()
            && self.removed_steps.is_empty()
            && self.changed_steps.is_empty()
            && self.changed_config.is_empty()
            && self.changed_fields.is_empty()
    }

    /// `added steps a, b; changed start (triggers); config: variables`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if !self.added_steps.is_empty() {
            parts.push(format!("added steps {}", self.added_steps.join(", ")));
        }
        if !self.removed_steps.is_empty() {
            parts.push(format!("removed steps {}", self.removed_steps.join(", ")));
        }
        for c in &self.changed_steps {
            parts.push(format!("changed {} ({})", c.id, c.keys.join(", ")));
        }
        if !self.changed_config.is_empty() {
            parts.push(format!("config: {}", self.changed_config.join(", ")));
        }
        if !self.changed_fields.is_empty() {
            parts.push(format!("fields: {}", self.changed_fields.join(", ")));
        }
        if parts.is_empty() {
            "no change".to_owned()
        } else {
            parts.join("; ")
        }
    }
}

/// The answer to a chat request.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatReply {
    pub workflow_id: String,
    /// Whether the draft changed (and was stored).
    pub changed: bool,
    /// The draft now (the new one when changed).
    pub draft: Value,
    pub diff: StepDiff,
    pub validation: Validation,
    pub explanation: String,
    pub rounds: u32,
    pub rejected: Vec<Rejected>,
}

/// Apply a request in plain words to a workflow's draft.
pub async fn chat(
    svc: &Services, settings: &AiSettings, workflow_id: &str, message: &str,
) -> Result<ChatReply, AiError> {
    let message = message.trim();
    if message.is_empty() {
        return Err(AiError::BadRequest(
            "invalid_message",
            "\"message\" is empty: say what to change".into(),
        ));
    }
    if message.chars().count() > MAX_MESSAGE_CHARS {
        return Err(AiError::BadRequest(
            "invalid_message",
            format!("\"message\" is over {MAX_MESSAGE_CHARS} characters"),
        ));
    }
    let defs = &*svc.definitions;
    let meta = defs
        .get_meta(workflow_id)
        .await?
        .ok_or_else(|| AiError::NotFound(format!("workflow {workflow_id} does not exist")))?;
    if let Some(file) = meta.source.as_deref().and_then(|s| s.strip_prefix("file:")) {
        return Err(AiError::FileBacked {
            id: workflow_id.to_owned(),
            file: file.to_owned(),
        });
    }
    let stored_draft = defs.get_draft(workflow_id).await?;
    let base = match &stored_draft {
        Some(d) => d.clone(),
        None => match meta.latest_version {
            0 => {
                return Err(AiError::NotFound(format!(
                    "workflow {workflow_id} has no draft"
                )));
            }
            v => defs
                .get_version(workflow_id, v)
                .await?
                .and_then(|w| serde_json::to_value(w).ok())
                .ok_or_else(|| AiError::NotFound(format!("workflow {workflow_id} has no draft")))?,
        },
    };
    let history = history(&*svc.records, workflow_id).await?;
    let problems = validate_value(&base).problems;
    let problems_text = if problems.is_empty() {
        "(none)".to_owned()
    } else {
        format_problems("workflow", &problems).trim_end().to_owned()
    };
    let draft_text = serde_json::to_string_pretty(&base).unwrap_or_default();
    let prompt = prompts::fill(
        prompts::CHAT,
        &[
            ("id", workflow_id),
            ("history", &history_text(&history)),
            ("draft", &draft_text),
            ("problems", &problems_text),
            ("message", message),
        ],
    );
    let active = base.pointer("/config/active").cloned();
    let id = workflow_id.to_owned();
    let now = || format_ms(svc.clock.now_ms());
    let authored = match author(&*svc.llm, settings, prompts::system(), &prompt, move |wf| {
        fixup(wf, &id, active.as_ref())
    })
    .await
    {
        Ok(a) => a,
        Err(AiError::Invalid(invalid)) => {
            let turn = ChatTurn {
                at: now(),
                message: message.to_owned(),
                explanation: truncate_chars(
                    invalid.explanation.as_deref().unwrap_or_default(),
                    MAX_EXPLANATION_CHARS,
                ),
                applied: false,
                diff: None,
                problems: invalid.problems.len().max(1),
            };
            append_turn(&*svc.records, workflow_id, turn).await?;
            return Err(AiError::Invalid(invalid));
        }
        Err(e) => return Err(e),
    };
    let new = authored.workflow;
    let diff = step_diff(&base, &new);
    // Only a visible change is stored (a model that re-serializes the draft changes nothing).
    let changed = !diff.is_empty();
    if changed {
        // Someone may have edited the draft while the model was thinking: never overwrite that.
        let current = defs.get_draft(workflow_id).await?;
        if current != stored_draft {
            return Err(AiError::DraftChanged(format!(
                "the draft of {workflow_id} changed while the model was answering; nothing was \
                 stored: send the request again"
            )));
        }
        defs.put_draft(workflow_id, &new, svc.clock.now_ms())
            .await?;
    }
    let explanation = truncate_chars(&authored.explanation, MAX_EXPLANATION_CHARS);
    append_turn(
        &*svc.records,
        workflow_id,
        ChatTurn {
            at: now(),
            message: message.to_owned(),
            explanation: explanation.clone(),
            applied: changed,
            diff: changed.then(|| diff.clone()),
            problems: 0,
        },
    )
    .await?;
    Ok(ChatReply {
        workflow_id: workflow_id.to_owned(),
        changed,
        validation: Validation::of(&new),
        draft: if changed { new } else { base },
        diff,
        explanation,
        rounds: authored.rounds,
        rejected: authored.rejected,
    })
}

/// What the model may not change: the id and `config.active` (as they were).
fn fixup(workflow: &mut Value, id: &str, active: Option<&Value>) {
    let Some(obj) = workflow.as_object_mut() else {
        return;
    };
    obj.insert("id".into(), Value::String(id.to_owned()));
    match active {
        Some(active) => {
            let config = obj
                .entry("config")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(config) = config.as_object_mut() {
                config.insert("active".into(), active.clone());
            }
        }
        None => {
            if let Some(config) = obj.get_mut("config").and_then(Value::as_object_mut) {
                config.remove("active");
            }
        }
    }
}

fn history_text(turns: &[ChatTurn]) -> String {
    if turns.is_empty() {
        return "(none: this is the first request)".to_owned();
    }
    let skipped = turns.len().saturating_sub(PROMPT_TURNS);
    let mut out = String::new();
    if skipped > 0 {
        out.push_str(&format!("({skipped} earlier request(s) not shown)\n"));
    }
    for (i, t) in turns.iter().enumerate().skip(skipped) {
        let message = truncate_chars(&t.message, PROMPT_TEXT_CHARS);
        out.push_str(&format!("{}. User: {message}\n", i + 1));
        let outcome = match (&t.diff, t.applied) {
            (Some(d), true) => format!("applied: {}", d.summary()),
            (_, true) => "applied".to_owned(),
            (_, false) if t.problems > 0 => format!(
                "NOT applied: the answer stayed invalid ({} problem(s))",
                t.problems
            ),
            (_, false) => "no change".to_owned(),
        };
        let explanation = truncate_chars(&t.explanation, PROMPT_TEXT_CHARS);
        out.push_str(&format!("   You ({outcome}): {explanation}\n"));
    }
    out.trim_end().to_owned()
}

// ---- the diff ----

/// Compare two workflow documents step by step (loop bodies included), plus config keys and
/// other top-level fields.
pub fn step_diff(old: &Value, new: &Value) -> StepDiff {
    let (old_steps, new_steps) = (steps_by_id(old), steps_by_id(new));
    let mut diff = StepDiff {
        added_steps: new_steps
            .iter()
            .filter(|(id, _)| !old_steps.iter().any(|(o, _)| o == id))
            .map(|(id, _)| id.clone())
            .collect(),
        removed_steps: old_steps
            .iter()
            .filter(|(id, _)| !new_steps.iter().any(|(n, _)| n == id))
            .map(|(id, _)| id.clone())
            .collect(),
        ..StepDiff::default()
    };
    for (id, new_step) in &new_steps {
        if let Some((_, old_step)) = old_steps.iter().find(|(o, _)| o == id) {
            let keys = changed_keys(old_step, new_step);
            if !keys.is_empty() {
                diff.changed_steps.push(ChangedStep {
                    id: id.clone(),
                    keys,
                });
            }
        }
    }
    let empty = Value::Object(Map::new());
    diff.changed_config = changed_keys(
        old.get("config").unwrap_or(&empty),
        new.get("config").unwrap_or(&empty),
    );
    let top = |v: &Value| -> Value {
        let mut m = v.as_object().cloned().unwrap_or_default();
        for k in ["steps", "config", "id"] {
            m.remove(k);
        }
        Value::Object(m)
    };
    diff.changed_fields = changed_keys(&top(old), &top(new));
    diff
}

/// Steps by id in document order (loop bodies after their loop). A loop's `steps` is replaced
/// by its body's ids, so a change inside the body shows on the body step only.
fn steps_by_id(wf: &Value) -> Vec<(String, Value)> {
    fn walk(steps: &Value, out: &mut Vec<(String, Value)>) {
        for step in steps.as_array().into_iter().flatten() {
            let Some(id) = step.get("id").and_then(Value::as_str) else {
                continue;
            };
            let mut shown = step.clone();
            if let Some(body) = step.get("steps") {
                let ids: Vec<Value> = body
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.get("id").cloned())
                    .collect();
                shown["steps"] = Value::Array(ids);
            }
            out.push((id.to_owned(), shown));
            if let Some(body) = step.get("steps") {
                walk(body, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(wf.get("steps").unwrap_or(&Value::Null), &mut out);
    out
}

/// Keys (of two objects) whose values differ; non-objects that differ give `["(value)"]`.
fn changed_keys(old: &Value, new: &Value) -> Vec<String> {
    match (old.as_object(), new.as_object()) {
        (Some(o), Some(n)) => {
            let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
            let mut ordered: Vec<String> = n
                .keys()
                .chain(o.keys())
                .filter(|k| keys.contains(k) && o.get(*k) != n.get(*k))
                .cloned()
                .collect();
            let mut seen = BTreeSet::new();
            ordered.retain(|k| seen.insert(k.clone()));
            ordered
        }
        _ if old != new => vec!["(value)".to_owned()],
        _ => Vec::new(),
    }
}

// ---- the conversation ----

/// The stored conversation of a workflow, oldest first.
pub async fn history(records: &dyn RecordStore, workflow_id: &str) -> StoreResult<Vec<ChatTurn>> {
    Ok(records
        .get(HISTORY_COLLECTION, workflow_id)
        .await?
        .map(|r| decode_turns(&r))
        .unwrap_or_default())
}

/// A record that does not decode (edited by hand, an older shape) counts as no history.
fn decode_turns(record: &Value) -> Vec<ChatTurn> {
    record
        .get("turns")
        .cloned()
        .and_then(|t| serde_json::from_value(t).ok())
        .unwrap_or_default()
}

/// Add a turn, keeping the last [`MAX_TURNS`].
pub async fn append_turn(
    records: &dyn RecordStore, workflow_id: &str, turn: ChatTurn,
) -> StoreResult<()> {
    let existing = records.get(HISTORY_COLLECTION, workflow_id).await?;
    let mut turns = existing.as_ref().map(decode_turns).unwrap_or_default();
    turns.push(turn);
    let excess = turns.len().saturating_sub(MAX_TURNS);
    turns.drain(..excess);
    let data = json!({ "workflowId": workflow_id, "turns": turns });
    if existing.is_some() {
        records
            .update(HISTORY_COLLECTION, workflow_id, &data)
            .await?;
        return Ok(());
    }
    let key = format!("chat:{workflow_id}:{}", ulid::Ulid::new());
    let created = records
        .create(HISTORY_COLLECTION, workflow_id, &data, &key)
        .await?;
    if created == RecordCreate::Exists {
        // Another request created it meanwhile: last writer wins, like the draft.
        records
            .update(HISTORY_COLLECTION, workflow_id, &data)
            .await?;
    }
    Ok(())
}

/// Forget a workflow's conversation.
pub async fn clear_history(records: &dyn RecordStore, workflow_id: &str) -> StoreResult<()> {
    records.delete(HISTORY_COLLECTION, workflow_id).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wf() -> Value {
        json!({
            "id": "w", "name": "W", "config": { "variables": { "a": 1 } },
            "steps": [
                { "id": "start", "type": "start", "triggers": [ { "type": "manual" } ], "next": "each" },
                { "id": "each", "type": "loop", "items": "{{ input.xs }}",
                  "steps": [ { "id": "inner", "type": "output", "output": "{{ item }}" } ], "next": "done" },
                { "id": "done", "type": "output", "output": { "n": 1 } }
            ]
        })
    }

    #[test]
    fn identical_documents_have_an_empty_diff() {
        let d = step_diff(&wf(), &wf());
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(d.summary(), "no change");
    }

    #[test]
    fn a_changed_body_step_shows_on_that_step_only() {
        let mut new = wf();
        new["steps"][1]["steps"][0]["output"] = json!("{{ item * 2 }}");
        let d = step_diff(&wf(), &new);
        assert_eq!(
            d.changed_steps,
            vec![ChangedStep {
                id: "inner".into(),
                keys: vec!["output".into()]
            }]
        );
        assert!(d.added_steps.is_empty() && d.removed_steps.is_empty());
    }

    #[test]
    fn added_removed_config_and_fields() {
        let mut new = wf();
        new["steps"][0]["next"] = json!("done");
        new["steps"].as_array_mut().unwrap().remove(1);
        new["steps"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "id": "extra", "type": "output" }));
        new["config"]["timeoutMs"] = json!(1000);
        new["name"] = json!("W2");
        let d = step_diff(&wf(), &new);
        assert_eq!(d.added_steps, ["extra"]);
        assert_eq!(d.removed_steps, ["each", "inner"]);
        assert_eq!(d.changed_steps[0].id, "start");
        assert_eq!(d.changed_steps[0].keys, ["next"]);
        assert_eq!(d.changed_config, ["timeoutMs"]);
        assert_eq!(d.changed_fields, ["name"]);
        assert!(
            d.summary().contains("changed start (next)"),
            "{}",
            d.summary()
        );
    }

    #[test]
    fn the_prompt_shows_the_recent_turns_briefly() {
        let turns: Vec<ChatTurn> = (0..15)
            .map(|i| ChatTurn {
                at: String::new(),
                message: format!(
                    "request {i} {}",
                    "x".repeat(if i == 14 { 5_000 } else { 0 })
                ),
                explanation: "done".into(),
                applied: true,
                diff: Some(StepDiff {
                    added_steps: vec!["s".into()],
                    ..StepDiff::default()
                }),
                problems: 0,
            })
            .collect();
        let text = history_text(&turns);
        assert!(
            text.starts_with("(5 earlier request(s) not shown)"),
            "{text}"
        );
        assert!(
            !text.contains("request 4 ") && text.contains("6. User: request 5"),
            "{text}"
        );
        assert!(
            text.contains("You (applied: added steps s): done"),
            "{text}"
        );
        assert!(text.len() < 2_000, "{}", text.len());
    }

    #[test]
    fn fixup_keeps_id_and_activation_as_they_were() {
        let mut new = json!({ "id": "x", "config": { "active": true } });
        fixup(&mut new, "w", None);
        assert_eq!(new, json!({ "id": "w", "config": {} }));
        let mut new = json!({ "id": "w" });
        fixup(&mut new, "w", Some(&json!(true)));
        assert_eq!(new, json!({ "id": "w", "config": { "active": true } }));
    }
}
