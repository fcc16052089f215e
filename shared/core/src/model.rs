//! The workflow file format (`workflows/<id>.json`), as serde types.
//!
//! Every struct denies unknown fields. Shared step fields are repeated per variant on purpose:
//! `#[serde(flatten)]` would silently disable `deny_unknown_fields` (ARCHITECTURE.md, wf-core).
//! `workflows/schema.json` is generated from these types (`wf schema`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{InvalidText, TextRule};

/// Workflow ids: URL-safe (they appear in webhook URLs).
pub const WORKFLOW_ID_PATTERN: &str = "^[a-z0-9][a-z0-9-]*$";
/// Longest workflow id (ids are DynamoDB keys and URL path segments).
pub const WORKFLOW_ID_MAX_LEN: usize = 64;
/// Step ids: usable as `steps.<id>` in templates.
pub const STEP_ID_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]*$";
/// Environment variable names (webhook `secretEnv`).
pub const ENV_NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]*$";

/// Default workflow deadline: 5 minutes.
pub const DEFAULT_TIMEOUT_MS: u64 = 300_000;
/// Default retries after the first attempt (3 = up to 4 attempts).
pub const DEFAULT_MAX_RETRIES: u32 = 3;
/// Default delay before a retry.
pub const DEFAULT_BACKOFF_MS: u64 = 1_000;

/// The workflow-id rule, the one place it is decided (validation, the API, the CLI): matches
/// [`WORKFLOW_ID_PATTERN`] (`^[a-z0-9][a-z0-9-]*$`) and has at most [`WORKFLOW_ID_MAX_LEN`]
/// characters. The error is the message to show.
pub fn check_workflow_id(id: &str) -> Result<(), InvalidText> {
    if matches_workflow_id_pattern(id) && id.len() <= WORKFLOW_ID_MAX_LEN {
        Ok(())
    } else {
        Err(InvalidText::new(
            TextRule::WorkflowId,
            format!(
                "workflow id {id:?} must match {WORKFLOW_ID_PATTERN} (at most {WORKFLOW_ID_MAX_LEN} characters)"
            ),
        ))
    }
}

/// The pattern half of [`check_workflow_id`]: `^[a-z0-9][a-z0-9-]*$`.
pub(crate) fn matches_workflow_id_pattern(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some('a'..='z' | '0'..='9'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
}

/// A workflow definition: a graph of steps started by the triggers on its start step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "Workflow")]
pub struct Workflow {
    /// Path of the JSON Schema for editors (usually `./schema.json`). Ignored by the engine.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// URL-safe id, at most 64 characters: lowercase letters, digits and `-` (`^[a-z0-9][a-z0-9-]*$`).
    #[schemars(regex(pattern = WORKFLOW_ID_PATTERN), length(max = WORKFLOW_ID_MAX_LEN))]
    pub id: String,
    /// Human-readable name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// What the workflow is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Deadline, retries, variables and whether triggers are active.
    #[serde(default)]
    pub config: WorkflowConfig,
    /// The steps. Exactly one has `"type": "start"`.
    pub steps: Vec<Step>,
}

/// Workflow-wide settings. Everything except `active` is versioned with the definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkflowConfig {
    /// Whether triggers start this workflow (only a published workflow can be active).
    #[serde(default)]
    pub active: bool,
    /// Deadline of a whole execution, from its start, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    #[schemars(range(min = 1))]
    pub timeout_ms: u64,
    /// Retries after the first attempt for action and llm steps (per-step `retry` overrides).
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Delay before the first retry, in milliseconds.
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
    /// Multiply the delay by this factor after each retry (exponential backoff). Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_multiplier: Option<f64>,
    /// Upper bound of the delay between retries, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backoff_ms: Option<u64>,
    /// Values visible to every step as `vars`.
    #[serde(default)]
    pub variables: Map<String, Value>,
}

fn default_timeout_ms() -> u64 {
    DEFAULT_TIMEOUT_MS
}
fn default_max_retries() -> u32 {
    DEFAULT_MAX_RETRIES
}
fn default_backoff_ms() -> u64 {
    DEFAULT_BACKOFF_MS
}

