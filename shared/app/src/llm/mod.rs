//! LLM providers of the `llm` step.
//!
//! [`OpenAiCompatible`] speaks the chat-completions API, which OpenAI, llama.cpp's server
//! (llama-cpp-python) and most gateways share. The configured base URL is trusted operator
//! configuration (it may well be a model on loopback), so the outbound address policy of
//! `http.request` does not apply to it.

// `StepError` (a port type, with `details: Option<Value>`) is over clippy's 128-byte limit for
// error variants; every function here returns it because the port traits do. Boxing belongs in
// wf-core (reported), not in local wrappers.
#![allow(clippy::result_large_err)]

use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde_json::{Map, Value, json};
use wf_core::error::StepError;
use wf_core::json_depth::{MAX_JSON_DEPTH, check_depth};
use wf_core::ports::{LlmProvider, LlmRequest, LlmResponse};

use crate::actions::outbound::{self, BodyError, TransportCodes, read_body_limited};

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// Environment variable of the base URL (`https://api.openai.com/v1` when unset).
pub const ENV_BASE_URL: &str = "WF_LLM_BASE_URL";
/// Environment variable of the API key (optional: local servers need none).
pub const ENV_API_KEY: &str = "WF_LLM_API_KEY";

/// Completions are small; anything bigger is a misbehaving server, not an answer.
const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;
/// How much of a provider's error text goes into step errors.
const ERROR_TEXT_CHARS: usize = 1024;
/// The codes of the provider's transport failures (a failed redirect counts as transient).
const TRANSPORT_CODES: TransportCodes = TransportCodes {
    connect: "llm.connect",
    invalid: "llm.request",
    redirect: None,
    other: "llm.transport",
};

/// Where the provider is and how to authenticate.
#[derive(Clone, PartialEq, Eq)]
pub struct LlmConfig {
    /// Up to and including the API version, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer <key>` when set.
    pub api_key: Option<String>,
    /// How a step's `jsonSchema` is sent (providers accept different forms).
    pub schema_form: SchemaForm,
}

/// The `response_format` form of JSON mode with a schema, per provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaForm {
    /// OpenAI: `{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`.
    OpenAi,
    /// llama.cpp's server (OpenAI's form is a 500 there): `{"type": "json_object", "schema"}`.
    JsonObject,
}

/// `WF_LLM_SCHEMA_FORM`: `openai` or `json_object`; unset = `openai` for api.openai.com and
/// `json_object` for any other endpoint (llama.cpp, local servers).
pub const ENV_SCHEMA_FORM: &str = "WF_LLM_SCHEMA_FORM";

impl SchemaForm {
    fn for_endpoint(base_url: &str) -> Self {
        if base_url.contains("api.openai.com") {
            SchemaForm::OpenAi
        } else {
            SchemaForm::JsonObject
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "openai" | "json_schema" => Some(SchemaForm::OpenAi),
            "json_object" | "llama.cpp" => Some(SchemaForm::JsonObject),
            _ => None,
        }
    }
}

impl std::fmt::Debug for LlmConfig {
    /// Never prints the key (configs end up in logs).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self::new(DEFAULT_BASE_URL, None)
    }
}

impl LlmConfig {
    /// A config whose schema form follows the endpoint ([`SchemaForm`]).
    pub fn new(base_url: impl Into<String>, api_key: Option<String>) -> Self {
        let base_url = base_url.into();
        Self {
            schema_form: SchemaForm::for_endpoint(&base_url),
            base_url,
            api_key,
        }
    }

    /// The same config sending schemas in `form`.
    pub fn with_schema_form(mut self, form: SchemaForm) -> Self {
        self.schema_form = form;
        self
    }

    /// `WF_LLM_BASE_URL` (default `https://api.openai.com/v1`) and `WF_LLM_API_KEY`; empty
    /// values count as unset.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// `from_env` over any lookup (tests avoid mutating the process environment).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let non_empty = |name: &str| setting(&lookup, name);
        let config = Self::new(
            non_empty(ENV_BASE_URL).unwrap_or_else(|| DEFAULT_BASE_URL.to_owned()),
            non_empty(ENV_API_KEY),
        );
        match non_empty(ENV_SCHEMA_FORM).and_then(|f| SchemaForm::parse(&f)) {
            Some(form) => config.with_schema_form(form),
            None => config,
        }
    }

    fn completions_url(&self) -> String {
        format!("{}/chat/completions", self.base_url.trim_end_matches('/'))
    }
}

