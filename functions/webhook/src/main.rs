//! The webhook function: `POST /hooks/{workflowId}/{token}` from a public function URL (tokens
//! and signatures authenticate callers). Everything else lives in `wf_app`.

use wf_app::aws::{AwsContext, AwsOptions};
use wf_app::http::AppState;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    wf_app::lambda::init_tracing();
    let config = wf_aws::Config::from_env()?;
    let aws = AwsContext::load(&config).await;
    // Webhook signing secrets (`secretEnv`) come from SSM under WF_SECRETS_PATH.
    let state = AppState::aws(&aws, &AwsOptions::from_env(true)?).await?;
    lambda_http::run(wf_app::lambda::webhook_router(state)).await
}
