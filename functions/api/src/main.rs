//! The api function: the management API and OpenAPI document of `wf dev`, from a function URL
//! (AWS_IAM, or NONE plus a bearer token with WF_API_AUTH=bearer). Activation syncs the
//! EventBridge rules of triggers. Everything else lives in `wf_app`.

use wf_app::http::AppState;
use wf_app::lambda::{ApiAuth, Function, api_router, exit_on_init_error, init};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let init = init(Function::Api).await;
    let auth = exit_on_init_error(ApiAuth::from_env(&init.aws).await);
    let state = AppState::new(init.app, init.options.webhook_base_url);
    lambda_http::run(api_router(state, auth)).await
}
