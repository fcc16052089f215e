//! The AWS home: the same [`Services`] and [`AppState`] as `wf dev`, on the wf-aws adapters
//! (DynamoDB, SQS, EventBridge) plus SSM Parameter Store for secrets. Built once per Lambda
//! init: `AwsContext::load` (SDK clients), then `AppState::aws`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::timeout::TimeoutConfig;
use tracing::{info, warn};
use wf_aws::{
    AwsClients, Config, DynamoStore, EventBridgeBus, SqsQueue, TriggerRules, TriggerSchedules,
    WorkflowTriggers,
};
use wf_core::engine::CompiledWorkflow;
use wf_core::ports::{Clock, SecretSource, SystemClock};
use wf_core::{StoreError, StoreResult};

use crate::actions::{BuiltinActions, OutboundPolicy};
use crate::app::{App, NoTriggerSync, TriggerSync};
use crate::llm::{LlmConfig, OpenAiCompatible};
use crate::services::{EnvSecrets, Services};
use crate::settings::EngineSettings;

/// Environment variables read here (beyond `wf_aws::Config`'s).
pub mod env {
    /// SSM path under which `{{ secrets.NAME }}` and webhook `secretEnv` names live.
    pub const SECRETS_PATH: &str = "WF_SECRETS_PATH";
    /// Base URL of the webhook function (what the API shows in webhook URLs).
    pub const WEBHOOK_BASE_URL: &str = "WF_WEBHOOK_BASE_URL";
    /// `true` lets `http.request` reach private ranges and loopback (refused on AWS by default).
    pub const OUTBOUND_ALLOW_PRIVATE: &str = "WF_OUTBOUND_ALLOW_PRIVATE";
    /// SSM SecureString holding the LLM provider's key (the key itself is never in the
    /// environment or the template); `WF_LLM_BASE_URL` and `WF_AI_MODEL` name the endpoint.
    pub const LLM_API_KEY_PARAMETER: &str = "WF_LLM_API_KEY_PARAMETER";
    /// SQS queue (ARN) where EventBridge and EventBridge Scheduler put what they could not
    /// deliver to the trigger function after their retries (set on every trigger rule's and
    /// schedule's target).
    pub const TRIGGER_DLQ_ARN: &str = "WF_TRIGGER_DLQ_ARN";
}

#[derive(Debug, thiserror::Error)]
pub enum AwsAppError {
    #[error(transparent)]
    Config(#[from] wf_aws::ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    #[error("{name} is invalid: {message}")]
    Invalid { name: &'static str, message: String },
}

/// What a function needs beyond the adapters' [`Config`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsOptions {
    /// Load secrets from SSM under this path at init (webhook and worker functions; the roles
    /// of the others may not read them). `None`: secrets come from the environment only.
    pub secrets_path: Option<String>,
    /// Base URL shown in webhook URLs (no trailing slash).
    pub webhook_base_url: String,
    pub allow_private_outbound: bool,
    /// `WF_LEASE_SECS`, `WF_EVENT_MAX_DEPTH`, `WF_WORKER_TIMEOUT_SECS`.
    pub settings: EngineSettings,
    /// The dead-letter queue of trigger rules' and schedules' deliveries (`WF_TRIGGER_DLQ_ARN`).
    pub trigger_dead_letter_arn: Option<String>,
}

impl AwsOptions {
    /// Read from the process environment. `with_secrets`: whether this function reads secrets.
    pub fn from_env(with_secrets: bool) -> Result<Self, AwsAppError> {
        Self::from_lookup(|k| std::env::var(k).ok(), with_secrets)
    }

    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>, with_secrets: bool,
    ) -> Result<Self, AwsAppError> {
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let allow_private_outbound = match get(env::OUTBOUND_ALLOW_PRIVATE).as_deref() {
            None | Some("false" | "0" | "no") => false,
            Some("true" | "1" | "yes") => true,
            Some(other) => {
                return Err(AwsAppError::Invalid {
                    name: env::OUTBOUND_ALLOW_PRIVATE,
                    message: format!("{other:?} is not true or false"),
                });
            }
        };
        Ok(Self {
            secrets_path: get(env::SECRETS_PATH)
                .filter(|_| with_secrets)
                .map(|p| p.trim_end_matches('/').to_string()),
            webhook_base_url: get(env::WEBHOOK_BASE_URL)
                .map(|u| u.trim_end_matches('/').to_string())
                .unwrap_or_default(),
            allow_private_outbound,
            trigger_dead_letter_arn: get(env::TRIGGER_DLQ_ARN),
            settings: EngineSettings::from_lookup(&lookup).map_err(|e| AwsAppError::Invalid {
                name: "engine settings",
                message: e.to_string(),
            })?,
        })
    }
}

