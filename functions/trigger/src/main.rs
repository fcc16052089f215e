//! The trigger function: schedules (`{"workflowId", "scheduledTime"}`), event rules
//! (`{"workflowId", "event"}` or a raw EventBridge event) and the sweep (`{"sweep": true}`).
//! Everything else lives in `wf_app::lambda::trigger`.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use wf_app::lambda::{Function, handle_trigger, init};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let app = init(Function::Trigger).await.app;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let app = app.clone();
        async move { Ok::<_, lambda_runtime::Error>(handle_trigger(&app, event.payload).await?) }
    }))
    .await
}
