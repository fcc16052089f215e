//! AI-assisted authoring over the configured [`LlmProvider`] (the same providers as the `llm`
//! step):
//!
//! * [`generate`]: a workflow from a description. The model gets the JSON Schema, the action
//!   catalog with each params schema, the template rules and two example workflows
//!   ([`prompts`]); its answer is parsed and validated, and the problems go back to it for
//!   repair (at most [`AiSettings::max_repairs`] rounds). Only a valid result is saved, and only
//!   as a draft: never published, never activated (`config.active` is dropped).
//! * [`chat`]: a change to a draft in plain words. The model returns the changed workflow; the
//!   reply shows a step-level diff and the draft is stored only when valid. Published versions
//!   are never touched. A bounded conversation per workflow is kept in the records store.
//! * [`cron`]: plain English to cron. The deterministic parser goes first; only what it cannot
//!   read goes to the model, whose answer is validated as cron (and as an EventBridge schedule).
//!
//! The model answers `{"workflow": {...}, "explanation": "..."}` (code fences and prose around it
//! are tolerated). Provider failures are [`AiError::Provider`] with the provider's
//! [`StepError`]: the HTTP layer answers 502 (`llm_unavailable`) or 504 (`llm_timeout`).

// `StepError` is over clippy's size limit for error variants; see crate::llm.
#![allow(clippy::result_large_err)]

pub mod chat;
pub mod cron;
pub mod generate;
pub mod prompts;

use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
use wf_core::StoreError;
use wf_core::error::StepError;
use wf_core::ports::{LlmProvider, LlmRequest};
use wf_core::validate::{Problem, codes, format_problems, validate_value};

/// Environment variable naming the model the authoring features ask (default `gpt-4o-mini`).
pub const ENV_MODEL: &str = "WF_AI_MODEL";
/// Environment variable bounding one model call, in seconds (default 120).
pub const ENV_TIMEOUT_SECS: &str = "WF_AI_TIMEOUT_SECS";
/// The default model.
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";
/// Repair rounds after the first answer (so at most 4 calls per request).
pub const DEFAULT_MAX_REPAIRS: u32 = 3;
/// How much of a rejected answer is quoted back to the model.
const ANSWER_QUOTE_CHARS: usize = 40_000;
/// How many problems a repair round lists.
const REPAIR_PROBLEMS: usize = 30;

/// Which model, how long to wait for it, how many repair rounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiSettings {
    pub model: String,
    /// Bound of one model call.
    pub timeout: Duration,
    /// Rounds of "here are the problems, fix them" after the first answer.
    pub max_repairs: u32,
}

impl Default for AiSettings {
    fn default() -> Self {
        Self {
            model: DEFAULT_MODEL.to_owned(),
            timeout: Duration::from_secs(120),
            max_repairs: DEFAULT_MAX_REPAIRS,
        }
    }
}

impl AiSettings {
    /// `WF_AI_MODEL` and `WF_AI_TIMEOUT_SECS`; unset or empty values keep the defaults.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// `from_env` over any lookup.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let value = |name: &str| crate::llm::setting(&lookup, name);
        let mut s = Self::default();
        if let Some(model) = value(ENV_MODEL) {
            s.model = model;
        }
        if let Some(secs) = value(ENV_TIMEOUT_SECS).and_then(|v| v.parse::<u64>().ok()) {
            s.timeout = Duration::from_secs(secs.max(1));
        }
        s
    }
}

