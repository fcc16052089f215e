//! Runs one claimed step: renders its templates, calls the action or model, and returns the
//! resolved input (secrets redacted) and the outcome. Loop steps are started by the worker.

use std::time::Duration;

use serde_json::{Value, json};
use wf_core::StepError;
use wf_core::engine::{StepOutcome, evaluate_condition};
use wf_core::expr::ExprContext;
use wf_core::model::{ActionStep, LlmStep, ResponseFormat, Step};
use wf_core::ports::{ActionContext, LlmRequest};

use crate::services::Services;

/// What running a step produced: the resolved input for the record, and the outcome.
pub struct StepRun {
    pub input: Value,
    pub outcome: StepOutcome,
}

impl StepRun {
    fn failed(input: Value, e: StepError) -> Self {
        Self {
            input,
            outcome: StepOutcome::Failed(e),
        }
    }
}

/// Run a non-loop step. `budget` bounds the attempt (the step's timeout or what is left of
/// the execution's deadline, whichever is smaller).
pub async fn run_step(
    svc: &Services, step: &Step, ctx: &ExprContext, execution_input: &Value,
    action_ctx: ActionContext,
) -> StepRun {
    match step {
        Step::Start(s) => StepRun {
            input: execution_input.clone(),
            outcome: StepOutcome::Succeeded {
                output: execution_input.clone(),
                next: s.next.clone(),
            },
        },
        Step::Condition(c) => match evaluate_condition(c, ctx) {
            Ok((input, output, next)) => StepRun {
                input,
                outcome: StepOutcome::Succeeded { output, next },
            },
            Err(e) => StepRun::failed(Value::Null, e),
        },
        Step::Output(o) => match ctx.render(&o.output) {
            Ok(v) => StepRun {
                input: ctx.redact(&v),
                outcome: StepOutcome::Succeeded {
                    output: ctx.redact(&v),
                    next: None,
                },
            },
            Err(e) => StepRun::failed(Value::Null, e),
        },
        Step::Action(a) => run_action(svc, a, ctx, action_ctx).await,
        Step::Llm(l) => run_llm(svc, l, ctx, action_ctx.timeout).await,
        Step::Loop(_) => StepRun::failed(
            Value::Null,
            StepError::new("engine", "loop steps are started by the worker"),
        ),
    }
}

async fn run_action(
    svc: &Services, step: &ActionStep, ctx: &ExprContext, actx: ActionContext,
) -> StepRun {
    let params = match ctx.render(&step.params) {
        Ok(p) => p,
        Err(e) => return StepRun::failed(Value::Null, e),
    };
    let input = ctx.redact(&params);
    let timeout = actx.timeout;
    let result = tokio::time::timeout(timeout, svc.actions.run(&step.action, params, &actx)).await;
    let outcome = match result {
        Ok(Ok(output)) => StepOutcome::Succeeded {
            output: ctx.redact(&output),
            next: step.next.clone(),
        },
        Ok(Err(mut e)) => {
            e.message = redact_str(ctx, &e.message);
            StepOutcome::Failed(e)
        }
        Err(_) => StepOutcome::Failed(StepError::timeout(format!(
            "action {} did not finish within {} ms",
            step.action,
            timeout.as_millis()
        ))),
    };
    StepRun { input, outcome }
}

fn redact_str(ctx: &ExprContext, s: &str) -> String {
    match ctx.redact(&Value::String(s.to_string())) {
        Value::String(s) => s,
        _ => s.to_string(),
    }
}

fn render_text(ctx: &ExprContext, src: &str) -> Result<String, StepError> {
    Ok(match ctx.render_str(src)? {
        Value::String(s) => s,
        other => other.to_string(),
    })
}

async fn run_llm(svc: &Services, step: &LlmStep, ctx: &ExprContext, timeout: Duration) -> StepRun {
    let prompt = match render_text(ctx, &step.prompt) {
        Ok(p) => p,
        Err(e) => return StepRun::failed(Value::Null, e),
    };
    let system = match step
        .system
        .as_deref()
        .map(|s| render_text(ctx, s))
        .transpose()
    {
        Ok(s) => s,
        Err(e) => return StepRun::failed(Value::Null, e),
    };
    let json_mode = step.response_format == ResponseFormat::Json;
    let request = LlmRequest {
        model: step.model.clone(),
        system,
        prompt,
        temperature: step.temperature,
        max_tokens: step.max_tokens,
        json: json_mode,
        json_schema: step.json_schema.clone(),
    };
    let input = ctx.redact(&serde_json::to_value(&request).unwrap_or(Value::Null));
    let response = match tokio::time::timeout(timeout, svc.llm.complete(&request, timeout)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return StepRun::failed(input, e),
        Err(_) => {
            return StepRun::failed(
                input,
                StepError::timeout(format!(
                    "the model did not answer within {} ms",
                    timeout.as_millis()
                )),
            );
        }
    };
    let mut output = json!({
        "text": response.text,
        "model": response.model,
        "usage": { "inputTokens": response.input_tokens, "outputTokens": response.output_tokens },
    });
    if json_mode {
        match parse_model_json(&response.text) {
            Ok(v) => {
                if let Some(schema) = &step.json_schema
                    && let Err(e) = check_schema(schema, &v)
                {
                    return StepRun::failed(input, e.with_details(json!({ "raw": response.text })));
                }
                output["json"] = v;
            }
            Err(e) => {
                return StepRun::failed(
                    input,
                    StepError::retryable(
                        "llm.invalid_json",
                        format!("the model's answer is not valid JSON: {e}"),
                    )
                    .with_details(json!({ "raw": response.text })),
                );
            }
        }
    }
    StepRun {
        input,
        outcome: StepOutcome::Succeeded {
            output: ctx.redact(&output),
            next: step.next.clone(),
        },
    }
}

/// Parse a model's JSON answer, tolerating a Markdown code fence around it.
fn parse_model_json(text: &str) -> Result<Value, serde_json::Error> {
    let t = text.trim();
    let t = t
        .strip_prefix("```json")
        .or_else(|| t.strip_prefix("```"))
        .and_then(|x| x.strip_suffix("```"))
        .unwrap_or(t)
        .trim();
    serde_json::from_str(t)
}

/// Check the model's JSON against the step's `jsonSchema` (a mismatch is retryable: another
/// answer may fit).
fn check_schema(schema: &Value, v: &Value) -> Result<(), StepError> {
    let validator = wf_core::schema::user_schema_validator(schema)
        .map_err(|e| StepError::new("llm.schema", format!("invalid jsonSchema: {e}")))?;
    let errors: Vec<String> = validator
        .iter_errors(v)
        .map(|e| format!("{}: {}", e.instance_path, e))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(StepError::retryable(
            "llm.schema_mismatch",
            format!(
                "the model's JSON does not match jsonSchema: {}",
                errors.join("; ")
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_json_may_be_fenced() {
        assert_eq!(
            parse_model_json("```json\n{\"a\":1}\n```").unwrap(),
            json!({"a": 1})
        );
        assert_eq!(parse_model_json(" {\"a\":1} ").unwrap(), json!({"a": 1}));
        assert!(parse_model_json("sure! {\"a\":1}").is_err());
    }
}