impl Default for WorkflowConfig {
    fn default() -> Self {
        Self {
            active: false,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            max_retries: DEFAULT_MAX_RETRIES,
            backoff_ms: DEFAULT_BACKOFF_MS,
            backoff_multiplier: None,
            max_backoff_ms: None,
            variables: Map::new(),
        }
    }
}

/// Per-step retry policy; unset fields fall back to the workflow config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RetryPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_multiplier: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backoff_ms: Option<u64>,
}

/// Where a step is drawn on a canvas. Ignored by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Position {
    pub x: f64,
    pub y: f64,
}

/// Defines a step type: the fields every step has (`id`, `name`, `description`, then
/// `position` last), the type's own fields, and the flow fields it takes, named after the
/// struct in this order: `next`, `on_error`, `attempts` (`retry` and `timeout_ms`). One
/// definition of the shared fields, while each step struct still denies unknown fields (which
/// `#[serde(flatten)]` of a shared struct would disable).
macro_rules! step_struct {
    ($(#[$meta:meta])* pub struct $name:ident { $($fields:tt)* } $($flow:ident)*) => {
        step_struct!(@flow [$(#[$meta])*] $name [$($fields)*] $($flow)*);
    };
    (@flow $meta:tt $name:ident [$($f:tt)*] next $($rest:ident)*) => {
        step_struct!(@flow $meta $name [$($f)*
            /// The id of the step that runs after this one (same scope); without it the path ends.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[schemars(regex(pattern = STEP_ID_PATTERN))]
            pub next: Option<String>,
        ] $($rest)*);
    };
    (@flow $meta:tt $name:ident [$($f:tt)*] on_error $($rest:ident)*) => {
        step_struct!(@flow $meta $name [$($f)*
            /// Where to go when the step fails after its retries (else the execution fails).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[schemars(regex(pattern = STEP_ID_PATTERN))]
            pub on_error: Option<String>,
        ] $($rest)*);
    };
    (@flow $meta:tt $name:ident [$($f:tt)*] attempts) => {
        step_struct!(@flow $meta $name [$($f)*
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub retry: Option<RetryPolicy>,
            /// Bound of one attempt, in milliseconds (always also bounded by the workflow deadline).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[schemars(range(min = 1))]
            pub timeout_ms: Option<u64>,
        ]);
    };
    (@flow [$(#[$meta:meta])*] $name:ident [$($f:tt)*]) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub struct $name {
            /// Step id: `^[A-Za-z_][A-Za-z0-9_]*$`, unique in the workflow.
            #[schemars(regex(pattern = STEP_ID_PATTERN))]
            pub id: String,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub name: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub description: Option<String>,
            $($f)*
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub position: Option<Position>,
        }
    };
}

/// One node of the graph. The `type` field selects the variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Step {
    Start(StartStep),
    Action(ActionStep),
    Llm(LlmStep),
    Condition(ConditionStep),
    Loop(LoopStep),
    Output(OutputStep),
}

/// The step types, in the order the docs list them.
pub const STEP_TYPES: [&str; 6] = ["start", "action", "llm", "condition", "loop", "output"];

step_struct! {
    /// The entry point: declares triggers and the input schema. Its output is the validated input.
    pub struct StartStep {
        /// What starts the workflow.
        #[serde(default)]
        pub triggers: Vec<Trigger>,
        /// JSON Schema every input must match, whatever the trigger.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub input_schema: Option<Value>,
    } next
}

step_struct! {
    /// Runs a named action (`http.request`, `record.create`, ...) with templated params.
    pub struct ActionStep {
        /// The action to run, e.g. `http.request`.
        pub action: String,
        /// The action's parameters; strings may contain templates.
        #[serde(default = "empty_object")]
        pub params: Value,
    } next on_error attempts
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// How the llm step's answer is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResponseFormat {
    #[default]
    Text,
    Json,
}

step_struct! {
    /// Asks a chat-completions model. Output: `{ text, json?, model, usage }`.
    pub struct LlmStep {
        /// Model name, e.g. `openai/gpt-4o-mini` or `gpt-4o-mini`: an `openai/` prefix is dropped
        /// before sending (the endpoint is OpenAI-compatible); any other prefix is sent as is,
        /// since many model names contain a slash (`meta-llama/Llama-3.1-8B-Instruct`).
        pub model: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub system: Option<String>,
        pub prompt: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub temperature: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub max_tokens: Option<u32>,
        #[serde(default)]
        pub response_format: ResponseFormat,
        /// With `responseFormat: "json"`: the JSON Schema the answer must match.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub json_schema: Option<Value>,
    } next on_error attempts
}

/// One branch of a condition: the first whose `if` is true wins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Branch {
    /// Exactly one `{{ expr }}` that yields a boolean.
    #[serde(rename = "if")]
    pub condition: String,
    /// The step to go to when `if` is true.
    #[schemars(regex(pattern = STEP_ID_PATTERN))]
    pub next: String,
}

step_struct! {
    /// Routes to the first branch whose `if` is true, else to `else`. Output: `{ "branch": i | "else" }`.
    pub struct ConditionStep {
        pub branches: Vec<Branch>,
        /// Where to go when no branch matches; without it that path ends.
        #[serde(rename = "else", default, skip_serializing_if = "Option::is_none")]
        #[schemars(regex(pattern = STEP_ID_PATTERN))]
        pub otherwise: Option<String>,
    }
}

step_struct! {
    /// Runs its nested `steps` once per item. Output: the iterations' results in item order.
    pub struct LoopStep {
        /// Exactly one `{{ expr }}` that yields an array.
        pub items: String,
        /// How many iterations run at once (1..=100).
        #[serde(default = "default_concurrency")]
        #[schemars(range(min = 1, max = 100))]
        pub concurrency: u32,
        /// The loop body; its first step is the entry. `item` and `index` are visible inside.
        pub steps: Vec<Step>,
    } next on_error
}

fn default_concurrency() -> u32 {
    1
}

step_struct! {
    /// Maps values into the execution's output (or, inside a loop body, the iteration's result).
    pub struct OutputStep {
        /// The value to produce; strings may contain templates.
        #[serde(default)]
        pub output: Value,
    }
}

/// What starts a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Trigger {
    Webhook(WebhookTrigger),
    Schedule(ScheduleTrigger),
    Event(EventTrigger),
    Manual(ManualTrigger),
}

/// The trigger types.
pub const TRIGGER_TYPES: [&str; 4] = ["webhook", "schedule", "event", "manual"];

/// Signature scheme of incoming webhooks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookScheme {
    /// Standard Webhooks (webhook-id / webhook-timestamp / webhook-signature).
    #[default]
    Standard,
    /// GitHub `X-Hub-Signature-256`.
    Github,
    /// Stripe `Stripe-Signature`.
    Stripe,
    /// Slack `X-Slack-Signature` (v0).
    Slack,
    /// No signature: only the unguessable URL protects the hook.
    None,
}

/// `POST /hooks/{workflowId}/{token}` with a JSON body; the body is the input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WebhookTrigger {
    #[serde(default)]
    pub scheme: WebhookScheme,
    /// Environment variable holding the signing secret (required unless `scheme` is `none`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ENV_NAME_PATTERN))]
    pub secret_env: Option<String>,
}

