//! Configuration of the AWS adapters, read once per process (Lambda init, a worker's start) from
//! the environment, and the SDK clients built from it.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::SharedInterceptor;

/// Default names, matching the stack's resources when nothing else is configured.
pub const DEFAULT_WORKFLOWS_TABLE: &str = "wf-workflows";
pub const DEFAULT_EXECUTIONS_TABLE: &str = "wf-executions";
pub const DEFAULT_RECORDS_TABLE: &str = "wf-records";
pub const DEFAULT_EVENT_BUS: &str = "wf-events";
/// How long execution records are kept (DynamoDB TTL) unless configured.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
/// Prefix of the EventBridge rules the trigger sync manages unless configured (the template's
/// `RulePrefix`, whose IAM policy is scoped to it).
pub const DEFAULT_RULE_PREFIX: &str = "wf-";
/// The schedule group of schedule triggers unless configured (Scheduler's own default group).
pub const DEFAULT_SCHEDULE_GROUP: &str = "default";

/// The environment variables [`Config::from_env`] reads.
pub mod env {
    /// Region of every client (`AWS_DEFAULT_REGION` is the fallback, as in the SDK).
    pub const REGION: &str = "AWS_REGION";
    pub const REGION_FALLBACK: &str = "AWS_DEFAULT_REGION";
    /// An endpoint for every service (emulators such as moto_server); the SDK's own variable
    /// `AWS_ENDPOINT_URL` is the fallback.
    pub const ENDPOINT: &str = "WF_AWS_ENDPOINT_URL";
    pub const ENDPOINT_FALLBACK: &str = "AWS_ENDPOINT_URL";
    pub const WORKFLOWS_TABLE: &str = "WF_WORKFLOWS_TABLE";
    pub const EXECUTIONS_TABLE: &str = "WF_EXECUTIONS_TABLE";
    pub const RECORDS_TABLE: &str = "WF_RECORDS_TABLE";
    /// The step queue's URL (required).
    pub const QUEUE_URL: &str = "WF_QUEUE_URL";
    /// The platform's custom event bus (event triggers and `event.emit`).
    pub const EVENT_BUS: &str = "WF_EVENT_BUS";
    /// What trigger rules target: the trigger function's ARN.
    pub const TRIGGER_TARGET_ARN: &str = "WF_TRIGGER_TARGET_ARN";
    /// Days an execution's items are kept before DynamoDB TTL removes them.
    pub const RETENTION_DAYS: &str = "WF_RETENTION_DAYS";
    /// Prefix of every trigger rule's name (letters, digits, `-`, `_`, `.`; at most 16).
    pub const RULE_PREFIX: &str = "WF_RULE_PREFIX";
    /// The EventBridge Scheduler schedule group of the schedule triggers (the stack's group).
    pub const SCHEDULE_GROUP: &str = "WF_SCHEDULE_GROUP";
    /// The role EventBridge Scheduler assumes to invoke the trigger function (and to send what
    /// it could not deliver to the trigger dead-letter queue).
    pub const SCHEDULER_ROLE_ARN: &str = "WF_SCHEDULER_ROLE_ARN";
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name} is invalid: {message}")]
    Invalid { name: &'static str, message: String },
}

/// Everything the AWS adapters need to know about the deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub region: String,
    /// Endpoint override for every service (moto_server in tests); `None` = the real AWS.
    pub endpoint_url: Option<String>,
    pub workflows_table: String,
    pub executions_table: String,
    pub records_table: String,
    pub queue_url: String,
    pub event_bus: String,
    /// What trigger rules target (the trigger function); required only by trigger sync.
    pub trigger_target_arn: Option<String>,
    pub retention_days: u32,
    /// Prefix of the trigger rules' names ([`DEFAULT_RULE_PREFIX`] unless configured); the
    /// schedules' names start with it too.
    pub rule_prefix: String,
    /// The schedule group of the schedule triggers ([`DEFAULT_SCHEDULE_GROUP`] when unset).
    pub schedule_group: Option<String>,
    /// What EventBridge Scheduler runs the schedules as; required to sync schedule triggers.
    pub scheduler_role_arn: Option<String>,
}

