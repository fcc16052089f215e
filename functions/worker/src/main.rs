//! The worker function: SQS batches of step tasks with `ReportBatchItemFailures`. Everything
//! else lives in `wf_app::lambda::sqs`.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use wf_app::lambda::{BatchSettings, Function, exit_on_init_error, handle_sqs_batch_until, init};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let app = init(Function::Worker).await.app;
    let settings = exit_on_init_error(BatchSettings::from_env());
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let (app, settings) = (app.clone(), settings.clone());
        let deadline = Some(event.context.deadline());
        async move {
            Ok::<_, lambda_runtime::Error>(
                handle_sqs_batch_until(&app, event.payload, &settings, deadline).await,
            )
        }
    }))
    .await
}