/// A cron schedule in UTC (5 fields, or `@every5m`, `@hourly`, `@daily`, `@weekly`, `@monthly`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScheduleTrigger {
    /// 5-field cron in UTC (`0 9 * * 1-5`) or a preset (`@every5m`, `@every2h`, `@hourly`,
    /// `@daily`, `@weekly`, `@monthly`). It must be expressible as an EventBridge schedule:
    /// day-of-month and day-of-week cannot both be restricted.
    pub cron: String,
}

/// A platform event of a type; the input is the event's `detail`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EventTrigger {
    /// The event type, e.g. `order.created`.
    pub event: String,
    /// Exactly one `{{ expr }}` over `event` that yields a boolean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// Started by hand (CLI, API, test panel) with a given input.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManualTrigger {}

impl Step {
    pub fn id(&self) -> &str {
        match self {
            Step::Start(s) => &s.id,
            Step::Action(s) => &s.id,
            Step::Llm(s) => &s.id,
            Step::Condition(s) => &s.id,
            Step::Loop(s) => &s.id,
            Step::Output(s) => &s.id,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Step::Start(_) => "start",
            Step::Action(_) => "action",
            Step::Llm(_) => "llm",
            Step::Condition(_) => "condition",
            Step::Loop(_) => "loop",
            Step::Output(_) => "output",
        }
    }

