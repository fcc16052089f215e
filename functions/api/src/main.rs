//! The api function: the management API and OpenAPI document of `wf dev`, from a function URL
//! (AWS_IAM, or NONE plus a bearer token with WF_API_AUTH=bearer). Activation syncs the
//! EventBridge rules of triggers. Everything else lives in `wf_app`.

use wf_app::aws::{AwsContext, AwsOptions};
use wf_app::http::AppState;
use wf_app::lambda::ApiAuth;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    wf_app::lambda::init_tracing();
    let config = wf_aws::Config::from_env()?;
    let aws = AwsContext::load(&config).await;
    let state = AppState::aws(&aws, &AwsOptions::from_env(false)?).await?;
    let auth = ApiAuth::from_env(&aws).await?;
    lambda_http::run(wf_app::lambda::api_router(state, auth)).await
}
