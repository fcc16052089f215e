//! Generate a workflow from a description, or (without one) an empty draft with a start step.
//!
//! Ids: a client that names an `id` gets exactly that id or [`AiError::Exists`] (409); without
//! one the id derives from the name (else the description) and the first free one of `base`,
//! `base-2`, `base-3`, ... is taken. An existing workflow is never overwritten.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use wf_core::ports::{DefinitionStore, WorkflowMeta};
use wf_core::{StoreError, StoreResult};

use super::{
    AiError, AiSettings, Rejected, Validation, author, chat, check_id, prompts, truncate_chars,
};
use crate::services::Services;

/// Longest derived id base (room is left for `-NN`).
const MAX_BASE_LEN: usize = 48;
/// Longest accepted description.
pub const MAX_DESCRIPTION_CHARS: usize = 8_000;

/// `POST /workflows/generate` and `wf new`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GenerateRequest {
    /// The workflow's name (also the base of its id when no `id` is given).
    #[serde(default)]
    pub name: Option<String>,
    /// What the workflow should do. Without it an empty draft is created (no model call).
    #[serde(default)]
    #[schema(max_length = 8000)]
    pub description: Option<String>,
    /// Exactly this id (409 when it is taken). Blank is the same as left out.
    #[serde(default)]
    #[schema(pattern = "^\\s*([a-z0-9][a-z0-9-]{0,63})?\\s*$")]
    pub id: Option<String>,
}

/// A saved draft and how it was made.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Generated {
    pub id: String,
    pub draft: Value,
    pub validation: Validation,
    /// The model's short explanation (none on the manual path).
    pub explanation: Option<String>,
    /// Model answers it took (0 on the manual path).
    pub rounds: u32,
    /// The answers sent back for repair, with their problems.
    pub rejected: Vec<Rejected>,
    /// Always false: a generated workflow is a draft; publish and activate it after review.
    pub published: bool,
    pub active: bool,
}

/// Generate and save a draft. See [`generate_with`].
pub async fn generate(
    svc: &Services, settings: &AiSettings, req: GenerateRequest,
) -> Result<Generated, AiError> {
    generate_with(svc, settings, req, &|_| false).await
}

