//! The webhook function: `POST /hooks/{workflowId}/{token}` from a public function URL (tokens
//! and signatures authenticate callers; signing secrets come from SSM under WF_SECRETS_PATH).
//! Everything else lives in `wf_app`.

use wf_app::http::AppState;
use wf_app::lambda::{Function, init, webhook_router};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let init = init(Function::Webhook).await;
    init.app.enable_pure_start();
    let state = AppState::new(init.app, init.options.webhook_base_url);
    lambda_http::run(webhook_router(state)).await
}
