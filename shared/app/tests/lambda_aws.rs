//! The Lambda handlers wired by `AppState::aws` on moto_server (DynamoDB, SQS, EventBridge,
//! SSM): a signed function-URL webhook whose secret lives in SSM starts an execution, the
//! worker handler runs its SQS messages (as the event source would deliver them) to the end,
//! every step is recorded in DynamoDB, and the schedule trigger starts its execution there.

mod lambda_support;

use std::time::Duration;

use aws_sdk_sqs::types::MessageSystemAttributeName;
use axum::body::to_bytes;
use axum::http::StatusCode;
use serde_json::{Value, json};
use tower::ServiceExt;
use wf_app::App;
use wf_app::app::workflows::PublishMode;
use wf_app::aws::{AwsContext, AwsOptions};
use wf_app::http::AppState;
use wf_app::lambda::{BatchSettings, handle_sqs_batch, handle_trigger, webhook_router};
use wf_app::testing::sqs_event;
use wf_app::webhooks::sign;
use wf_aws::provision::{Resources, ensure};
use wf_core::execution::{ExecutionStatus, StepStatus};
use wf_core::model::{WebhookScheme, Workflow};
use wf_core::ports::{Clock, SystemClock};

use lambda_support::{Moto, fixture};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn order_alert() -> Value {
    json!({
        "id": "order-alert", "name": "Orders",
        "config": { "active": true, "variables": { "threshold": 100 } },
        "steps": [
            { "id": "start", "type": "start",
              "triggers": [{ "type": "webhook", "scheme": "standard", "secretEnv": "ORDER_ALERT_SECRET" },
                           { "type": "schedule", "cron": "0 9 * * *" }],
              "next": "check" },
            { "id": "check", "type": "condition",
              "branches": [{ "if": "{{ (input.amount | default(0)) > vars.threshold }}", "next": "big" }],
              "else": "small" },
            { "id": "big", "type": "output", "output": { "alerted": true } },
            { "id": "small", "type": "output", "output": { "alerted": false } }
        ]
    })
}