/// Why an authoring request failed.
#[derive(Debug, thiserror::Error)]
pub enum AiError {
    /// The provider failed (rate limit, 5xx, refused request, timeout): its own error.
    #[error("the LLM provider failed: {0}")]
    Provider(StepError),
    /// Every answer, repairs included, was unusable: nothing was saved.
    #[error("the model's workflow is still invalid after {} answer(s)", .0.rounds)]
    Invalid(Box<InvalidAnswer>),
    /// The model (or the parser) could not produce a usable schedule.
    #[error("{}", .0.message)]
    Cron(Box<CronFailure>),
    #[error("{0}")]
    NotFound(String),
    /// The workflow id is taken.
    #[error("{0}")]
    Exists(String),
    /// The workflow is edited in a file (`wf dev`): API writes are refused.
    #[error("workflow {id} comes from {file}: edit that file (wf dev publishes it on save)")]
    FileBacked { id: String, file: String },
    /// The draft changed while the model was answering (someone else edited it).
    #[error("{0}")]
    DraftChanged(String),
    /// A malformed request (bad id, empty message).
    #[error("{1}")]
    BadRequest(&'static str, String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The last state of a request whose answers never validated.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvalidAnswer {
    /// The problems of the last answer.
    pub problems: Vec<Problem>,
    /// How many answers the model gave.
    pub rounds: u32,
    /// Every rejected answer's problems, in order.
    pub rejected: Vec<Rejected>,
    /// The last workflow the model proposed (not saved), when it was JSON at all.
    pub candidate: Option<Value>,
    pub explanation: Option<String>,
}

/// Why a schedule could not be made.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CronFailure {
    pub message: String,
    /// The model's words, when it was asked.
    pub explanation: Option<String>,
    /// Model answers (0 when only the parser tried).
    pub rounds: u32,
}

/// One answer that was sent back for repair, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejected {
    /// 1 = the first answer.
    pub round: u32,
    pub problems: Vec<Problem>,
}

/// A validation report as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Validation {
    pub valid: bool,
    pub problems: Vec<Problem>,
}

impl Validation {
    pub fn of(draft: &Value) -> Self {
        let problems = validate_value(draft).problems;
        Self {
            valid: problems.is_empty(),
            problems,
        }
    }
}

/// A parsed answer of the authoring prompts.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub workflow: Value,
    pub explanation: String,
}

/// Read the model's answer: `{"workflow": {...}, "explanation": "..."}`, possibly inside a code
/// fence or with prose around it; a bare workflow (an object with `steps`) is accepted too.
/// The error is a problem to send back to the model.
pub fn parse_answer(text: &str) -> Result<Answer, Problem> {
    let mut map = parse_json_object(text)?;
    let explanation = match map.get("explanation") {
        Some(Value::String(s)) => s.trim().to_owned(),
        _ => String::new(),
    };
    match map.remove("workflow") {
        Some(workflow @ Value::Object(_)) => Ok(Answer {
            workflow,
            explanation,
        }),
        Some(other) => Err(Problem::new(
            codes::WRONG_TYPE,
            "",
            format!(
                "the answer's \"workflow\" is {}, not an object",
                wf_core::expr::type_name(&other)
            ),
            "answer {\"workflow\": { ...the complete workflow... }, \"explanation\": \"...\"}",
        )),
        None if map.contains_key("steps") => Ok(Answer {
            workflow: Value::Object(map),
            explanation,
        }),
        None => Err(Problem::new(
            codes::MISSING_FIELD,
            "",
            "the answer has no \"workflow\" object",
            "answer {\"workflow\": { ...the complete workflow... }, \"explanation\": \"...\"}",
        )),
    }
}

/// The JSON object in a model's answer: the whole text, else the first code fence, else the
/// span from the first `{` to the last `}`.
pub fn parse_json_object(text: &str) -> Result<Map<String, Value>, Problem> {
    let text = text.trim().trim_start_matches('\u{feff}');
    let mut candidates = vec![text];
    if let Some(fenced) = fenced_block(text) {
        candidates.push(fenced);
    }
    if let (Some(a), Some(b)) = (text.find('{'), text.rfind('}'))
        && a < b
    {
        candidates.push(&text[a..=b]);
    }
    let mut first_error = None;
    for candidate in candidates {
        match serde_json::from_str::<Value>(candidate) {
            Ok(Value::Object(map)) => return Ok(map),
            Ok(other) => {
                first_error.get_or_insert_with(|| {
                    format!(
                        "the answer is a JSON {}, not an object",
                        wf_core::expr::type_name(&other)
                    )
                });
            }
            Err(e) => {
                first_error.get_or_insert_with(|| {
                    format!(
                        "the answer is not valid JSON: {e} (line {}, column {})",
                        e.line(),
                        e.column()
                    )
                });
            }
        }
    }
    let message = first_error.unwrap_or_else(|| "the answer is empty".to_owned());
    Err(Problem::new(
        codes::JSON_SYNTAX,
        "",
        message,
        "answer with one JSON object only: double quotes, no comments, no trailing commas, no text around it",
    ))
}

