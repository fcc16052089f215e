//! The webhook function: `POST /hooks/{workflowId}/{token}` from a public function URL (tokens
//! and signatures authenticate callers). Everything else lives in `wf_app`.

use wf_app::aws::{AwsContext, AwsOptions};
use wf_app::http::AppState;
use wf_app::lambda::exit_on_init_error;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    wf_app::lambda::init_tracing();
    let config = exit_on_init_error(wf_aws::Config::from_env());
    // Webhook signing secrets (`secretEnv`) come from SSM under WF_SECRETS_PATH.
    let options = exit_on_init_error(AwsOptions::from_env(true));
    let aws = AwsContext::load(&config).await;
    let state = exit_on_init_error(AppState::aws(&aws, &options).await);
    lambda_http::run(wf_app::lambda::webhook_router(state)).await
}