/// The SDK clients of one process, built once.
#[derive(Debug, Clone)]
pub struct AwsContext {
    pub config: Config,
    pub clients: AwsClients,
    pub ssm: aws_sdk_ssm::Client,
}

impl AwsContext {
    /// Clients from the environment's credentials and `config`'s region and endpoint.
    pub async fn load(config: &Config) -> Self {
        let sdk = config.load_sdk_config().await;
        Self::from_sdk_config(config, &sdk)
    }

    pub fn from_sdk_config(config: &Config, sdk: &aws_config::SdkConfig) -> Self {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3))
            .operation_attempt_timeout(Duration::from_secs(10))
            .operation_timeout(Duration::from_secs(30))
            .build();
        let ssm = aws_sdk_ssm::config::Builder::from(sdk)
            .timeout_config(timeouts)
            .build();
        Self {
            config: config.clone(),
            clients: AwsClients::from_sdk_config(sdk, None),
            ssm: aws_sdk_ssm::Client::from_conf(ssm),
        }
    }

    /// Every adapter on AWS. Secrets are loaded from SSM now when `options` says so.
    pub async fn services(&self, options: &AwsOptions) -> Result<Services, AwsAppError> {
        let store = Arc::new(DynamoStore::new(
            self.clients.dynamodb.clone(),
            &self.config,
        ));
        let queue = Arc::new(SqsQueue::new(
            self.clients.sqs.clone(),
            &self.config.queue_url,
        ));
        let bus = Arc::new(EventBridgeBus::new(
            self.clients.eventbridge.clone(),
            &self.config.event_bus,
        ));
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let policy = OutboundPolicy {
            allow_private: options.allow_private_outbound,
            ..OutboundPolicy::aws()
        };
        let actions =
            BuiltinActions::with_policy(store.clone(), bus.clone(), clock.clone(), policy)
                .map_err(|e| AwsAppError::Http(e.to_string()))?;
        let mut llm_config = LlmConfig::from_env();
        if let Some(name) = std::env::var(env::LLM_API_KEY_PARAMETER)
            .ok()
            .filter(|n| !n.trim().is_empty())
        {
            // Read once per cold start; a missing parameter leaves the provider keyless (its
            // calls then fail with the provider's own refusal, not at init).
            match ssm_parameter(&self.ssm, name.trim()).await {
                Ok(key) => llm_config.api_key = Some(key),
                Err(e) => warn!(parameter = %name, error = %e, "no LLM key from SSM"),
            }
        }
        let llm =
            OpenAiCompatible::new(llm_config).map_err(|e| AwsAppError::Http(e.to_string()))?;
        let secrets: Arc<dyn SecretSource> = match &options.secrets_path {
            Some(path) => {
                let s = SsmSecrets::load(self.ssm.clone(), path).await?;
                s.refresh_every(SECRETS_REFRESH);
                s
            }
            None => Arc::new(EnvSecrets),
        };
        Ok(Services {
            executions: store.clone(),
            definitions: store.clone(),
            records: store,
            queue,
            bus,
            actions: Arc::new(actions),
            llm: Arc::new(llm),
            clock,
            secrets,
        })
    }

    /// The trigger sync (the api function; the trigger function's reconcile): schedules on
    /// EventBridge Scheduler, event rules on the platform bus. None when no target is
    /// configured (the local emulator, where the bridge fires schedules itself).
    pub fn trigger_sync(&self, options: &AwsOptions) -> Arc<dyn TriggerSync> {
        match &self.config.trigger_target_arn {
            Some(arn) => {
                let rules = TriggerRules::new(
                    self.clients.eventbridge.clone(),
                    &self.config.event_bus,
                    arn,
                )
                .with_prefix(&self.config.rule_prefix)
                .with_dead_letter(options.trigger_dead_letter_arn.clone());
                let schedules = match &self.config.scheduler_role_arn {
                    Some(role) => Some(
                        TriggerSchedules::new(
                            self.clients.scheduler.clone(),
                            self.config
                                .schedule_group
                                .as_deref()
                                .unwrap_or(wf_aws::config::DEFAULT_SCHEDULE_GROUP),
                            arn,
                            role,
                        )
                        .with_prefix(&self.config.rule_prefix)
                        .with_dead_letter(options.trigger_dead_letter_arn.clone()),
                    ),
                    None => {
                        warn!(
                            "WF_SCHEDULER_ROLE_ARN is not set: activating a workflow with a \
                             schedule trigger fails"
                        );
                        None
                    }
                };
                Arc::new(AwsTriggerSync {
                    triggers: WorkflowTriggers::new(rules, schedules),
                })
            }
            None => {
                info!("WF_TRIGGER_TARGET_ARN is not set: activation creates no EventBridge rules");
                Arc::new(NoTriggerSync)
            }
        }
    }
}

