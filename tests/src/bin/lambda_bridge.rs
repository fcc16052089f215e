//! The local stand-in for the AWS event sources around `cargo lambda watch` (scripts/lambda-local):
//!
//! * `lambda_bridge setup [PREFIX]`: create the tables, the step queue with its dead-letter queue
//!   (redrive after WF_MAX_RECEIVE_COUNT, default 5) and the event bus on the endpoint in
//!   `WF_AWS_ENDPOINT_URL`/`AWS_ENDPOINT_URL`; print the functions' environment (KEY=VALUE lines,
//!   what `cargo lambda watch --env-file` reads), plus a queue that a rule on the bus fills with
//!   every platform event (`WF_LOCAL_EVENTS_QUEUE_URL`).
//! * `lambda_bridge run INVOKE_URL`: with that environment, feed the worker function SQS batches
//!   and the trigger function due schedules and the sweep through the emulator's invoke
//!   endpoint (`wf_tests::bridge`). Stops on Ctrl-C, SIGTERM or (with `--stdin`) when
//!   standard input closes, and prints the invocations it made as JSON.

use std::io::Read;
use std::time::Duration;

use anyhow::{Context, bail};
use aws_sdk_sqs::types::QueueAttributeName;
use wf_app::aws::AwsContext;
use wf_aws::provision::{Resources, ensure};
use wf_aws::{Config, DynamoStore};
use wf_tests::bridge::{Bridge, BridgeOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WF_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("setup") => setup(args.get(1).map(String::as_str).unwrap_or("wf-local")).await,
        Some("run") => {
            let url = args
                .get(1)
                .context("usage: lambda_bridge run INVOKE_URL [--stdin]")?;
            run(url, args.iter().any(|a| a == "--stdin")).await
        }
        _ => bail!("usage: lambda_bridge setup [PREFIX] | lambda_bridge run INVOKE_URL"),
    }
}

async fn setup(prefix: &str) -> anyhow::Result<()> {
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    let endpoint = std::env::var("WF_AWS_ENDPOINT_URL")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .ok();
    let max_receive: u32 = std::env::var("WF_MAX_RECEIVE_COUNT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let bootstrap = Config {
        region: region.clone(),
        endpoint_url: endpoint.clone(),
        workflows_table: String::new(),
        executions_table: String::new(),
        records_table: String::new(),
        queue_url: String::new(),
        event_bus: String::new(),
        trigger_target_arn: None,
        retention_days: 30,
        rule_prefix: wf_aws::config::DEFAULT_RULE_PREFIX.to_string(),
        schedule_group: None,
        scheduler_role_arn: None,
    };
    let aws = AwsContext::load(&bootstrap).await;
    let config = ensure(
        &aws.clients,
        &Resources::prefixed(prefix, Duration::from_secs(30)),
        &region,
        endpoint.as_deref(),
    )
    .await
    .context("creating tables, queue and bus")?;
    let dlq = aws
        .clients
        .sqs
        .create_queue()
        .queue_name(format!("{prefix}-steps-dlq"))
        .send()
        .await
        .context("creating the dead-letter queue")?
        .queue_url
        .context("no dead-letter queue URL")?;
    let dlq_arn = aws
        .clients
        .sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .context("reading the dead-letter queue's ARN")?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .context("no dead-letter queue ARN")?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive.to_string()
    });
    aws.clients
        .sqs
        .set_queue_attributes()
        .queue_url(&config.queue_url)
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .context("setting the redrive policy")?;
    let events_queue = events_to_queue(&aws, prefix, &config.event_bus).await?;
    for (k, v) in config.to_env() {
        println!("{k}={v}");
    }
    println!("{EVENTS_QUEUE_ENV}={events_queue}");
    println!("WF_DEAD_LETTER_QUEUE_URL={dlq}");
    println!("WF_MAX_RECEIVE_COUNT={max_receive}");
    Ok(())
}

/// Where the bridge reads the platform bus's events (printed by setup).
const EVENTS_QUEUE_ENV: &str = "WF_LOCAL_EVENTS_QUEUE_URL";

/// A queue receiving every event of the platform bus (a rule with an SQS target): what the bridge
/// hands to the trigger function. On AWS, each workflow's own rule targets the trigger instead.
async fn events_to_queue(aws: &AwsContext, prefix: &str, bus: &str) -> anyhow::Result<String> {
    let sqs = &aws.clients.sqs;
    let url = sqs
        .create_queue()
        .queue_name(format!("{prefix}-events"))
        .send()
        .await
        .context("creating the events queue")?
        .queue_url
        .context("no events queue URL")?;
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .context("reading the events queue's ARN")?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .context("no events queue ARN")?;
    let rule = format!("{prefix}-local-bridge");
    let eventbridge = &aws.clients.eventbridge;
    eventbridge
        .put_rule()
        .event_bus_name(bus)
        .name(&rule)
        .event_pattern(r#"{"source": [{"prefix": ""}]}"#)
        .send()
        .await
        .context("creating the events rule")?;
    eventbridge
        .put_targets()
        .event_bus_name(bus)
        .rule(&rule)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("lambda-bridge")
                .arn(arn)
                .build()
                .context("the events rule's target")?,
        )
        .send()
        .await
        .context("targeting the events queue")?;
    Ok(url)
}

async fn run(invoke_url: &str, watch_stdin: bool) -> anyhow::Result<()> {
    let config = Config::from_env().context("reading the configuration (run setup first)")?;
    let aws = AwsContext::load(&config).await;
    let definitions = std::sync::Arc::new(DynamoStore::new(aws.clients.dynamodb.clone(), &config));
    let mut options = BridgeOptions::new(invoke_url, &config.queue_url, &config.region);
    options.events_queue_url = std::env::var(EVENTS_QUEUE_ENV)
        .ok()
        .filter(|u| !u.is_empty());
    let bridge = Bridge::new(options, aws.clients.sqs.clone(), definitions);
    let counts = bridge.invoker.counts.clone();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let handle = tokio::spawn(bridge.run(stopped));
    let stdin_closed = async {
        if watch_stdin {
            let _ = tokio::task::spawn_blocking(|| {
                let mut buf = [0u8; 64];
                let mut stdin = std::io::stdin();
                while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
            })
            .await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = stdin_closed => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    let _ = stop.send(true);
    let _ = handle.await;
    println!("{}", counts.snapshot());
    Ok(())
}
