//! The api function: the management API and OpenAPI document of `wf dev`, from a function URL
//! (AWS_IAM, or NONE plus a bearer token with WF_API_AUTH=bearer). Activation syncs the
//! EventBridge rules of triggers. Everything else lives in `wf_app`.

use wf_app::aws::{AwsContext, AwsOptions};
use wf_app::http::AppState;
use wf_app::lambda::{ApiAuth, exit_on_init_error};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    wf_app::lambda::init_tracing();
    let config = exit_on_init_error(wf_aws::Config::from_env());
    let options = exit_on_init_error(AwsOptions::from_env(false));
    let aws = AwsContext::load(&config).await;
    let state = exit_on_init_error(AppState::aws(&aws, &options).await);
    let auth = exit_on_init_error(ApiAuth::from_env(&aws).await);
    lambda_http::run(wf_app::lambda::api_router(state, auth)).await
}