/// Setting `name` read through `lookup` (the environment, or a test's map): trimmed, and unset
/// when empty. The LLM and AI settings all read this way.
pub(crate) fn setting(lookup: impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// An OpenAI-compatible chat-completions provider.
#[derive(Debug, Clone)]
pub struct OpenAiCompatible {
    config: LlmConfig,
    client: reqwest::Client,
}

impl OpenAiCompatible {
    /// With its own rustls client.
    pub fn new(config: LlmConfig) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder().use_rustls_tls().build()?;
        Ok(Self::with_client(config, client))
    }

    /// With a shared client (connection pool).
    pub fn with_client(config: LlmConfig, client: reqwest::Client) -> Self {
        Self { config, client }
    }

    /// `LlmConfig::from_env()` + `new`.
    pub fn from_env() -> Result<Self, reqwest::Error> {
        Self::new(LlmConfig::from_env())
    }

    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    async fn call(&self, body: &Value) -> Result<LlmResponse, StepError> {
        let mut request = self.client.post(self.config.completions_url()).json(body);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key);
        }
        let mut response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let bytes = read_body_limited(&mut response, MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge { limit } => StepError::retryable(
                    "llm.bad_response",
                    format!("the response exceeds {limit} bytes"),
                ),
                BodyError::Read(e) => transport_error(e),
            })?;
        if !status.is_success() {
            return Err(status_error(status, response.headers(), &bytes));
        }
        parse_completion(&bytes, body)
    }
}

#[async_trait]
impl LlmProvider for OpenAiCompatible {
    async fn complete(
        &self, request: &LlmRequest, timeout: Duration,
    ) -> Result<LlmResponse, StepError> {
        let body = request_body(request, self.config.schema_form);
        tracing::debug!(model = %body["model"], json = request.json, "llm request");
        match tokio::time::timeout(timeout, self.call(&body)).await {
            Ok(result) => result,
            Err(_) => Err(StepError::timeout(format!(
                "the LLM did not answer within {} ms",
                timeout.as_millis()
            ))),
        }
    }
}

/// The chat-completions body of a request.
pub fn request_body(request: &LlmRequest, schema_form: SchemaForm) -> Value {
    // Workflows name models `openai/gpt-4o-mini` (provider/model); the API wants the model.
    let model = request
        .model
        .strip_prefix("openai/")
        .unwrap_or(&request.model);
    let mut messages = Vec::new();
    if let Some(system) = &request.system {
        messages.push(json!({ "role": "system", "content": system }));
    }
    messages.push(json!({ "role": "user", "content": request.prompt }));
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("messages".into(), Value::Array(messages));
    if let Some(t) = request.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(n) = request.max_tokens {
        body.insert("max_tokens".into(), json!(n));
    }
    if request.json || request.json_schema.is_some() {
        let format = match (&request.json_schema, schema_form) {
            (Some(schema), SchemaForm::OpenAi) => json!({
                "type": "json_schema",
                "json_schema": { "name": "output", "schema": schema, "strict": false },
            }),
            (Some(schema), SchemaForm::JsonObject) => {
                json!({ "type": "json_object", "schema": schema })
            }
            (None, _) => json!({ "type": "json_object" }),
        };
        body.insert("response_format".into(), format);
    }
    Value::Object(body)
}

