//! wf-aws: the AWS adapters of the wf-core ports.
//!
//! * [`DynamoStore`]: `DefinitionStore`, `ExecutionStore`, `RecordStore` on three DynamoDB
//!   tables (layout in [`dynamo::keys`]; items in [`dynamo::items`]).
//! * [`SqsQueue`]: the `TaskQueue` on SQS (batched sends, delays with a re-delay chain past
//!   900 s, tracing attributes).
//! * [`EventBridgeBus`]: the `EventBus` on the platform's custom bus, and [`TriggerRules`]: the
//!   event rules of active workflows (idempotent sync that repairs drift).
//! * [`TriggerSchedules`]: the schedule triggers on EventBridge Scheduler; [`WorkflowTriggers`]:
//!   both, and the move of the old schedule rules (deleted once their schedules exist).
//! * [`Config`]: every name and the region/endpoint, read once from the environment;
//!   [`AwsClients`]: the SDK clients built from it.
//!
//! Errors map to `StoreError`: a lost condition is `Conflict`, throttling and timeouts are
//! `Unavailable` (retryable), an item or message over its service's limit is `TooLarge`
//! (checked before the write, so nothing is half-written).

pub mod config;
pub mod dynamo;
mod error;
pub mod eventbridge;
pub mod provision;
pub mod scheduler;
pub mod sqs;

pub use config::{AwsClients, Config, ConfigError};
pub use dynamo::DynamoStore;
pub use eventbridge::{EventBridgeBus, RuleSpec, SyncReport, TriggerInput, TriggerRules};
pub use scheduler::{ScheduleSpec, TriggerSchedules, WorkflowTriggers};
pub use sqs::SqsQueue;

/// The SDK configuration of unit tests that build clients but send nothing (no endpoint, no
/// credentials), one for every service's client.
#[cfg(test)]
pub(crate) fn offline_sdk_config() -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .build()
}
