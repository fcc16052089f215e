//! The built-in actions of the catalog (`wf_core::catalog`): `http.request`, `record.*`,
//! `event.emit`, `message.send`.
//!
//! Params arrive rendered (templates already evaluated), so they are validated against the
//! catalog schema here, at run time: workflow validation skips values that are templates.

// `StepError` (a port type, with `details: Option<Value>`) is over clippy's 128-byte limit for
// error variants; every function here returns it because the port traits do. Boxing belongs in
// wf-core (reported), not in local wrappers.
#![allow(clippy::result_large_err)]

mod http;
pub mod outbound;
mod records;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tracing::Instrument;
use wf_core::error::StepError;
use wf_core::ports::{ActionContext, ActionRunner, Clock, EventBus, RecordStore};

pub use outbound::{
    DEFAULT_MAX_REDIRECTS, DEFAULT_MAX_RESPONSE_BYTES, ForbiddenAddress, OutboundPolicy,
    TooManyRedirects, UrlRefused,
};
pub use records::{RECORDS_SOURCE, WORKFLOW_SOURCE, derived_ulid, event_id};

/// The catalog's actions over the ports.
pub struct BuiltinActions {
    client: reqwest::Client,
    records: Arc<dyn RecordStore>,
    events: Arc<dyn EventBus>,
    clock: Arc<dyn Clock>,
    policy: OutboundPolicy,
    /// One per catalog action, each compiled once, when the action first runs (the catalog is
    /// static; a process that never runs an action, such as the webhook, api and trigger
    /// functions, never compiles one).
    validators: HashMap<&'static str, ParamsValidator>,
}

/// The params schema of one catalog action and, once compiled, its validator. A schema that
/// does not compile is a bug in wf-core; it is kept as an error so only that action fails,
/// loudly.
struct ParamsValidator {
    name: &'static str,
    schema: Value,
    compiled: OnceLock<Result<jsonschema::Validator, StepError>>,
}

impl ParamsValidator {
    fn get(&self) -> &Result<jsonschema::Validator, StepError> {
        self.compiled.get_or_init(|| {
            compile_params_schema(&self.schema).map_err(|e| {
                tracing::error!(action = self.name, error = %e, "catalog params schema does not compile");
                StepError::new(
                    "action.schema",
                    format!("the params schema of {} does not compile: {e}", self.name),
                )
            })
        })
    }
}

impl std::fmt::Debug for BuiltinActions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltinActions")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// A catalog params schema compiled as draft 7 (the rule and why: [`catalog::params_validator`]).
fn compile_params_schema(
    schema: &Value,
) -> Result<jsonschema::Validator, jsonschema::ValidationError<'static>> {
    wf_core::catalog::params_validator(schema).map_err(|e| *e)
}

impl BuiltinActions {
    /// `client` must come from [`OutboundPolicy::client_builder`] of the same `policy`: the
    /// policy on resolved addresses and redirects lives in the client (its DNS resolver and
    /// redirect policy). IP-literal URLs are checked here whatever the client.
    pub fn new(
        client: reqwest::Client, records: Arc<dyn RecordStore>, events: Arc<dyn EventBus>,
        clock: Arc<dyn Clock>, policy: OutboundPolicy,
    ) -> Self {
        let validators = wf_core::catalog::actions()
            .into_iter()
            .map(|spec| {
                let validator = ParamsValidator {
                    name: spec.name,
                    schema: spec.params_schema,
                    compiled: OnceLock::new(),
                };
                (spec.name, validator)
            })
            .collect();
        Self {
            client,
            records,
            events,
            clock,
            policy,
            validators,
        }
    }

    /// Builds the policy's client and the runner: what callers want unless they share a client.
    pub fn with_policy(
        records: Arc<dyn RecordStore>, events: Arc<dyn EventBus>, clock: Arc<dyn Clock>,
        policy: OutboundPolicy,
    ) -> Result<Self, reqwest::Error> {
        let client = policy.build_client()?;
        Ok(Self::new(client, records, events, clock, policy))
    }

    pub fn policy(&self) -> &OutboundPolicy {
        &self.policy
    }

    /// Checks `params` against the catalog schema of `action` and deserializes them.
    fn params<T: DeserializeOwned>(&self, action: &str, params: Value) -> Result<T, StepError> {
        let validator = match self.validators.get(action).map(ParamsValidator::get) {
            Some(Ok(v)) => v,
            Some(Err(e)) => return Err(e.clone()),
            None => return Err(unknown(action)),
        };
        let problems: Vec<(String, String)> = validator
            .iter_errors(&params)
            .map(|e| (e.instance_path.to_string(), e.to_string()))
            .collect();
        if !problems.is_empty() {
            return Err(params_error(action, problems));
        }
        // The schema passed, so this only fails if a struct disagrees with the catalog.
        serde_json::from_value(params)
            .map_err(|e| params_error(action, vec![(String::new(), e.to_string())]))
    }