/// The content of the first ``` fence (its language tag dropped).
fn fenced_block(text: &str) -> Option<&str> {
    let start = text.find("```")?;
    let after = &text[start + 3..];
    let body_start = after.find('\n')? + 1;
    let body = &after[body_start..];
    let end = body.find("```").unwrap_or(body.len());
    Some(body[..end].trim())
}

/// One model call in JSON mode.
pub(crate) async fn ask(
    llm: &dyn LlmProvider, settings: &AiSettings, system: Option<&str>, prompt: String,
) -> Result<String, AiError> {
    let request = LlmRequest {
        model: settings.model.clone(),
        system: system.map(str::to_owned),
        prompt,
        temperature: None,
        max_tokens: None,
        json: true,
        json_schema: None,
    };
    let started = std::time::Instant::now();
    let result = llm.complete(&request, settings.timeout).await;
    match &result {
        Ok(r) => tracing::info!(
            model = %r.model, input_tokens = r.input_tokens, output_tokens = r.output_tokens,
            ms = started.elapsed().as_millis() as u64, "ai: model answered"
        ),
        Err(e) => tracing::warn!(code = %e.code, error = %e.message, "ai: model call failed"),
    }
    result.map(|r| r.text).map_err(AiError::Provider)
}

/// A valid workflow the model wrote, and how it got there.
#[derive(Debug, Clone)]
pub struct Authored {
    pub workflow: Value,
    pub explanation: String,
    /// How many answers it took (1 = the first was valid).
    pub rounds: u32,
    pub rejected: Vec<Rejected>,
}

/// Ask for a workflow until it validates: the first answer, then up to `max_repairs` rounds
/// that quote the previous answer and list its problems. `fixup` enforces what the model may
/// not decide (the id, `config.active`) before validation.
pub(crate) async fn author(
    llm: &dyn LlmProvider, settings: &AiSettings, system: &str, prompt: &str,
    fixup: impl Fn(&mut Value),
) -> Result<Authored, AiError> {
    let mut rejected = Vec::new();
    let mut next_prompt = prompt.to_owned();
    let mut last: Option<Answer> = None;
    let rounds = settings.max_repairs + 1;
    for round in 1..=rounds {
        let text = ask(llm, settings, Some(system), next_prompt).await?;
        let problems = match parse_answer(&text) {
            Ok(mut answer) => {
                fixup(&mut answer.workflow);
                let report = validate_value(&answer.workflow);
                if report.is_valid() {
                    return Ok(Authored {
                        workflow: answer.workflow,
                        explanation: answer.explanation,
                        rounds: round,
                        rejected,
                    });
                }
                last = Some(answer);
                report.problems
            }
            Err(problem) => vec![problem],
        };
        tracing::info!(
            round,
            problems = problems.len(),
            "ai: answer rejected, asking for a repair"
        );
        next_prompt = format!("{prompt}{}", repair_prompt(&text, &problems));
        rejected.push(Rejected { round, problems });
    }
    let problems = rejected
        .last()
        .map(|r| r.problems.clone())
        .unwrap_or_default();
    Err(AiError::Invalid(Box::new(InvalidAnswer {
        problems,
        rounds,
        rejected,
        explanation: last
            .as_ref()
            .map(|a| a.explanation.clone())
            .filter(|e| !e.is_empty()),
        candidate: last.map(|a| a.workflow),
    })))
}