    /// Pure steps compute from the context alone: they fail deterministically (no retries)
    /// and may run inline in the invocation that finished their predecessor.
    pub fn is_pure(&self) -> bool {
        matches!(self, Step::Start(_) | Step::Condition(_) | Step::Output(_))
    }

    pub fn next(&self) -> Option<&str> {
        match self {
            Step::Start(s) => s.next.as_deref(),
            Step::Action(s) => s.next.as_deref(),
            Step::Llm(s) => s.next.as_deref(),
            Step::Loop(s) => s.next.as_deref(),
            Step::Condition(_) | Step::Output(_) => None,
        }
    }

    pub fn on_error(&self) -> Option<&str> {
        match self {
            Step::Action(s) => s.on_error.as_deref(),
            Step::Llm(s) => s.on_error.as_deref(),
            Step::Loop(s) => s.on_error.as_deref(),
            _ => None,
        }
    }

    /// Every outgoing edge with the JSON pointer suffix (relative to the step) that names it.
    pub fn edges(&self) -> Vec<(String, &str)> {
        let mut edges = Vec::new();
        if let Some(n) = self.next() {
            edges.push(("/next".to_string(), n));
        }
        if let Step::Condition(c) = self {
            for (i, b) in c.branches.iter().enumerate() {
                edges.push((format!("/branches/{i}/next"), b.next.as_str()));
            }
            if let Some(e) = &c.otherwise {
                edges.push(("/else".to_string(), e.as_str()));
            }
        }
        if let Some(e) = self.on_error() {
            edges.push(("/onError".to_string(), e));
        }
        edges
    }

    pub fn retry(&self) -> Option<&RetryPolicy> {
        match self {
            Step::Action(s) => s.retry.as_ref(),
            Step::Llm(s) => s.retry.as_ref(),
            _ => None,
        }
    }

    pub fn timeout_ms(&self) -> Option<u64> {
        match self {
            Step::Action(s) => s.timeout_ms,
            Step::Llm(s) => s.timeout_ms,
            _ => None,
        }
    }
}

impl Workflow {
    pub fn start_step(&self) -> Option<&StartStep> {
        self.steps.iter().find_map(|s| match s {
            Step::Start(s) => Some(s),
            _ => None,
        })
    }

    pub fn triggers(&self) -> &[Trigger] {
        self.start_step()
            .map(|s| s.triggers.as_slice())
            .unwrap_or(&[])
    }
}

/// The effective retry policy of a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EffectiveRetry {
    pub max_retries: u32,
    pub backoff_ms: u64,
    pub backoff_multiplier: f64,
    pub max_backoff_ms: Option<u64>,
}

impl EffectiveRetry {
    pub fn of(config: &WorkflowConfig, step: &Step) -> Self {
        let r = step.retry().cloned().unwrap_or_default();
        Self {
            max_retries: r.max_retries.unwrap_or(config.max_retries),
            backoff_ms: r.backoff_ms.unwrap_or(config.backoff_ms),
            backoff_multiplier: r
                .backoff_multiplier
                .or(config.backoff_multiplier)
                .unwrap_or(1.0),
            max_backoff_ms: r.max_backoff_ms.or(config.max_backoff_ms),
        }
    }

