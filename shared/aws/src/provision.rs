//! Creating the resources the adapters use (tables, queue, bus) when no stack did: tests on
//! moto_server, the cost script, a developer's own account. Every call is idempotent.

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use wf_core::{StoreError, StoreResult};

use crate::config::{AwsClients, Config};
use crate::error::SdkResultExt;

/// Names of the resources to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub workflows_table: String,
    pub executions_table: String,
    pub records_table: String,
    pub queue_name: String,
    pub event_bus: String,
    /// The EventBridge Scheduler group of schedule triggers.
    pub schedule_group: String,
    /// How long a received task stays invisible. The deployed queue needs at least 6x the
    /// worker function's timeout (the event source mapping's rule).
    pub visibility_timeout: Duration,
}

impl Resources {
    /// Resource names that start with `prefix` (tests give each run its own).
    pub fn prefixed(prefix: &str, visibility_timeout: Duration) -> Self {
        Self {
            workflows_table: format!("{prefix}-workflows"),
            executions_table: format!("{prefix}-executions"),
            records_table: format!("{prefix}-records"),
            queue_name: format!("{prefix}-steps"),
            event_bus: format!("{prefix}-events"),
            schedule_group: format!("{prefix}-schedules"),
            visibility_timeout,
        }
    }
}

/// Create every resource (or find it) and return the configuration that uses them.
pub async fn ensure(
    clients: &AwsClients, resources: &Resources, region: &str, endpoint_url: Option<&str>,
) -> StoreResult<Config> {
    let visibility = resources.visibility_timeout.as_secs().to_string();
    let queue = clients
        .sqs
        .create_queue()
        .queue_name(&resources.queue_name)
        .attributes(QueueAttributeName::VisibilityTimeout, visibility)
        // Four days, SQS's default: a stuck execution is swept long before.
        .attributes(QueueAttributeName::MessageRetentionPeriod, "345600")
        .send()
        .await
        .store_err("CreateQueue")?;
    let queue_url = queue
        .queue_url
        .ok_or_else(|| StoreError::Permanent("CreateQueue answered no queue URL".into()))?;
    // One that exists already is what was asked for.
    clients
        .eventbridge
        .create_event_bus()
        .name(&resources.event_bus)
        .send()
        .await
        .store_err_unless("CreateEventBus", |e| {
            e.is_resource_already_exists_exception()
        })?;
    clients
        .scheduler
        .create_schedule_group()
        .name(&resources.schedule_group)
        .send()
        .await
        .store_err_unless("CreateScheduleGroup", |e| e.is_conflict_exception())?;
    let config = Config {
        region: region.to_string(),
        endpoint_url: endpoint_url.map(str::to_string),
        workflows_table: resources.workflows_table.clone(),
        executions_table: resources.executions_table.clone(),
        records_table: resources.records_table.clone(),
        queue_url,
        event_bus: resources.event_bus.clone(),
        trigger_target_arn: None,
        retention_days: crate::config::DEFAULT_RETENTION_DAYS,
        rule_prefix: crate::config::DEFAULT_RULE_PREFIX.to_string(),
        schedule_group: Some(resources.schedule_group.clone()),
        scheduler_role_arn: None,
    };
    crate::dynamo::tables::ensure_tables(&clients.dynamodb, &config).await?;
    Ok(config)
}
