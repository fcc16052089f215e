//! Plain English to cron: the deterministic parser first ([`wf_core::cron::parse_any`]); only
//! what it cannot read goes to the model (when one is given). The model's answer must be a
//! valid 5-field cron (or preset) that EventBridge can run; otherwise the problem goes back to
//! it, at most [`AiSettings::max_repairs`] times. Callers show the result with its next runs
//! before anything uses it.

use serde::Serialize;
use serde_json::Value;
use wf_core::cron::{CronSpec, FORMS_HELP, parse_any};
use wf_core::ports::LlmProvider;
use wf_core::validate::{Problem, codes};

use super::{AiError, AiSettings, CronFailure, ask, parse_json_object, prompts, repair_prompt};

/// Who read the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CronSource {
    Parser,
    Ai,
}

/// A schedule read from text.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub spec: CronSpec,
    pub source: CronSource,
    /// The model's description of the schedule (AI only).
    pub explanation: Option<String>,
    /// Model answers it took (0 for the parser).
    pub rounds: u32,
}

/// Read `text` as a schedule: the parser, then (with `llm`) the model.
pub async fn resolve(
    text: &str, llm: Option<&dyn LlmProvider>, settings: &AiSettings,
) -> Result<Resolved, AiError> {
    let parse_error = match parse_any(text) {
        Ok(spec) => {
            return Ok(Resolved {
                spec,
                source: CronSource::Parser,
                explanation: None,
                rounds: 0,
            });
        }
        Err(e) => e,
    };
    let Some(llm) = llm else {
        return Err(AiError::Cron(Box::new(CronFailure {
            message: with_forms(parse_error.message),
            explanation: None,
            rounds: 0,
        })));
    };
    let prompt = prompts::fill(prompts::CRON, &[("text", text.trim())]);
    let mut next_prompt = prompt.clone();
    let rounds = settings.max_repairs + 1;
    let mut last_problem = String::new();
    for round in 1..=rounds {
        let answer = ask(llm, settings, None, next_prompt).await?;
        let problem = match read_answer(&answer) {
            Ok(Reading::Schedule(spec, explanation)) => {
                return Ok(Resolved {
                    spec: *spec,
                    source: CronSource::Ai,
                    explanation: Some(explanation).filter(|e| !e.is_empty()),
                    rounds: round,
                });
            }
            Ok(Reading::NotASchedule(explanation)) => {
                return Err(AiError::Cron(Box::new(CronFailure {
                    message: format!(
                        "neither the parser nor the model could read {:?} as a schedule: {parse_error}",
                        text.trim()
                    ),
                    explanation: Some(explanation).filter(|e| !e.is_empty()),
                    rounds: round,
                })));
            }
            Err(p) => p,
        };
        tracing::info!(round, problem = %problem.message, "ai: cron answer rejected");
        last_problem = problem.message.clone();
        next_prompt = format!("{prompt}{}", repair_prompt(&answer, &[problem]));
    }
    Err(AiError::Cron(Box::new(CronFailure {
        message: format!(
            "the model did not give a usable cron for {:?} after {rounds} answer(s): {last_problem}",
            text.trim()
        ),
        explanation: None,
        rounds,
    })))
}

fn with_forms(error: String) -> String {
    if error.contains(FORMS_HELP) {
        error
    } else {
        format!("{error}; write {FORMS_HELP}")
    }
}

enum Reading {
    Schedule(Box<CronSpec>, String),
    NotASchedule(String),
}

/// `{"cron": "0 9 * * 1-5", "explanation": "..."}` or `{"cron": null, "explanation": "why"}`.
fn read_answer(text: &str) -> Result<Reading, Problem> {
    let map = parse_json_object(text).map_err(|mut p| {
        p.hint = "answer {\"cron\": \"<5 fields>\", \"explanation\": \"...\"} only".into();
        p
    })?;
    let explanation = map
        .get("explanation")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_owned();
    let cron = match map.get("cron") {
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Null) => return Ok(Reading::NotASchedule(explanation)),
        _ => {
            return Err(Problem::new(
                codes::MISSING_FIELD,
                "/cron",
                "the answer has no \"cron\" string",
                "answer {\"cron\": \"<5 fields>\", \"explanation\": \"...\"}",
            ));
        }
    };
    // EventBridge's own form is a common slip: say exactly what to drop.
    let spec = CronSpec::parse(&cron).map_err(|e| {
        Problem::new(
            codes::CRON,
            "/cron",
            e.message,
            "5 fields, minute hour day-of-month month day-of-week, in UTC; no seconds, no year, no `?`, no cron(...) wrapper",
        )
    })?;
    spec.to_eventbridge().map_err(|e| {
        Problem::new(
            codes::CRON,
            "/cron",
            e.message,
            "restrict the day of the month or the day of the week, not both (one of them must be `*`)",
        )
    })?;
    Ok(Reading::Schedule(Box::new(spec), explanation))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_checked_as_cron_and_eventbridge() {
        let ok = read_answer(r#"{"cron": "0 12 * * 2#2", "explanation": "Second Tuesday."}"#);
        assert!(
            matches!(ok, Ok(Reading::Schedule(ref s, ref e)) if s.expression() == "0 12 * * 2#2" && e == "Second Tuesday.")
        );
        let six = read_answer(r#"{"cron": "0 0 12 ? * TUE#2 *"}"#)
            .err()
            .unwrap();
        assert_eq!(six.code, codes::CRON);
        let both = read_answer(
            r#"```json
{"cron": "0 9 1 * 1"}
```"#,
        )
        .err()
        .unwrap();
        assert!(both.message.contains("EventBridge"), "{}", both.message);
        assert!(matches!(
            read_answer(r#"{"cron": null, "explanation": "not a schedule"}"#),
            Ok(Reading::NotASchedule(ref e)) if e == "not a schedule"
        ));
        assert!(read_answer("cron please").is_err());
        assert!(read_answer(r#"{"schedule": "0 9 * * *"}"#).is_err());
    }
}
