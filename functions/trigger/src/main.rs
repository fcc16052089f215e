//! The trigger function: schedule rules (`{"workflowId", "scheduledTime"}`), event rules
//! (`{"workflowId", "event"}` or a raw EventBridge event) and the sweep (`{"sweep": true}`).
//! Everything else lives in `wf_app::lambda::trigger`.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use wf_app::aws::{AwsContext, AwsOptions};
use wf_app::http::AppState;
use wf_app::lambda::exit_on_init_error;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    wf_app::lambda::init_tracing();
    let config = exit_on_init_error(wf_aws::Config::from_env());
    let options = exit_on_init_error(AwsOptions::from_env(false));
    let aws = AwsContext::load(&config).await;
    let worker = exit_on_init_error(AppState::aws(&aws, &options).await).worker;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let worker = worker.clone();
        async move {
            let answer = wf_app::lambda::handle_trigger(&worker, event.payload).await;
            answer.map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