impl Config {
    /// Read the configuration from the process environment (see [`env`]). Call once at start.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Read the configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let region = get(env::REGION)
            .or_else(|| get(env::REGION_FALLBACK))
            .ok_or(ConfigError::Missing(env::REGION))?;
        let retention_days = match get(env::RETENTION_DAYS) {
            None => DEFAULT_RETENTION_DAYS,
            Some(v) => v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|d| *d > 0)
                .ok_or_else(|| ConfigError::Invalid {
                    name: env::RETENTION_DAYS,
                    message: format!("{v:?} is not a positive number of days"),
                })?,
        };
        let rule_prefix = match get(env::RULE_PREFIX) {
            None => DEFAULT_RULE_PREFIX.to_string(),
            Some(p) => check_rule_prefix(p.trim())?,
        };
        Ok(Self {
            region,
            endpoint_url: get(env::ENDPOINT).or_else(|| get(env::ENDPOINT_FALLBACK)),
            workflows_table: get(env::WORKFLOWS_TABLE)
                .unwrap_or_else(|| DEFAULT_WORKFLOWS_TABLE.into()),
            executions_table: get(env::EXECUTIONS_TABLE)
                .unwrap_or_else(|| DEFAULT_EXECUTIONS_TABLE.into()),
            records_table: get(env::RECORDS_TABLE).unwrap_or_else(|| DEFAULT_RECORDS_TABLE.into()),
            queue_url: get(env::QUEUE_URL).ok_or(ConfigError::Missing(env::QUEUE_URL))?,
            event_bus: get(env::EVENT_BUS).unwrap_or_else(|| DEFAULT_EVENT_BUS.into()),
            trigger_target_arn: get(env::TRIGGER_TARGET_ARN),
            retention_days,
            rule_prefix,
            schedule_group: get(env::SCHEDULE_GROUP).map(|g| g.trim().to_string()),
            scheduler_role_arn: get(env::SCHEDULER_ROLE_ARN).map(|a| a.trim().to_string()),
        })
    }

    /// The environment variables that reproduce this configuration (for child processes).
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![
            (env::REGION, self.region.clone()),
            (env::WORKFLOWS_TABLE, self.workflows_table.clone()),
            (env::EXECUTIONS_TABLE, self.executions_table.clone()),
            (env::RECORDS_TABLE, self.records_table.clone()),
            (env::QUEUE_URL, self.queue_url.clone()),
            (env::EVENT_BUS, self.event_bus.clone()),
            (env::RETENTION_DAYS, self.retention_days.to_string()),
            (env::RULE_PREFIX, self.rule_prefix.clone()),
        ];
        if let Some(endpoint) = &self.endpoint_url {
            vars.push((env::ENDPOINT, endpoint.clone()));
        }
        if let Some(arn) = &self.trigger_target_arn {
            vars.push((env::TRIGGER_TARGET_ARN, arn.clone()));
        }
        if let Some(group) = &self.schedule_group {
            vars.push((env::SCHEDULE_GROUP, group.clone()));
        }
        if let Some(arn) = &self.scheduler_role_arn {
            vars.push((env::SCHEDULER_ROLE_ARN, arn.clone()));
        }
        vars
    }

    /// The SDK configuration: region and endpoint from here, credentials from the default chain.
    pub async fn load_sdk_config(&self) -> aws_config::SdkConfig {
        let mut loader = sdk_loader().region(aws_config::Region::new(self.region.clone()));
        if let Some(endpoint) = &self.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        loader.load().await
    }
}

/// The SDK's HTTPS client: rustls on ring with the system's root certificates. The workspace
/// turns off the SDK's `default-https-client` (rustls on aws-lc), so every SDK configuration
/// must come from [`sdk_loader`] (or set this client itself).
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// `aws_config::defaults` with the latest behavior version and [`https_client`].
pub fn sdk_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest()).http_client(https_client())
}

/// A rule prefix EventBridge accepts and that leaves room for the workflow part of rule names
/// (names are at most 64 characters).
pub fn check_rule_prefix(prefix: &str) -> Result<String, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        name: env::RULE_PREFIX,
        message,
    };
    if prefix.is_empty() || prefix.len() > 16 {
        return Err(invalid(format!(
            "{prefix:?} must be 1 to 16 characters (rule names are at most 64)"
        )));
    }
    if let Some(c) = prefix
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(invalid(format!(
            "{prefix:?} contains {c:?}: use letters, digits, '-', '_' or '.'"
        )));
    }
    Ok(prefix.to_string())
}

/// The service clients, built once and shared (they are cheap to clone).
#[derive(Debug, Clone)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub eventbridge: aws_sdk_eventbridge::Client,
    /// EventBridge Scheduler (schedule triggers); same HTTPS client and endpoint as the others.
    pub scheduler: aws_sdk_scheduler::Client,
}

impl AwsClients {
    /// Clients from the environment's credentials and `config`'s region and endpoint.
    pub async fn load(config: &Config) -> Self {
        Self::from_sdk_config(&config.load_sdk_config().await, None)
    }