/// Tables, queue and bus on `moto` under a fresh prefix, and the SDK config to reach them.
async fn provisioned(moto: &Moto, name: &str) -> (aws_config::SdkConfig, wf_aws::Config) {
    let sdk = moto.sdk_config().await;
    let prefix = format!("{name}-{}", ulid::Ulid::new().to_string().to_lowercase());
    let bootstrap = AwsContext::from_sdk_config(
        &wf_aws::Config::from_lookup(|k| match k {
            "AWS_REGION" => Some("us-east-1".into()),
            "WF_QUEUE_URL" => Some("unused".into()),
            _ => None,
        })
        .unwrap(),
        &sdk,
    );
    let config = ensure(
        &bootstrap.clients,
        &Resources::prefixed(&prefix, Duration::from_secs(30)),
        "us-east-1",
        Some(&moto.endpoint()),
    )
    .await
    .unwrap();
    (sdk, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_and_worker_handlers_run_an_execution_on_aws_adapters() {
    let moto = Moto::start();
    let (sdk, config) = provisioned(&moto, "lam").await;
    let aws = AwsContext::from_sdk_config(&config, &sdk);
    // The webhook's signing secret lives in SSM under the secrets path.
    aws.ssm
        .put_parameter()
        .name("/wf/test/ORDER_ALERT_SECRET")
        .value(SECRET)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let options = AwsOptions {
        secrets_path: Some("/wf/test".into()),
        webhook_base_url: "https://hooks.example".into(),
        allow_private_outbound: false,
        ..AwsOptions::default()
    };
    let worker = aws.app(&options, true).await.unwrap();
    // As the webhook function's main does.
    worker.enable_pure_start();
    let state = AppState::new(worker.clone(), options.webhook_base_url.clone());
    let svc = worker.services();
    let wf: Workflow = serde_json::from_value(order_alert()).unwrap();
    worker.publish(&wf, PublishMode::Always).await.unwrap();
    let meta = worker.activate("order-alert", None).await.unwrap();
    let token = meta.webhook_token.unwrap();

    // The webhook function's router on a function-URL request.
    let body = r#"{"orderId":"A-9","amount":250}"#;
    let now = SystemClock.now_ms() / 1000;
    let headers = sign(
        WebhookScheme::Standard,
        SECRET,
        body.as_bytes(),
        now,
        "msg_aws1",
    )
    .unwrap();
    let escaped = serde_json::to_string(body).unwrap();
    let path = format!("/hooks/order-alert/{token}");
    let text = fixture(
        "function_url_webhook.json",
        &[
            ("PATH", &path),
            ("QUERY", ""),
            ("MSG_ID", &headers[0].1),
            ("TIMESTAMP", &headers[1].1),
            ("SIGNATURE", &headers[2].1),
            ("BODY", &escaped[1..escaped.len() - 1]),
        ],
    );
    let request = lambda_http::request::from_str(&text).unwrap();
    let response = webhook_router(state.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let answer: Value =
        serde_json::from_slice(&to_bytes(response.into_body(), 1 << 20).await.unwrap()).unwrap();
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let id = answer["executionId"].as_str().unwrap().to_string();

    // The webhook's execution is pure from start to end: it ran in the webhook function and was
    // stored finished, with no task for the worker.
    let sqs = &aws.clients.sqs;
    let alerted = json!({ "alerted": true });
    assert_eq!(
        run_worker(sqs, &config.queue_url, &worker, svc, &id, &alerted).await,
        0
    );
    let steps = svc.executions.list_steps(&id).await.unwrap();
    let paths: Vec<&str> = steps.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["start", "check", "big"], "in the order they ran");
    assert!(steps.iter().all(|s| s.status == StepStatus::Succeeded));

    // The trigger handler on the same adapters: a schedule fire creates its execution (a
    // deterministic id: its start is the worker's), and the worker handler runs it, pure steps
    // inline: one task, one batch, for the whole execution.
    let fired = handle_trigger(
        &worker,
        json!({ "workflowId": "order-alert", "scheduledTime": "2026-11-24T09:00:00Z" }),
    )
    .await
    .unwrap();
    let sid = fired["started"][0]["executionId"].as_str().unwrap();
    let exec = svc.executions.get_execution(sid).await.unwrap().unwrap();
    assert_eq!(exec.trigger.kind, "schedule");
    assert_eq!(exec.status, ExecutionStatus::Queued);
    // A fire has no order: not alerted.
    let quiet = json!({ "alerted": false });
    assert_eq!(
        run_worker(sqs, &config.queue_url, &worker, svc, sid, &quiet).await,
        1
    );
    assert_eq!(svc.executions.list_steps(sid).await.unwrap().len(), 3);
}

/// The event source mapping's part: receive, invoke the handler with the SQS event, delete what
/// it acknowledged, until execution `id` is terminal (it must succeed with `output`).
/// Returns how many batches it took.
async fn run_worker(
    sqs: &aws_sdk_sqs::Client, queue_url: &str, worker: &App, svc: &wf_app::services::Services,
    id: &str, output: &Value,
) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut batches = 0;
    loop {
        let exec = svc.executions.get_execution(id).await.unwrap().unwrap();
        if exec.status.is_terminal() {
            assert_eq!(exec.status, ExecutionStatus::Succeeded, "{exec:?}");
            assert_eq!(&exec.output, output);
            return batches;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "execution did not finish: {exec:?}"
        );
        let out = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            continue;
        }
        batches += 1;
        let event = sqs_event(
            &messages,
            "arn:aws:sqs:us-east-1:123456789012:q",
            "us-east-1",
        );
        assert_eq!(event.records[0].attributes["ApproximateReceiveCount"], "1");
        let answer = handle_sqs_batch(worker, event, &BatchSettings::default()).await;
        assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
        for m in &messages {
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(m.receipt_handle.clone().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

/// Drift: a schedule (EventBridge Scheduler) deleted behind the product's back comes back within
/// one sweep (the trigger function's `{"sweep": true}`), and a stale one of a workflow no longer
/// active goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_repairs_trigger_schedules_that_drifted() {
    let moto = Moto::start();
    let (sdk, mut config) = provisioned(&moto, "dr").await;
    config.trigger_target_arn =
        Some("arn:aws:lambda:us-east-1:123456789012:function:drift-trigger".into());
    config.scheduler_role_arn = Some("arn:aws:iam::123456789012:role/drift-scheduler".into());
    let group = config
        .schedule_group
        .clone()
        .expect("provisioned schedule group");
    let aws = AwsContext::from_sdk_config(&config, &sdk);
    let dlq = "arn:aws:sqs:us-east-1:123456789012:wf-trigger-dlq";
    let options = AwsOptions {
        trigger_dead_letter_arn: Some(dlq.into()),
        ..AwsOptions::default()
    };
    let app = aws.app(&options, true).await.unwrap();
    let wf: Workflow = serde_json::from_value(order_alert()).unwrap();
    app.publish(&wf, PublishMode::Always).await.unwrap();
    let meta = app.activate("order-alert", None).await.unwrap();
    assert_eq!(meta.trigger_error, None);

    let scheduler = aws.clients.scheduler.clone();
    let schedules = || {
        let (scheduler, group, prefix) =
            (scheduler.clone(), group.clone(), config.rule_prefix.clone());
        async move {
            scheduler
                .list_schedules()
                .group_name(group)
                .name_prefix(prefix)
                .send()
                .await
                .unwrap()
                .schedules
                .into_iter()
                .filter_map(|s| s.name)
                .collect::<Vec<String>>()
        }
    };
    let before = schedules().await;
    assert_eq!(before.len(), 1, "one schedule: {before:?}");
    // No schedule rule on the default bus any more.
    let rules = aws
        .clients
        .eventbridge
        .list_rules()
        .name_prefix(&config.rule_prefix)
        .send()
        .await
        .unwrap()
        .rules
        .unwrap_or_default();
    assert!(rules.is_empty(), "{rules:?}");

    // Someone deletes it in the console.
    scheduler
        .delete_schedule()
        .group_name(&group)
        .name(&before[0])
        .send()
        .await
        .unwrap();
    assert!(schedules().await.is_empty());

    // One sweep brings it back, targeting the trigger function as the scheduler role.
    let answer = handle_trigger(&app, json!({ "sweep": true }))
        .await
        .unwrap();
    assert!(answer["reconciled"].as_u64().unwrap_or(0) >= 1, "{answer}");
    assert_eq!(schedules().await, before);
    let got = scheduler
        .get_schedule()
        .group_name(&group)
        .name(&before[0])
        .send()
        .await
        .unwrap();
    let t = got.target().expect("target");
    assert_eq!(Some(t.arn()), config.trigger_target_arn.as_deref());
    assert_eq!(Some(t.role_arn()), config.scheduler_role_arn.as_deref());
    assert_eq!(got.schedule_expression_timezone(), Some("UTC"));
    // Failures are never silent: Scheduler retries, then dead-letters what it cannot deliver.
    assert_eq!(
        t.retry_policy().and_then(|r| r.maximum_retry_attempts()),
        Some(wf_aws::eventbridge::TARGET_MAX_RETRIES)
    );
    assert_eq!(t.dead_letter_config().and_then(|d| d.arn()), Some(dlq));

    // A second sweep has nothing to repair.
    let again = handle_trigger(&app, json!({ "sweep": true }))
        .await
        .unwrap();
    assert_eq!(again.get("reconciled"), None, "{again}");

    // Deactivated behind the schedules' back (META only, as a failed sync would leave it): the
    // sweep removes the stale schedule.
    let meta = app.workflow("order-alert").await.unwrap().meta;
    app.write_meta(meta, |m| m.active = false).await.unwrap();
    handle_trigger(&app, json!({ "sweep": true }))
        .await
        .unwrap();
    assert!(schedules().await.is_empty());
}