    fn http(&self) -> http::Transport<'_> {
        http::Transport {
            client: &self.client,
            policy: &self.policy,
        }
    }

    fn records(&self) -> records::Records<'_> {
        records::Records {
            store: self.records.as_ref(),
            bus: self.events.as_ref(),
            clock: self.clock.as_ref(),
        }
    }
}

#[async_trait]
impl ActionRunner for BuiltinActions {
    async fn run(
        &self, action: &str, params: Value, ctx: &ActionContext,
    ) -> Result<Value, StepError> {
        let span = tracing::debug_span!("action", action, path = %ctx.path, attempt = ctx.attempt);
        let result = self.dispatch(action, params, ctx).instrument(span).await;
        if let Err(e) = &result {
            tracing::debug!(action, path = %ctx.path, code = %e.code, retryable = e.retryable, "action failed");
        }
        result
    }
}

impl BuiltinActions {
    async fn dispatch(
        &self, action: &str, params: Value, ctx: &ActionContext,
    ) -> Result<Value, StepError> {
        match action {
            "http.request" => http::request(self.http(), self.params(action, params)?, ctx).await,
            "message.send" => {
                http::send_message(self.http(), self.params(action, params)?, ctx).await
            }
            "record.create" => {
                self.records()
                    .create(self.params(action, params)?, ctx)
                    .await
            }
            "record.get" => self.records().get(self.params(action, params)?).await,
            "record.update" => {
                self.records()
                    .update(self.params(action, params)?, ctx)
                    .await
            }
            "record.delete" => {
                self.records()
                    .delete(self.params(action, params)?, ctx)
                    .await
            }
            "record.query" => self.records().query(self.params(action, params)?).await,
            "event.emit" => self.records().emit(self.params(action, params)?, ctx).await,
            _ => Err(unknown(action)),
        }
    }
}

fn unknown(action: &str) -> StepError {
    let known: Vec<&str> = wf_core::catalog::actions().iter().map(|a| a.name).collect();
    StepError::new(
        "action.unknown",
        format!("unknown action {action:?} (known: {})", known.join(", ")),
    )
    .with_details(json!({ "action": action, "known": known }))
}

/// Non-retryable `action.params` listing every problem with its JSON pointer.
pub(crate) fn params_error(action: &str, problems: Vec<(String, String)>) -> StepError {
    let summary = problems
        .iter()
        .map(|(pointer, message)| format!("{}: {message}", display_pointer(pointer)))
        .collect::<Vec<_>>()
        .join("; ");
    let errors: Vec<Value> = problems
        .iter()
        .map(|(pointer, message)| json!({ "pointer": pointer, "message": message }))
        .collect();
    StepError::new(
        "action.params",
        format!("invalid params for {action}: {summary}"),
    )
    .with_details(json!({ "action": action, "errors": errors }))
}