    /// Clients from an SDK configuration, each with `interceptor` when given (request counting
    /// in the cost script, tracing). Timeouts bound every call so a stuck connection becomes a
    /// retryable error rather than a hung worker.
    pub fn from_sdk_config(
        sdk: &aws_config::SdkConfig, interceptor: Option<SharedInterceptor>,
    ) -> Self {
        let short = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3))
            .operation_attempt_timeout(Duration::from_secs(10))
            .operation_timeout(Duration::from_secs(30))
            .build();
        // Long polls wait up to 20 s: the SQS budget must exceed that.
        let long = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3))
            .operation_attempt_timeout(Duration::from_secs(30))
            .operation_timeout(Duration::from_secs(60))
            .build();
        let mut dynamodb =
            aws_sdk_dynamodb::config::Builder::from(sdk).timeout_config(short.clone());
        let mut sqs = aws_sdk_sqs::config::Builder::from(sdk).timeout_config(long);
        let mut eventbridge =
            aws_sdk_eventbridge::config::Builder::from(sdk).timeout_config(short.clone());
        let mut scheduler = aws_sdk_scheduler::config::Builder::from(sdk).timeout_config(short);
        if let Some(i) = interceptor {
            dynamodb = dynamodb.interceptor(i.clone());
            sqs = sqs.interceptor(i.clone());
            eventbridge = eventbridge.interceptor(i.clone());
            scheduler = scheduler.interceptor(i);
        }
        Self {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb.build()),
            sqs: aws_sdk_sqs::Client::from_conf(sqs.build()),
            eventbridge: aws_sdk_eventbridge::Client::from_conf(eventbridge.build()),
            scheduler: aws_sdk_scheduler::Client::from_conf(scheduler.build()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn reads_defaults_and_requires_region_and_queue() {
        let c = Config::from_lookup(lookup(&[
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("WF_QUEUE_URL", "http://q"),
        ]))
        .expect("config");
        assert_eq!(c.region, "eu-west-1");
        assert_eq!(c.executions_table, DEFAULT_EXECUTIONS_TABLE);
        assert_eq!(c.retention_days, DEFAULT_RETENTION_DAYS);
        assert_eq!(c.endpoint_url, None);
        assert_eq!(
            Config::from_lookup(lookup(&[("WF_QUEUE_URL", "q")])),
            Err(ConfigError::Missing(env::REGION))
        );
        assert_eq!(
            Config::from_lookup(lookup(&[("AWS_REGION", "r")])),
            Err(ConfigError::Missing(env::QUEUE_URL))
        );
        let bad = Config::from_lookup(lookup(&[
            ("AWS_REGION", "r"),
            ("WF_QUEUE_URL", "q"),
            ("WF_RETENTION_DAYS", "soon"),
        ]));
        assert!(matches!(bad, Err(ConfigError::Invalid { .. })), "{bad:?}");
        assert_eq!(c.rule_prefix, DEFAULT_RULE_PREFIX);
    }

    #[test]
    fn refuses_rule_prefixes_eventbridge_would_refuse() {
        for (prefix, says) in [
            ("wf prod", "contains ' '"),
            ("wf/prod-", "contains '/'"),
            ("a-very-long-rule-prefix-", "1 to 16 characters"),
        ] {
            let err = Config::from_lookup(lookup(&[
                ("AWS_REGION", "r"),
                ("WF_QUEUE_URL", "q"),
                ("WF_RULE_PREFIX", prefix),
            ]))
            .expect_err(prefix);
            let text = err.to_string();
            assert!(
                text.contains("WF_RULE_PREFIX") && text.contains(says),
                "{prefix}: {text}"
            );
        }
    }

    #[test]
    fn round_trips_through_env_vars() {
        let c = Config::from_lookup(lookup(&[
            ("AWS_REGION", "us-east-1"),
            ("WF_QUEUE_URL", "http://127.0.0.1:1/q"),
            ("WF_AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
            ("WF_EXECUTIONS_TABLE", "ex"),
            (
                "WF_TRIGGER_TARGET_ARN",
                "arn:aws:lambda:us-east-1:1:function:t",
            ),
            ("WF_RETENTION_DAYS", "7"),
            ("WF_RULE_PREFIX", "wf-prod-"),
            ("WF_SCHEDULE_GROUP", "wf-prod"),
            (
                "WF_SCHEDULER_ROLE_ARN",
                "arn:aws:iam::1:role/wf-prod-scheduler",
            ),
        ]))
        .expect("config");
        assert_eq!(c.rule_prefix, "wf-prod-");
        assert_eq!(c.schedule_group.as_deref(), Some("wf-prod"));
        let vars: HashMap<&str, String> = c.to_env().into_iter().collect();
        let again = Config::from_lookup(|k| vars.get(k).cloned()).expect("again");
        assert_eq!(again, c);
    }
}