/// The repair section appended to the original request.
pub(crate) fn repair_prompt(answer: &str, problems: &[Problem]) -> String {
    let shown = &problems[..problems.len().min(REPAIR_PROBLEMS)];
    let mut listed = format_problems("workflow", shown);
    if problems.len() > shown.len() {
        listed.push_str(&format!(
            "... and {} more problem(s)\n",
            problems.len() - shown.len()
        ));
    }
    prompts::fill(
        prompts::REPAIR,
        &[
            ("answer", &truncate_chars(answer.trim(), ANSWER_QUOTE_CHARS)),
            ("problems", listed.trim_end()),
        ],
    )
}

pub(crate) fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((idx, _)) => format!("{}…", &s[..idx]),
        None => s.to_owned(),
    }
}

/// A workflow id the model or the user chose, checked by the one rule of wf-core.
pub fn check_id(id: &str) -> Result<(), AiError> {
    wf_core::model::check_workflow_id(id).map_err(|e| AiError::BadRequest("invalid_id", e.message))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn answers_are_read_with_or_without_fences_and_prose() {
        let wf = json!({ "id": "x", "steps": [] });
        let plain = json!({ "workflow": wf, "explanation": " Does x. " }).to_string();
        let a = parse_answer(&plain).unwrap();
        assert_eq!(a.workflow, wf);
        assert_eq!(a.explanation, "Does x.");

        let fenced = format!("Here you go:\n```json\n{plain}\n```\nEnjoy.");
        assert_eq!(parse_answer(&fenced).unwrap().workflow, wf);
        let prose = format!("Sure! {plain} Hope that helps.");
        assert_eq!(parse_answer(&prose).unwrap().workflow, wf);
        // a bare workflow is accepted, without explanation
        let bare = parse_answer(&wf.to_string()).unwrap();
        assert_eq!((bare.workflow, bare.explanation), (wf, String::new()));
    }

    #[test]
    fn unusable_answers_are_problems_for_the_model() {
        let p = parse_answer("{\"workflow\": {\"id\": \"x\",}").unwrap_err();
        assert_eq!(p.code, codes::JSON_SYNTAX);
        assert!(p.message.contains("not valid JSON"), "{}", p.message);
        let p = parse_answer("[1, 2]").unwrap_err();
        assert!(p.message.contains("array"), "{}", p.message);
        let p = parse_answer("{\"explanation\": \"hi\"}").unwrap_err();
        assert_eq!(p.code, codes::MISSING_FIELD);
        let p = parse_answer("{\"workflow\": \"a string\"}").unwrap_err();
        assert!(p.message.contains("string"), "{}", p.message);
        assert!(parse_answer("").is_err());
    }

    #[test]
    fn settings_from_lookup() {
        assert_eq!(AiSettings::from_lookup(|_| None), AiSettings::default());
        let s = AiSettings::from_lookup(|n| match n {
            ENV_MODEL => Some(" llama3 ".into()),
            ENV_TIMEOUT_SECS => Some("7".into()),
            _ => None,
        });
        assert_eq!(s.model, "llama3");
        assert_eq!(s.timeout, Duration::from_secs(7));
        assert_eq!(s.max_repairs, DEFAULT_MAX_REPAIRS);
    }

    #[test]
    fn repair_prompt_quotes_the_answer_and_lists_problems() {
        let p = Problem::new(
            codes::UNKNOWN_ACTION,
            "/steps/1/action",
            "unknown action \"slack.post\"",
            "use one of the listed actions",
        );
        let text = repair_prompt("{\"workflow\": 1}", &[p]);
        assert!(text.contains("{\"workflow\": 1}"), "{text}");
        assert!(
            text.contains("workflow: /steps/1/action: unknown action \"slack.post\""),
            "{text}"
        );
        assert!(
            text.contains("hint: use one of the listed actions"),
            "{text}"
        );
        assert!(!text.contains("<!--"), "{text}");
    }

    #[test]
    fn ids_are_checked_like_the_api_does() {
        assert!(check_id("order-alert-2").is_ok());
        for bad in ["", "-x", "Order", "a_b", &"x".repeat(65)] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }
}