/// How often a warm function reads its secrets again (rotation takes effect within this).
pub const SECRETS_REFRESH: Duration = Duration::from_secs(300);

impl AwsContext {
    /// The application over the AWS adapters. `with_triggers`: whether activation keeps the
    /// EventBridge rules in step (the api function; others never activate).
    pub async fn app(
        &self, options: &AwsOptions, with_triggers: bool,
    ) -> Result<Arc<App>, AwsAppError> {
        let services = self.services(options).await?;
        let triggers = if with_triggers {
            self.trigger_sync(options)
        } else {
            Arc::new(NoTriggerSync)
        };
        Ok(Arc::new(
            App::with_triggers(services, triggers).with_settings(options.settings),
        ))
    }
}

/// `TriggerSync` on AWS: the schedules and event rules of the workflow follow its active
/// version; the reconcile also moves old schedule rules to Scheduler.
pub struct AwsTriggerSync {
    pub triggers: WorkflowTriggers,
}

#[async_trait]
impl TriggerSync for AwsTriggerSync {
    async fn sync(
        &self, workflow_id: &str, active: Option<Arc<CompiledWorkflow>>,
    ) -> StoreResult<()> {
        self.triggers
            .sync(workflow_id, active.as_deref().map(|c| &c.workflow))
            .await
            .map(|_| ())
    }

    async fn reconcile(&self, active: Vec<Arc<CompiledWorkflow>>) -> StoreResult<usize> {
        let workflows: Vec<wf_core::model::Workflow> =
            active.iter().map(|c| c.workflow.clone()).collect();
        let report = self.triggers.sync_all(&workflows).await?;
        Ok(report.created.len() + report.updated.len() + report.deleted.len())
    }
}

/// Secrets from SSM Parameter Store: every parameter under a path (SecureStrings decrypted),
/// read at init and refreshed in the background; names not found there fall back to the
/// environment. Values are never logged.
pub struct SsmSecrets {
    client: aws_sdk_ssm::Client,
    path: String,
    values: RwLock<HashMap<String, String>>,
}