/// The root pointer is the empty string, which reads as nothing in a message.
fn display_pointer(pointer: &str) -> &str {
    if pointer.is_empty() {
        "(params)"
    } else {
        pointer
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use async_trait::async_trait;
    use wf_core::error::{StoreError, StoreResult};
    use wf_core::ports::{PlatformEvent, RecordCreate, SystemClock};

    use super::*;

    /// Answers nothing useful: the catalog test only checks dispatch.
    struct NullStore;

    #[async_trait]
    impl RecordStore for NullStore {
        async fn create(&self, _: &str, _: &str, _: &Value, _: &str) -> StoreResult<RecordCreate> {
            Err(StoreError::Unavailable("null store".into()))
        }
        async fn get(&self, _: &str, _: &str) -> StoreResult<Option<Value>> {
            Err(StoreError::Unavailable("null store".into()))
        }
        async fn update(&self, _: &str, _: &str, _: &Value) -> StoreResult<Value> {
            Err(StoreError::Unavailable("null store".into()))
        }
        async fn delete(&self, _: &str, _: &str) -> StoreResult<bool> {
            Err(StoreError::Unavailable("null store".into()))
        }
        async fn query(
            &self, _: &str, _: Option<&str>, _: usize,
        ) -> StoreResult<Vec<(String, Value)>> {
            Err(StoreError::Unavailable("null store".into()))
        }
    }

    #[async_trait]
    impl EventBus for NullStore {
        async fn publish(&self, _: &[PlatformEvent]) -> StoreResult<()> {
            Err(StoreError::Unavailable("null bus".into()))
        }
    }

    fn runner() -> BuiltinActions {
        let null = Arc::new(NullStore);
        BuiltinActions::with_policy(
            null.clone(),
            null,
            Arc::new(SystemClock),
            OutboundPolicy::aws(),
        )
        .expect("client builds")
    }

    fn ctx() -> ActionContext {
        ActionContext {
            execution_id: "01JD0000000000000000000000".into(),
            path: "step".into(),
            attempt: 1,
            idempotency_key: "01JD0000000000000000000000/step".into(),
            timeout: Duration::from_millis(200),
            event_chain: Vec::new(),
            event_limits: Default::default(),
        }
    }

    #[tokio::test]
    async fn every_catalog_action_has_an_implementation() {
        let runner = runner();
        for spec in wf_core::catalog::actions() {
            assert!(
                matches!(
                    runner.validators.get(spec.name).map(ParamsValidator::get),
                    Some(Ok(_))
                ),
                "{}: params schema compiles",
                spec.name
            );
            // Params of the right shape for nobody: whatever the action answers (a params
            // error, a store error, a refused address) it must not be `action.unknown`.
            let answer = runner.run(spec.name, json!({}), &ctx()).await;
            if let Err(e) = answer {
                assert_ne!(e.code, "action.unknown", "{} is not implemented", spec.name);
            }
        }
        let unknown = runner.run("nope.nothing", json!({}), &ctx()).await;
        let err = unknown.expect_err("unknown action fails");
        assert_eq!(err.code, "action.unknown");
        assert!(!err.retryable);
    }

    #[tokio::test]
    async fn params_errors_list_every_violation_with_pointers() {
        let runner = runner();
        let err = runner
            .run(
                "http.request",
                json!({ "method": "FETCH", "headers": { "x": 1 }, "timeoutMs": 0, "extra": true }),
                &ctx(),
            )
            .await
            .expect_err("invalid params");
        assert_eq!(err.code, "action.params");
        assert!(!err.retryable);
        let details = err.details.expect("details");
        let pointers: Vec<&str> = details["errors"]
            .as_array()
            .expect("errors array")
            .iter()
            .filter_map(|e| e["pointer"].as_str())
            .collect();
        for expected in ["/method", "/headers/x", "/timeoutMs", ""] {
            assert!(pointers.contains(&expected), "{expected:?} in {pointers:?}");
        }
        assert!(err.message.contains("/method"), "{}", err.message);
    }

    /// Draft 7 (what the catalog compiles as) answers like 2020-12 (what a schema without
    /// `$schema` means) for every catalog schema: same verdicts, pointers and messages.
    #[test]
    fn draft_7_answers_like_2020_12_for_the_catalog() {
        let samples = [
            json!({}),
            json!(null),
            json!([]),
            json!({ "url": "", "method": "FETCH", "headers": { "x": 1 }, "timeoutMs": 0,
                    "expectStatus": [99, "x"], "json": {}, "body": 1, "extra": true }),
            json!({ "url": "https://example.com", "query": { "a": [1] } }),
            json!({ "collection": "_engine", "id": "", "data": [] }),
            json!({ "collection": "orders", "id": "A-1", "data": { "x": 1 } }),
            json!({ "collection": "x".repeat(80), "limit": 0, "after": 3 }),
            json!({ "type": "", "detail": 1, "text": 2, "blocks": {} }),
            json!({ "channel": "#a", "text": "hi", "blocks": [] }),
        ];
        for spec in wf_core::catalog::actions() {
            let draft7 = compile_params_schema(&spec.params_schema).expect("draft 7 compiles");
            let latest = jsonschema::validator_for(&spec.params_schema).expect("2020-12 compiles");
            for sample in &samples {
                let answer = |v: &jsonschema::Validator| {
                    v.iter_errors(sample)
                        .map(|e| (e.instance_path.to_string(), e.to_string()))
                        .collect::<Vec<_>>()
                };
                assert_eq!(
                    answer(&draft7),
                    answer(&latest),
                    "{} on {sample}",
                    spec.name
                );
            }
        }
    }

    #[tokio::test]
    async fn json_and_body_together_are_refused() {
        let err = runner()
            .run(
                "http.request",
                json!({ "url": "https://example.com", "json": {}, "body": "x" }),
                &ctx(),
            )
            .await
            .expect_err("both bodies");
        assert_eq!(err.code, "action.params");
    }
}
