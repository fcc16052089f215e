//! The ports a use case needs, bundled once per process (Lambda init or `wf dev` start).

use std::sync::Arc;

use wf_core::ports::{
    ActionRunner, Clock, DefinitionStore, EventBus, ExecutionStore, LlmProvider, RecordStore,
    SecretSource, TaskQueue,
};

/// Every adapter the engine talks to. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    pub executions: Arc<dyn ExecutionStore>,
    pub definitions: Arc<dyn DefinitionStore>,
    pub records: Arc<dyn RecordStore>,
    pub queue: Arc<dyn TaskQueue>,
    pub bus: Arc<dyn EventBus>,
    pub actions: Arc<dyn ActionRunner>,
    pub llm: Arc<dyn LlmProvider>,
    pub clock: Arc<dyn Clock>,
    pub secrets: Arc<dyn SecretSource>,
}

/// Secrets from the process environment (local runs). Only names a template reads are looked up.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnvSecrets;

impl SecretSource for EnvSecrets {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn describe(&self, name: &str) -> String {
        format!("environment variable `{name}`")
    }
}
