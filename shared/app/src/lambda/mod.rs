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
    /// The `Function` dimension of its metrics.
    pub fn name(self) -> &'static str {
        match self {
            Function::Webhook => "webhook",
            Function::Api => "api",
            Function::Trigger => "trigger",
            Function::Worker => "worker",
        }
    }

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
/// of the secrets this process resolved ([`crate::logs`]); Lambda adds the time. Events of
/// [`EMF_TARGET`] are written as they are (one EMF document a line, whatever `RUST_LOG`), for
/// CloudWatch to turn into metrics. Call once, first thing in `main`.
pub fn init_tracing() {
    use tracing_subscriber::filter::filter_fn;
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt::layer()
        .json()
        .with_target(false)
        .with_current_span(true)
        .without_time()
        .with_ansi(false)
        .with_writer(crate::logs::ScrubbingWriter(std::io::stdout))
        .with_filter(filter_fn(|m| m.target() != EMF_TARGET))
        .with_filter(filter);
    let emf = EmfLayer.with_filter(filter_fn(|m| m.target() == EMF_TARGET));
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(emf)
        .try_init();
}

/// The tracing target of the events that carry EMF documents ([`emit_metrics`]).
pub const EMF_TARGET: &str = "wf::emf";

/// Log this invocation's metrics (counters since the last call) as EMF documents, one line
/// each, dimensions `Function` and `Reason` (see [`crate::metrics`]). Every handler calls it
/// when its invocation ends.
pub fn emit_metrics(app: &App, function: Function) {
    let now = wf_core::ports::Clock::now_ms(&wf_core::ports::SystemClock);
    for doc in app.metrics().drain_emf(function.name(), now) {
        tracing::info!(target: EMF_TARGET, "{doc}");
    }
}

/// Writes the message of [`EMF_TARGET`] events as one raw line (an EMF document must be a
/// top-level JSON object, which the JSON log format would nest and escape).
struct EmfLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for EmfLayer {
    fn on_event(
        &self, event: &tracing::Event<'_>, _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        use std::io::Write;
        use tracing_subscriber::fmt::MakeWriter;
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let writer = crate::logs::ScrubbingWriter(std::io::stdout);
        let _ = writeln!(writer.make_writer(), "{}", message.0);
    }
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
