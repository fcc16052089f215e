//! The Lambda functions' handlers, as plain async functions over the same use cases as `wf dev`
//! (functions/* only wire them to the runtime):
//!
//! * [`handle_sqs_batch`]: the worker function (SQS batches, `ReportBatchItemFailures`).
//! * [`handle_trigger`]: the trigger function (schedules, platform events, the sweep).
//! * [`webhook_router`] / [`api_router`]: the HTTP functions (`lambda_http` over function URLs).

pub mod http;
pub mod sqs;
pub mod trigger;

pub use http::{ApiAuth, RequestInfo, api_router, webhook_router};
pub use sqs::{BatchSettings, handle_sqs_batch, handle_sqs_batch_until};
pub use trigger::{TriggerError, handle_trigger};

use std::sync::Arc;

use crate::app::App;
use crate::aws::{AwsContext, AwsOptions};

/// The four functions, and what each one's start-up builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// Public webhooks: reads signing secrets.
    Webhook,
    /// The management API: activation syncs the EventBridge rules.
    Api,
    /// Schedules, platform events, the sweep and the reconcile of trigger rules.
    Trigger,
    /// SQS batches of step tasks: reads the secrets steps use.
    Worker,
}

impl Function {
    fn reads_secrets(self) -> bool {
        matches!(self, Function::Webhook | Function::Worker)
    }

    fn syncs_triggers(self) -> bool {
        matches!(self, Function::Api | Function::Trigger)
    }
}

/// What a function's start-up built, once per cold start.
pub struct Init {
    pub aws: AwsContext,
    pub options: AwsOptions,
    pub app: Arc<App>,
}

/// The start-up every function shares: JSON tracing, the configuration from the environment,
/// the SDK clients, and the application with what `function` uses. A bad setting ends init
/// with one JSON log line naming it and exit code 1 ([`exit_on_init_error`]).
pub async fn init(function: Function) -> Init {
    init_tracing();
    let config = exit_on_init_error(wf_aws::Config::from_env());
    let options = exit_on_init_error(AwsOptions::from_env(function.reads_secrets()));
    let aws = AwsContext::load(&config).await;
    let app = exit_on_init_error(aws.app(&options, function.syncs_triggers()).await);
    Init { aws, options, app }
}

/// JSON logs on standard output (CloudWatch), filtered by `RUST_LOG` (default `info`), scrubbed
/// of the secrets this process resolved ([`crate::logs`]); Lambda adds the time. Call once, first thing in `main`.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_target(false)
        .with_current_span(true)
        .without_time()
        .with_ansi(false)
        .with_writer(crate::logs::ScrubbingWriter(std::io::stdout))
        .try_init();
}

/// What init built, or, when it failed, the reason logged as one JSON line (its Display, which
/// names the setting and how to fix it) and exit code 1: Lambda reports a failed init and shows
/// that line. For the functions' `main`s, so a misconfiguration reads as a sentence.
pub fn exit_on_init_error<T, E: std::fmt::Display>(result: Result<T, E>) -> T {
    match result {
        Ok(value) => value,
        Err(e) => {
            tracing::error!(error = %e, "init failed");
            std::process::exit(1)
        }
    }
}