impl SsmSecrets {
    pub async fn load(client: aws_sdk_ssm::Client, path: &str) -> StoreResult<Arc<Self>> {
        let s = Arc::new(Self {
            client,
            path: path.trim_end_matches('/').to_string(),
            values: RwLock::new(HashMap::new()),
        });
        let n = s.refresh().await?;
        info!(path = %s.path, count = n, "secrets loaded from SSM");
        Ok(s)
    }

    /// Read every parameter under the path again; returns how many there are.
    pub async fn refresh(&self) -> StoreResult<usize> {
        let prefix = format!("{}/", self.path);
        let mut values = HashMap::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .get_parameters_by_path()
                .path(&self.path)
                .recursive(true)
                .with_decryption(true)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| ssm_error("GetParametersByPath", e))?;
            for p in page.parameters() {
                if let (Some(name), Some(value)) = (p.name(), p.value()) {
                    let key = name.strip_prefix(&prefix).unwrap_or(name);
                    values.insert(key.to_string(), value.to_string());
                }
            }
            match page.next_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        let n = values.len();
        *self.values.write().unwrap_or_else(|p| p.into_inner()) = values;
        Ok(n)
    }

    /// Refresh every `every` in the background (a frozen Lambda sandbox refreshes on thaw).
    pub fn refresh_every(self: &Arc<Self>, every: Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(s) = weak.upgrade() else { return };
                if let Err(e) = s.refresh().await {
                    warn!(error = %e, "secrets refresh failed; keeping the previous values");
                }
            }
        });
    }
}

impl SecretSource for SsmSecrets {
    fn get(&self, name: &str) -> Option<String> {
        let values = self.values.read().unwrap_or_else(|p| p.into_inner());
        values
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
    }

    fn describe(&self, name: &str) -> String {
        format!("SSM parameter {}/{name}", self.path)
    }
}

/// An SDK error as a store error (throttling, timeouts and 5xx are retryable).
pub fn ssm_error<E, R>(operation: &str, e: aws_sdk_ssm::error::SdkError<E, R>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_ssm::error::SdkError;
    let retryable = matches!(
        e,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
    );
    let message = format!(
        "SSM {operation}: {}",
        aws_sdk_ssm::error::DisplayErrorContext(&e)
    );
    if retryable {
        StoreError::Unavailable(message)
    } else {
        StoreError::Permanent(message)
    }
}

/// One SSM parameter (the api's bearer token), decrypted.
pub async fn ssm_parameter(client: &aws_sdk_ssm::Client, name: &str) -> StoreResult<String> {
    let out = client
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| ssm_error("GetParameter", e))?;
    out.parameter
        .and_then(|p| p.value)
        .ok_or_else(|| StoreError::NotFound(format!("SSM parameter {name} has no value")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_read_the_environment() {
        let vars: HashMap<&str, &str> = [
            ("WF_SECRETS_PATH", "/wf/dev/"),
            (
                "WF_WEBHOOK_BASE_URL",
                "https://x.lambda-url.eu-west-1.on.aws/",
            ),
            ("WF_OUTBOUND_ALLOW_PRIVATE", "true"),
        ]
        .into();
        let get = |k: &str| vars.get(k).map(|v| v.to_string());
        let o = AwsOptions::from_lookup(get, true).unwrap();
        assert_eq!(o.secrets_path.as_deref(), Some("/wf/dev"));
        assert_eq!(o.webhook_base_url, "https://x.lambda-url.eu-west-1.on.aws");
        assert!(o.allow_private_outbound);
        let o = AwsOptions::from_lookup(get, false).unwrap();
        assert_eq!(o.secrets_path, None);
        let bad = AwsOptions::from_lookup(
            |k| (k == "WF_OUTBOUND_ALLOW_PRIVATE").then(|| "maybe".to_string()),
            false,
        );
        assert!(matches!(bad, Err(AwsAppError::Invalid { .. })));
    }
}