fn parse_completion(bytes: &[u8], sent: &Value) -> Result<LlmResponse, StepError> {
    let bad = |why: &str| {
        let text = String::from_utf8_lossy(bytes);
        StepError::retryable(
            "llm.bad_response",
            format!("malformed chat completion: {why}"),
        )
        .with_details(json!({ "body": truncate_chars(&text, ERROR_TEXT_CHARS) }))
    };
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| bad(&format!("not JSON ({e})")))?;
    let text = value
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no choices[0].message.content string"))?;
    // A JSON answer becomes the step's output: one nested past the bound could be stored but
    // never read back, so it is refused here (another answer may do: retryable).
    if sent.get("response_format").is_some()
        && let Err(e) = check_depth(text.as_bytes(), MAX_JSON_DEPTH)
    {
        return Err(StepError::retryable(
            "llm.answer_too_deep",
            format!(
                "the model's JSON answer is nested deeper than the limit of {} levels of \
                 arrays and objects (level {} starts at line {}, column {})",
                e.limit,
                e.limit + 1,
                e.line,
                e.column
            ),
        )
        .with_details(json!({ "limit": e.limit, "line": e.line, "column": e.column })));
    }
    let model = value
        .get("model")
        .and_then(Value::as_str)
        .or_else(|| sent["model"].as_str())
        .unwrap_or_default();
    // Usage is optional in some servers' streaming-less answers: count it as 0 then.
    let tokens = |name: &str| {
        value
            .pointer(&format!("/usage/{name}"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    Ok(LlmResponse {
        text: text.to_owned(),
        model: model.to_owned(),
        input_tokens: tokens("prompt_tokens"),
        output_tokens: tokens("completion_tokens"),
    })
}

fn status_error(
    status: StatusCode, headers: &reqwest::header::HeaderMap, body: &[u8],
) -> StepError {
    let message = provider_message(body);
    let mut details = json!({ "status": status.as_u16(), "message": message });
    let code = status.as_u16();
    if code == 429 {
        if let Some(retry_after) = headers.get("retry-after").and_then(|v| v.to_str().ok()) {
            details["retryAfter"] = json!(retry_after);
        }
        StepError::retryable(
            "llm.rate_limited",
            format!("the LLM provider is rate limiting: {message}"),
        )
        .with_details(details)
    } else if status.is_server_error() {
        StepError::retryable(
            "llm.server_error",
            format!("the LLM provider failed (HTTP {code}): {message}"),
        )
        .with_details(details)
    } else if code == 408 {
        // Request Timeout is the server's way to say "try again".
        StepError::timeout(format!("the LLM provider timed out (HTTP 408): {message}"))
            .with_details(details)
    } else {
        // Bad model name, bad key, context too long: retrying sends the same request.
        StepError::new(
            "llm.request",
            format!("the LLM provider refused the request (HTTP {code}): {message}"),
        )
        .with_details(details)
    }
}

/// The provider's own words: `{"error": {"message"}}` (OpenAI), `{"error": "..."}`,
/// `{"detail": ...}` (FastAPI-based servers), or the raw text.
fn provider_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        let found = value
            .pointer("/error/message")
            .or_else(|| value.get("error"))
            .or_else(|| value.get("detail"))
            .or_else(|| value.get("message"));
        match found {
            Some(Value::String(s)) => return truncate_chars(s, ERROR_TEXT_CHARS).to_owned(),
            Some(other) => return truncate_chars(&other.to_string(), ERROR_TEXT_CHARS).to_owned(),
            None => {}
        }
    }
    truncate_chars(text.trim(), ERROR_TEXT_CHARS).to_owned()
}

fn transport_error(e: reqwest::Error) -> StepError {
    outbound::transport_error(e, &TRANSPORT_CODES)
}

fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((idx, _)) => &s[..idx],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_lookup() {
        let cfg = LlmConfig::from_lookup(|_| None);
        assert_eq!(cfg, LlmConfig::default());
        let cfg = LlmConfig::from_lookup(|name| match name {
            ENV_BASE_URL => Some("http://127.0.0.1:8080/v1/".into()),
            ENV_API_KEY => Some(" sk-test ".into()),
            _ => None,
        });
        assert_eq!(cfg.base_url, "http://127.0.0.1:8080/v1/");
        assert_eq!(cfg.api_key.as_deref(), Some("sk-test"));
        assert_eq!(
            cfg.completions_url(),
            "http://127.0.0.1:8080/v1/chat/completions"
        );
        assert!(
            !format!("{cfg:?}").contains("sk-test"),
            "Debug hides the key"
        );
        let empty = LlmConfig::from_lookup(|_| Some(String::new()));
        assert_eq!(empty, LlmConfig::default());
    }

    #[test]
    fn a_json_answer_nested_past_the_bound_is_refused() {
        let completion = |content: &str| {
            serde_json::to_vec(&json!({ "choices": [{ "message": { "content": content } }] }))
                .unwrap()
        };
        let nested = |d: usize| format!("{}{}", "[".repeat(d), "]".repeat(d));
        let json_mode = json!({ "model": "m", "response_format": { "type": "json_object" } });
        let at = parse_completion(&completion(&nested(MAX_JSON_DEPTH)), &json_mode).unwrap();
        assert_eq!(at.text, nested(MAX_JSON_DEPTH));
        for depth in [MAX_JSON_DEPTH + 1, 100_000] {
            let err = parse_completion(&completion(&nested(depth)), &json_mode).unwrap_err();
            assert_eq!(err.code, "llm.answer_too_deep");
            assert!(err.message.contains("limit of 64"), "{}", err.message);
        }
        // Plain text answers are text: not parsed, not bounded.
        let text_mode = json!({ "model": "m" });
        assert!(parse_completion(&completion(&nested(100)), &text_mode).is_ok());
    }
}