/// Generate and save a draft; `taken` marks ids that are unavailable besides the stored ones
/// (`wf new` passes the files in `workflows/`).
pub async fn generate_with(
    svc: &Services, settings: &AiSettings, req: GenerateRequest,
    taken: &(dyn Fn(&str) -> bool + Send + Sync),
) -> Result<Generated, AiError> {
    let non_empty = |s: Option<String>| s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let name = non_empty(req.name);
    let description = non_empty(req.description);
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS)
    {
        return Err(AiError::BadRequest(
            "invalid_description",
            format!("the description is over {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    let defs = &*svc.definitions;
    let explicit = non_empty(req.id);
    let base = match &explicit {
        Some(id) => {
            check_id(id)?;
            if taken(id) || is_stored(defs, id).await? {
                return Err(exists(id));
            }
            id.clone()
        }
        None => slug(name.as_deref().or(description.as_deref()).unwrap_or("")),
    };
    let id = match &explicit {
        Some(id) => id.clone(),
        None => free_id(defs, &base, taken).await?,
    };

    let Some(description) = description else {
        // The manual path: an empty draft with a start step (no model call).
        let mut draft = empty_draft(&id, name.as_deref());
        let id = save(svc, id, &base, explicit.is_some(), taken, &mut draft).await?;
        return Ok(Generated {
            id,
            validation: Validation::of(&draft),
            draft,
            explanation: None,
            rounds: 0,
            rejected: Vec::new(),
            published: false,
            active: false,
        });
    };

    let prompt = prompts::fill(
        prompts::GENERATE,
        &[
            ("id", &id),
            (
                "name",
                name.as_deref()
                    .unwrap_or("(none given: choose a short one)"),
            ),
            ("description", &description),
        ],
    );
    let fix_id = id.clone();
    let fix_name = name.clone();
    let authored = author(&*svc.llm, settings, prompts::system(), &prompt, move |wf| {
        fixup(wf, &fix_id, fix_name.as_deref())
    })
    .await?;
    let mut draft = authored.workflow;
    let id = save(svc, id, &base, explicit.is_some(), taken, &mut draft).await?;
    Ok(Generated {
        id,
        validation: Validation::of(&draft),
        draft,
        explanation: Some(truncate_chars(&authored.explanation, 2_000)).filter(|e| !e.is_empty()),
        rounds: authored.rounds,
        rejected: authored.rejected,
        published: false,
        active: false,
    })
}

/// What the model may not decide: the id, the name the user gave, activation.
fn fixup(workflow: &mut Value, id: &str, name: Option<&str>) {
    let Some(obj) = workflow.as_object_mut() else {
        return;
    };
    obj.insert("id".into(), Value::String(id.to_owned()));
    if let Some(name) = name {
        obj.insert("name".into(), Value::String(name.to_owned()));
    }
    if let Some(config) = obj.get_mut("config").and_then(Value::as_object_mut) {
        // Generated workflows are never active: the user activates after review (a `true`
        // here would make `wf dev` activate the file as soon as it is published).
        config.remove("active");
    }
}

/// The manual path's draft: a start step with a manual trigger.
pub fn empty_draft(id: &str, name: Option<&str>) -> Value {
    let mut wf = Map::new();
    wf.insert("id".into(), json!(id));
    if let Some(name) = name {
        wf.insert("name".into(), json!(name));
    }
    wf.insert(
        "steps".into(),
        json!([ { "id": "start", "type": "start", "triggers": [ { "type": "manual" } ] } ]),
    );
    Value::Object(wf)
}

/// Store META (must not exist) and the draft; an id taken meanwhile moves an automatic id on.
async fn save(
    svc: &Services, mut id: String, base: &str, explicit: bool,
    taken: &(dyn Fn(&str) -> bool + Send + Sync), draft: &mut Value,
) -> Result<String, AiError> {
    let defs = &*svc.definitions;
    for _ in 0..5 {
        let now = svc.clock.now_ms();
        let meta = WorkflowMeta {
            id: id.clone(),
            updated_at: now,
            ..WorkflowMeta::default()
        };
        match defs.put_meta(&meta, None).await {
            Ok(()) => {
                if let Some(obj) = draft.as_object_mut() {
                    obj.insert("id".into(), Value::String(id.clone()));
                }
                // A conversation left by a deleted workflow of the same id is not this one's.
                let finished = async {
                    defs.put_draft(&id, draft, now).await?;
                    chat::clear_history(&*svc.records, &id).await
                }
                .await;
                if let Err(e) = finished {
                    // Leave nothing behind: the id reserved above is released.
                    if let Err(undo) = defs.delete_workflow(&id).await {
                        tracing::error!(workflow_id = %id, error = %undo, "cannot remove a half-made workflow");
                    }
                    return Err(e.into());
                }
                return Ok(id);
            }
            Err(StoreError::Conflict(_)) if !explicit => {
                id = free_id(defs, base, taken).await?;
            }
            Err(StoreError::Conflict(_)) => return Err(exists(&id)),
            Err(e) => return Err(e.into()),
        }
    }
    Err(AiError::Exists(format!(
        "could not reserve a free id like {base:?}; name one with \"id\""
    )))
}

fn exists(id: &str) -> AiError {
    AiError::Exists(format!(
        "workflow {id} exists: choose another id, or change it with POST /workflows/{id}/chat"
    ))
}

async fn is_stored(defs: &dyn DefinitionStore, id: &str) -> StoreResult<bool> {
    Ok(defs.get_meta(id).await?.is_some() || defs.get_draft(id).await?.is_some())
}

/// The first of `base`, `base-2`, `base-3`, ... that is neither stored nor `taken`.
pub async fn free_id(
    defs: &dyn DefinitionStore, base: &str, taken: &(dyn Fn(&str) -> bool + Send + Sync),
) -> Result<String, AiError> {
    for n in 1..=100u32 {
        let candidate = if n == 1 {
            base.to_owned()
        } else {
            format!("{base}-{n}")
        };
        if !taken(&candidate) && !is_stored(defs, &candidate).await? {
            return Ok(candidate);
        }
    }
    Err(AiError::Exists(format!(
        "{base} and {base}-2 .. {base}-100 are all taken; name an id"
    )))
}

/// A URL-safe id from free text: `"Notify Sales: big orders!"` -> `notify-sales-big-orders`.
/// Only the first six words count; empty text gives `workflow`.
pub fn slug(text: &str) -> String {
    let mut out = String::new();
    for word in text.split_whitespace().take(6) {
        for c in word.chars() {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                out.push(c);
            } else if !out.ends_with('-') {
                out.push('-');
            }
        }
        if !out.ends_with('-') {
            out.push('-');
        }
    }
    let mut s = out.trim_matches('-').to_owned();
    if s.len() > MAX_BASE_LEN {
        s.truncate(MAX_BASE_LEN);
        if let Some(cut) = s.rfind('-').filter(|&i| i >= 8) {
            s.truncate(cut);
        }
        s = s.trim_matches('-').to_owned();
    }
    if s.is_empty() {
        "workflow".to_owned()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_valid_ids() {
        assert_eq!(slug("Notify Sales: big orders!"), "notify-sales-big-orders");
        assert_eq!(slug("  "), "workflow");
        assert_eq!(slug("¿Qué?"), "qu");
        assert_eq!(
            slug("every morning at nine send the open tickets to the team channel"),
            "every-morning-at-nine-send-the"
        );
        let long = slug(&"abcdefghij".repeat(10));
        assert!(long.len() <= MAX_BASE_LEN && !long.is_empty());
        for s in ["a b", "X-1", "--", "ok", &"word ".repeat(40)] {
            assert!(check_id(&slug(s)).is_ok(), "{s}");
        }
    }

    #[test]
    fn the_empty_draft_is_a_valid_workflow() {
        let d = empty_draft("blank", Some("Blank"));
        assert!(Validation::of(&d).valid, "{d}");
        assert_eq!(d["steps"][0]["type"], "start");
    }

    #[test]
    fn fixup_enforces_id_name_and_inactivity() {
        let mut wf =
            json!({ "id": "other", "name": "M", "config": { "active": true, "timeoutMs": 5 } });
        fixup(&mut wf, "mine", Some("Mine"));
        assert_eq!(
            wf,
            json!({ "id": "mine", "name": "Mine", "config": { "timeoutMs": 5 } })
        );
    }
}