    /// Delay before attempt `next_attempt` (2 = first retry).
    pub fn delay_before(&self, next_attempt: u32) -> u64 {
        let retries_done = next_attempt.saturating_sub(2) as i32;
        let raw = self.backoff_ms as f64 * self.backoff_multiplier.max(1.0).powi(retries_done);
        let capped = match self.max_backoff_ms {
            Some(max) => raw.min(max as f64),
            None => raw,
        };
        capped.min(u64::MAX as f64 / 2.0) as u64
    }

    /// The sum of the delays before every retry ([`Self::delay_before`] of attempts
    /// `2..=maxRetries + 1`): the backoff a step that keeps failing waits in all. Saturates at
    /// `u64::MAX`. Exact while the delays grow for at most 100 000 retries (then a lower bound).
    pub fn total_backoff_ms(&self) -> u64 {
        /// Retries summed one by one while the delay still grows.
        const GROWING: u32 = 100_000;
        let last = self.max_retries.saturating_add(1);
        let mut total: u64 = 0;
        let mut attempt = 2u32;
        while attempt <= last {
            let delay = self.delay_before(attempt);
            // From here on every delay is this one (no growth, or the cap is reached), or (past
            // GROWING retries) at least this one.
            let flat = self.backoff_multiplier <= 1.0
                || self.max_backoff_ms.is_some_and(|max| delay >= max)
                || attempt - 2 >= GROWING;
            if flat {
                let left = u64::from(last - attempt + 1);
                return total.saturating_add(delay.saturating_mul(left));
            }
            total = total.saturating_add(delay);
            if total == u64::MAX {
                break;
            }
            attempt += 1;
        }
        total
    }

    /// How long a step that fails every attempt can take: [`Self::total_backoff_ms`] plus, when
    /// the step bounds its attempts (`timeoutMs`), that bound for each of its
    /// `maxRetries + 1` attempts. Saturates at `u64::MAX`.
    pub fn worst_case_ms(&self, attempt_timeout_ms: Option<u64>) -> u64 {
        let attempts = u64::from(self.max_retries) + 1;
        let running = attempt_timeout_ms.map_or(0, |t| t.saturating_mul(attempts));
        self.total_backoff_ms().saturating_add(running)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_ids_follow_one_rule() {
        for ok in [
            "a",
            "0",
            "order-alert",
            "a-",
            &"x".repeat(WORKFLOW_ID_MAX_LEN),
        ] {
            assert_eq!(check_workflow_id(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "Order",
            "a_b",
            "a b",
            "é",
            &"x".repeat(WORKFLOW_ID_MAX_LEN + 1),
        ] {
            assert!(check_workflow_id(bad).is_err(), "{bad}");
        }
        assert_eq!(
            check_workflow_id("A").unwrap_err().message,
            "workflow id \"A\" must match ^[a-z0-9][a-z0-9-]*$ (at most 64 characters)"
        );
    }

    #[test]
    fn worst_case_retry_sums_the_backoffs_and_the_attempts() {
        let r = EffectiveRetry {
            max_retries: 5,
            backoff_ms: 2_000,
            backoff_multiplier: 2.0,
            max_backoff_ms: None,
        };
        // 2 + 4 + 8 + 16 + 32 s: the engine's delays before attempts 2..=6.
        assert_eq!(r.total_backoff_ms(), 62_000);
        assert_eq!(
            r.total_backoff_ms(),
            (2..=6).map(|a| r.delay_before(a)).sum::<u64>()
        );
        assert_eq!(r.worst_case_ms(None), 62_000);
        assert_eq!(r.worst_case_ms(Some(1_000)), 62_000 + 6 * 1_000);
        let capped = EffectiveRetry {
            max_backoff_ms: Some(5_000),
            ..r
        };
        assert_eq!(capped.total_backoff_ms(), 2_000 + 4_000 + 3 * 5_000);
        let none = EffectiveRetry {
            max_retries: 0,
            ..r
        };
        assert_eq!(none.worst_case_ms(Some(7)), 7);
        let huge = EffectiveRetry {
            max_retries: u32::MAX,
            backoff_ms: u64::MAX,
            backoff_multiplier: 10.0,
            max_backoff_ms: None,
        };
        assert_eq!(huge.worst_case_ms(Some(u64::MAX)), u64::MAX);
    }
}
