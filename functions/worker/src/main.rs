//! The worker function: SQS batches of step tasks with `ReportBatchItemFailures`. Everything
//! else lives in `wf_app::lambda::sqs`.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use wf_app::aws::{AwsContext, AwsOptions};
use wf_app::http::AppState;
use wf_app::lambda::{BatchSettings, exit_on_init_error, handle_sqs_batch_until};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    wf_app::lambda::init_tracing();
    let config = exit_on_init_error(wf_aws::Config::from_env());
    let settings = exit_on_init_error(BatchSettings::from_env());
    let options = exit_on_init_error(AwsOptions::from_env(true));
    let aws = AwsContext::load(&config).await;
    let worker = exit_on_init_error(AppState::aws(&aws, &options).await).worker;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let (worker, settings) = (worker.clone(), settings.clone());
        let deadline = Some(event.context.deadline());
        async move {
            let answer = handle_sqs_batch_until(&worker, event.payload, &settings, deadline).await;
            Ok::<_, lambda_runtime::Error>(answer)
        }
    }))
    .await
}
