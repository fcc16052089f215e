//! The deployment template against the adapters: `infra/template.yaml` is transformed offline
//! (aws-sam-translator) and created on moto_server's CloudFormation by
//! `scripts/infra/moto_stack.py` (which removes the resource types moto skips: function URLs,
//! the queue policy, alarms), then
//! * the stack is compared with what the adapters expect: every function's environment read
//!   through `wf_aws::Config` (the very names the Lambdas will read), key schemas, indexes, TTL,
//!   the queue's visibility timeout against the worker's timeout, the dead-letter redrive, the
//!   event source mapping, the sweep rule, and the IAM that rule sync needs;
//! * the port conformance suite runs on the tables, queue and bus the stack created.
//!
//! Each test starts its own moto_server (killed when it ends) and, for checks that need fresh
//! resources, one stack per check on it. Needs python3 with moto[server] and aws-sam-translator.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, KeyType, ProjectionType};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value, json};
use tokio::task::LocalSet;
use wf_aws::dynamo::keys;
use wf_aws::eventbridge::RULE_PREFIX;
use wf_aws::{
    AwsClients, Config, DynamoStore, EventBridgeBus, SqsQueue, TriggerInput, TriggerRules,
    TriggerSchedules, WorkflowTriggers,
};
use wf_tests::conformance::store::RetentionProbe;
use wf_tests::conformance::{bus, queue, store};
use wf_tests::moto::{ACCOUNT, Moto, REGION, RuleProbe, unique_prefix};

/// The four functions of the template (logical ids).
const FUNCTIONS: [&str; 4] = [
    "WebhookFunction",
    "ApiFunction",
    "TriggerFunction",
    "WorkerFunction",
];

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// One stack as moto_stack.py reports it.
#[derive(Debug, Clone)]
struct Stack {
    name: String,
    outputs: HashMap<String, String>,
    resources: HashMap<String, String>,
    report: Value,
}

/// What one run of moto_stack.py created.
struct Created {
    stacks: Vec<Stack>,
    report: Value,
}

/// Create `names` stacks of infra/template.yaml with `parameters` on `moto`.
async fn create_stacks(moto: &Moto, names: &[String], parameters: &[(&str, &str)]) -> Created {
    let root = repo_root();
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(root.join("scripts/infra/moto_stack.py"))
        .arg("--template")
        .arg(root.join("infra/template.yaml"))
        .arg("--endpoint")
        .arg(moto.endpoint())
        .env_remove("WF_MOTO_URL")
        .kill_on_drop(true);
    for name in names {
        cmd.arg("--stack-name").arg(name);
    }
    for (key, value) in parameters {
        cmd.arg("--parameter").arg(format!("{key}={value}"));
    }
    let out = cmd
        .output()
        .await
        .expect("run python3 scripts/infra/moto_stack.py");
    assert!(
        out.status.success(),
        "moto_stack.py failed ({}); needs python3 -m pip install 'moto[server]' aws-sam-translator\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout),
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("moto_stack.py prints JSON");
    let strings = |v: &Value| -> HashMap<String, String> {
        v.as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let stacks = report["stacks"]
        .as_array()
        .expect("stacks")
        .iter()
        .map(|s| {
            assert_eq!(s["status"], "CREATE_COMPLETE", "{s}");
            Stack {
                name: s["name"].as_str().unwrap_or_default().to_string(),
                outputs: strings(&s["outputs"]),
                resources: strings(&s["resources"]),
                report: s.clone(),
            }
        })
        .collect::<Vec<_>>();
    assert_eq!(stacks.len(), names.len());
    Created { stacks, report }
}

/// `https://sqs.<region>.amazonaws.com/<account>/<name>` (what moto's CloudFormation answers for
/// a queue's Ref) as the same queue on the moto endpoint, so no request can leave loopback.
fn queue_on_moto(url: &str, endpoint: &str) -> String {
    let parts: Vec<&str> = url.trim_end_matches('/').rsplitn(3, '/').collect();
    assert!(parts.len() == 3, "queue URL {url}");
    let (name, account) = (parts[0], parts[1]);
    assert_eq!(account, ACCOUNT, "queue URL {url}");
    format!("{endpoint}/{account}/{name}")
}

impl Stack {
    fn output(&self, key: &str) -> &str {
        self.outputs.get(key).unwrap_or_else(|| {
            panic!(
                "stack {} has no output {key}: {:?}",
                self.name, self.outputs
            )
        })
    }

    fn function(&self, logical_id: &str) -> &Value {
        let f = &self.report["functions"][logical_id];
        assert!(
            f.is_object(),
            "stack {} has no function {logical_id}",
            self.name
        );
        f
    }

    /// The environment the function gets from the template.
    fn env(&self, logical_id: &str) -> HashMap<String, String> {
        self.function(logical_id)["environment"]
            .as_object()
            .expect("environment")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect()
    }

    /// The configuration the function would read at start (`Config::from_env`), with what the
    /// Lambda service adds (the region) and the test's own endpoint.
    fn config(&self, logical_id: &str, moto: &Moto) -> Config {
        let env = self.env(logical_id);
        let endpoint = moto.endpoint();
        Config::from_lookup(|name| match name {
            "AWS_REGION" => Some(REGION.to_string()),
            "WF_AWS_ENDPOINT_URL" => Some(endpoint.clone()),
            "WF_QUEUE_URL" => env.get(name).map(|u| queue_on_moto(u, &endpoint)),
            _ => env.get(name).cloned(),
        })
        .unwrap_or_else(|e| panic!("{logical_id}'s environment is not a wf-aws Config: {e}"))
    }

    /// Inline policy statements of a role (logical id), ARNs resolved.
    fn role_statements(&self, logical_id: &str) -> Vec<Value> {
        let policies = self.report["roles"][logical_id]["policies"]
            .as_object()
            .unwrap_or_else(|| panic!("stack {} has no role {logical_id}", self.name));
        policies
            .values()
            .flat_map(|doc| doc["Statement"].as_array().cloned().unwrap_or_default())
            .collect()
    }
}

/// `pattern` with IAM's wildcards (`*` any run, `?` one character) matches `text`.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn strings_of(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether an Allow statement of `statements` grants `action` on `arn`.
fn allows(statements: &[Value], action: &str, arn: &str) -> bool {
    statements.iter().any(|st| grants(st, action, arn))
}

fn grants(st: &Value, action: &str, arn: &str) -> bool {
    st["Effect"] == "Allow"
        && strings_of(&st["Action"]).iter().any(|a| glob(a, action))
        && strings_of(&st["Resource"]).iter().any(|r| glob(r, arn))
}

/// Allowed without a condition (a condition narrows it to some keys).
fn allows_unconditionally(statements: &[Value], action: &str, arn: &str) -> bool {
    statements
        .iter()
        .any(|st| grants(st, action, arn) && st.get("Condition").is_none())
}

// ---------------------------------------------------------------------------------------------
// What moto cannot create or ignores, checked in the transformed template

/// The template after the SAM transform (offline, scripts/infra/sam_translate.py).
async fn transformed_template() -> Value {
    let root = repo_root();
    let out = tokio::process::Command::new("python3")
        .arg(root.join("scripts/infra/sam_translate.py"))
        .arg(root.join("infra/template.yaml"))
        .kill_on_drop(true)
        .output()
        .await
        .expect("run python3 scripts/infra/sam_translate.py");
    assert!(
        out.status.success(),
        "sam_translate.py failed ({}); needs python3 -m pip install aws-sam-translator\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("sam_translate.py prints JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_declares_urls_architecture_and_alarms() {
    let t = transformed_template().await;
    let r = &t["Resources"];
    for f in FUNCTIONS {
        let props = &r[f]["Properties"];
        assert_eq!(r[f]["Type"], "AWS::Lambda::Function", "{f}");
        // moto's CloudFormation drops Architectures: only the template can tell.
        assert_eq!(props["Architectures"], json!(["arm64"]), "{f}");
        assert_eq!(props["Runtime"], "provided.al2023", "{f}");
        assert_eq!(r[f]["Metadata"]["BuildMethod"], "rust-cargolambda", "{f}");
    }
    // Function URLs: the webhook is public; the api follows ApiAuthType, and is made public
    // (both statements a NONE URL needs) only under the ApiIsPublic condition.
    assert_eq!(r["WebhookFunctionUrl"]["Properties"]["AuthType"], "NONE");
    assert_eq!(
        r["WebhookFunctionUrlPublicPermissions"]["Properties"]["FunctionUrlAuthType"],
        "NONE"
    );
    assert_eq!(
        r["WebhookFunctionURLInvokeAllowPublicAccess"]["Properties"]["InvokedViaFunctionUrl"],
        true
    );
    assert_eq!(
        r["ApiFunctionUrl"]["Properties"]["AuthType"],
        json!({ "Ref": "ApiAuthType" })
    );
    assert_eq!(t["Parameters"]["ApiAuthType"]["Default"], "AWS_IAM");
    for p in ["ApiUrlPublicPermission", "ApiUrlInvokePermission"] {
        assert_eq!(r[p]["Condition"], "ApiIsPublic", "{p}");
        assert_eq!(r[p]["Properties"]["Principal"], "*", "{p}");
    }
    assert_eq!(
        r["ApiUrlPublicPermission"]["Properties"]["FunctionUrlAuthType"],
        "NONE"
    );
    assert_eq!(
        r["ApiUrlInvokePermission"]["Properties"]["InvokedViaFunctionUrl"],
        true
    );
    assert_eq!(
        t["Conditions"]["ApiIsPublic"],
        json!({ "Fn::Equals": [{ "Ref": "ApiAuthType" }, "NONE"] })
    );
    assert_eq!(
        t["Outputs"]["WebhookBaseUrl"]["Value"],
        json!({ "Fn::GetAtt": ["WebhookFunctionUrl", "FunctionUrl"] })
    );
    assert_eq!(
        t["Outputs"]["ApiUrl"]["Value"],
        json!({ "Fn::GetAtt": ["ApiFunctionUrl", "FunctionUrl"] })
    );
    // Failures are never silent: every queue of failed work has an alarm; the trigger
    // function's asynchronous invocations and the sweep rule's target dead-letter (trigger
    // rules made at run time get the same through WF_TRIGGER_DLQ_ARN, see lambda_aws.rs).
    for (queue, alarm) in [
        ("StepDeadLetterQueue", "DeadLetterQueueAlarm"),
        ("TriggerDeadLetterQueue", "TriggerDeadLetterQueueAlarm"),
    ] {
        assert_eq!(
            r[alarm]["Properties"]["Dimensions"][0]["Value"],
            json!({ "Fn::GetAtt": [queue, "QueueName"] }),
            "{alarm}"
        );
    }
    let trigger_dlq = json!({ "Fn::GetAtt": ["TriggerDeadLetterQueue", "Arn"] });
    assert_eq!(
        r["TriggerFunction"]["Properties"]["DeadLetterConfig"]["TargetArn"],
        trigger_dlq
    );
    let sweep_target = &r["TriggerFunctionSweep"]["Properties"]["Targets"][0];
    assert_eq!(sweep_target["DeadLetterConfig"]["Arn"], trigger_dlq);
    assert!(sweep_target["RetryPolicy"]["MaximumRetryAttempts"].is_number());
    for f in ["ApiFunction", "TriggerFunction"] {
        assert_eq!(
            r[f]["Properties"]["Environment"]["Variables"]["WF_TRIGGER_DLQ_ARN"], trigger_dlq,
            "{f}"
        );
    }
    // Alarms: dead-letter queue depth and worker errors.
    let dlq = &r["DeadLetterQueueAlarm"]["Properties"];
    assert_eq!(dlq["Namespace"], "AWS/SQS");
    assert_eq!(dlq["MetricName"], "ApproximateNumberOfMessagesVisible");
    assert_eq!(
        dlq["Dimensions"][0]["Value"],
        json!({ "Fn::GetAtt": ["StepDeadLetterQueue", "QueueName"] })
    );
    let errors = &r["WorkerErrorsAlarm"]["Properties"];
    assert_eq!(errors["Namespace"], "AWS/Lambda");
    assert_eq!(errors["MetricName"], "Errors");
    assert_eq!(
        errors["Dimensions"][0]["Value"],
        json!({ "Ref": "WorkerFunction" })
    );
    // The sweep alarms watch the metric the trigger function logs (EMF, wf_app::metrics).
    for alarm in ["SweepLagAlarm", "SweepMissingAlarm"] {
        let p = &r[alarm]["Properties"];
        assert_eq!(p["Namespace"], wf_app::metrics::EMF_NAMESPACE, "{alarm}");
        assert_eq!(
            p["MetricName"],
            wf_app::metrics::emf_name("wf_sweep_lag_ms"),
            "{alarm}"
        );
        assert_eq!(p["Dimensions"][0]["Name"], "Function", "{alarm}");
        assert_eq!(
            p["Dimensions"][0]["Value"],
            wf_app::lambda::Function::Trigger.name(),
            "{alarm}"
        );
    }
    let incomplete = &r["SweepIncompleteAlarm"]["Properties"];
    assert_eq!(incomplete["Namespace"], wf_app::metrics::EMF_NAMESPACE);
    assert_eq!(
        incomplete["MetricName"],
        wf_app::metrics::emf_name("wf_sweep_incomplete_total")
    );
    assert_eq!(
        incomplete["Dimensions"][0]["Value"],
        wf_app::lambda::Function::Trigger.name()
    );
    assert_eq!(incomplete["Dimensions"][1]["Value"], "budget");
    // The queue policy refuses plain HTTP on both queues.
    let policy = &r["StepQueuesPolicy"]["Properties"]["PolicyDocument"]["Statement"][0];
    assert_eq!(policy["Effect"], "Deny");
    assert_eq!(policy["Condition"]["Bool"]["aws:SecureTransport"], "false");
    // Visibility >= 6x the worker timeout for every timeout the template allows.
    let allowed = t["Parameters"]["WorkerTimeoutSeconds"]["AllowedValues"]
        .as_array()
        .expect("allowed timeouts");
    for timeout in allowed {
        let timeout = timeout.as_str().expect("string");
        let visibility = t["Mappings"]["WorkerQueue"][timeout]["VisibilityTimeout"]
            .as_i64()
            .unwrap_or_else(|| panic!("no visibility for worker timeout {timeout}"));
        let secs: i64 = timeout.parse().expect("seconds");
        assert!(
            visibility >= 6 * secs,
            "visibility {visibility} for timeout {secs}"
        );
        assert!(visibility <= 43_200, "SQS allows at most 12 h");
    }
}

// ---------------------------------------------------------------------------------------------
// The stack against the adapters

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_matches_what_the_adapters_and_functions_expect() {
    let moto = Moto::start();
    let name = unique_prefix("infra");
    let created = create_stacks(
        &moto,
        std::slice::from_ref(&name),
        &[
            ("ExecutionRetentionDays", "7"),
            ("WorkerTimeoutSeconds", "60"),
            ("WorkerMaxConcurrency", "4"),
            ("WorkerReservedConcurrency", "8"),
        ],
    )
    .await;
    let stack = &created.stacks[0];
    let clients = moto.clients(None).await;

    // What moto could not create is only what it cannot: URLs, the queue policy, alarms.
    for id in [
        "WorkflowsTable",
        "ExecutionsTable",
        "RecordsTable",
        "StepQueue",
        "StepDeadLetterQueue",
        "TriggerDeadLetterQueue",
        "EventBus",
        "WebhookFunction",
        "ApiFunction",
        "TriggerFunction",
        "WorkerFunction",
        "WebhookRole",
        "ApiRole",
        "TriggerRole",
        "WorkerRole",
        "WorkerFunctionSteps",
        "TriggerFunctionSweep",
        "TriggerScheduleRulesPermission",
        "TriggerEventRulesPermission",
    ] {
        assert!(
            stack.resources.contains_key(id),
            "{id} was not created: {:?}",
            created.report["skipped"]
        );
    }
    let skipped: Vec<&String> = created.report["skipped"]
        .as_object()
        .expect("skipped")
        .keys()
        .collect();
    for id in &skipped {
        assert!(
            id.ends_with("Url")
                || id.starts_with("Outputs.")
                || id.ends_with("Alarm")
                || id.ends_with("QueuePolicy")
                || *id == "StepQueuesPolicy"
                // No model in moto's CloudFormation: moto_stack.py creates it through the
                // Scheduler API (checked below).
                || *id == "ScheduleGroup",
            "unexpectedly skipped on moto: {id}: {}",
            created.report["skipped"]
        );
    }

    // Every function reads one and the same configuration, named as the outputs say.
    let worker = stack.config("WorkerFunction", &moto);
    assert_eq!(worker.workflows_table, stack.output("WorkflowsTableName"));
    assert_eq!(worker.executions_table, stack.output("ExecutionsTableName"));
    assert_eq!(worker.records_table, stack.output("RecordsTableName"));
    assert_eq!(
        worker.queue_url,
        queue_on_moto(stack.output("StepQueueUrl"), &moto.endpoint())
    );
    assert_eq!(worker.event_bus, stack.output("EventBusName"));
    assert_eq!(
        worker.retention_days, 7,
        "ExecutionRetentionDays reaches WF_RETENTION_DAYS"
    );
    assert_eq!(worker.trigger_target_arn, None);
    for f in FUNCTIONS {
        let config = stack.config(f, &moto);
        assert_eq!(
            Config {
                trigger_target_arn: None,
                schedule_group: None,
                scheduler_role_arn: None,
                ..config.clone()
            },
            worker,
            "{f} reads the same resources"
        );
        let meta = stack.function(f);
        assert_eq!(meta["runtime"], "provided.al2023", "{f}");
        assert_eq!(meta["handler"], "bootstrap", "{f}");
    }
    let api = stack.config("ApiFunction", &moto);
    assert_eq!(
        api.trigger_target_arn.as_deref(),
        Some(stack.output("TriggerFunctionArn"))
    );
    // Schedules: the api and the trigger function sync them in the stack's group, as the
    // stack's scheduler role; the others never touch them.
    for f in ["ApiFunction", "TriggerFunction"] {
        let c = stack.config(f, &moto);
        assert_eq!(
            c.schedule_group.as_deref(),
            Some(stack.output("ScheduleGroupName")),
            "{f}"
        );
        assert_eq!(
            c.scheduler_role_arn.as_deref(),
            Some(stack.output("SchedulerRoleArn")),
            "{f}"
        );
    }
    assert_eq!(worker.schedule_group, None);
    let api_env = stack.env("ApiFunction");
    assert_eq!(
        api_env["WF_RULE_PREFIX"], RULE_PREFIX,
        "the template's RulePrefix is the rule sync's"
    );
    assert_eq!(api_env["WF_API_AUTH"], "iam");
    assert_eq!(api_env["WF_API_TOKEN_PARAMETER"], "/wf/dev/api-token");
    assert_eq!(stack.env("WorkerFunction")["WF_SECRETS_PATH"], "/wf/dev");

    // Tables: the adapters' keys, indexes and TTL attribute.
    let ddb = &clients.dynamodb;
    let key_of = |t: &aws_sdk_dynamodb::types::TableDescription| -> Vec<(String, KeyType)> {
        t.key_schema()
            .iter()
            .map(|k| (k.attribute_name().to_string(), k.key_type().clone()))
            .collect()
    };
    for (table, pk, sk) in [
        (&worker.workflows_table, keys::WORKFLOWS_PK, keys::SK),
        (&worker.executions_table, keys::EXECUTIONS_PK, keys::SK),
        (&worker.records_table, keys::RECORDS_PK, keys::RECORDS_SK),
    ] {
        let t = ddb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .expect("describe table")
            .table
            .expect("table");
        assert_eq!(
            key_of(&t),
            [
                (pk.to_string(), KeyType::Hash),
                (sk.to_string(), KeyType::Range)
            ],
            "{table}"
        );
        assert_eq!(
            t.billing_mode_summary()
                .and_then(|b| b.billing_mode())
                .map(|m| m.as_str()),
            Some("PAY_PER_REQUEST"),
            "{table} is on-demand"
        );
        let pitr = ddb
            .describe_continuous_backups()
            .table_name(table)
            .send()
            .await
            .expect("describe backups");
        let status = pitr
            .continuous_backups_description()
            .and_then(|d| d.point_in_time_recovery_description())
            .and_then(|p| p.point_in_time_recovery_status())
            .map(|s| s.as_str().to_string());
        assert_eq!(
            status.as_deref(),
            Some("ENABLED"),
            "{table} has point-in-time recovery"
        );
    }
    let executions = ddb
        .describe_table()
        .table_name(&worker.executions_table)
        .send()
        .await
        .expect("describe executions")
        .table
        .expect("table");
    let mut indexes: Vec<(String, Vec<String>, Option<String>)> = executions
        .global_secondary_indexes()
        .iter()
        .map(|i| {
            (
                i.index_name().unwrap_or_default().to_string(),
                i.key_schema()
                    .iter()
                    .map(|k| k.attribute_name().to_string())
                    .collect(),
                i.projection()
                    .and_then(|p| p.projection_type())
                    .map(|p| p.as_str().to_string()),
            )
        })
        .collect();
    indexes.sort();
    let keys_only = Some(ProjectionType::KeysOnly.as_str().to_string());
    // The template's indexes are the ones the store reads (and the tests' tables have).
    let mut expected: Vec<(String, Vec<String>, Option<String>)> = [
        (keys::BY_LIVE_INDEX, keys::LIVE_SHARD_ATTR),
        (keys::BY_START_INDEX, keys::ENTITY_ATTR),
        (keys::BY_WORKFLOW_INDEX, keys::WORKFLOW_ID_ATTR),
        (keys::BY_STATUS_INDEX, keys::STATUS_SHARD_ATTR),
        (keys::BY_TRIGGER_INDEX, keys::TRIGGER_SHARD_ATTR),
        (keys::BY_WORKFLOW_STATUS_INDEX, keys::WORKFLOW_STATUS_ATTR),
        (keys::BY_WORKFLOW_TRIGGER_INDEX, keys::WORKFLOW_TRIGGER_ATTR),
    ]
    .into_iter()
    .map(|(name, pk)| {
        (
            name.to_string(),
            vec![pk.to_string(), keys::STARTED_KEY_ATTR.to_string()],
            keys_only.clone(),
        )
    })
    .collect();
    expected.sort();
    assert_eq!(indexes, expected);
    let ttl = ddb
        .describe_time_to_live()
        .table_name(&worker.executions_table)
        .send()
        .await
        .expect("describe TTL")
        .time_to_live_description
        .expect("TTL");
    assert_eq!(ttl.attribute_name(), Some(keys::TTL_ATTRIBUTE));
    assert_eq!(
        ttl.time_to_live_status().map(|s| s.as_str()),
        Some("ENABLED")
    );

    // The step queue: visibility >= 6x the worker's timeout, redrive to the dead-letter queue.
    let worker_timeout = stack.function("WorkerFunction")["timeout"]
        .as_i64()
        .expect("timeout");
    assert_eq!(worker_timeout, 60);
    let attrs = |url: String| {
        let sqs = clients.sqs.clone();
        async move {
            sqs.get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::All)
                .send()
                .await
                .expect("queue attributes")
                .attributes
                .unwrap_or_default()
        }
    };
    let step_attrs = attrs(worker.queue_url.clone()).await;
    let dlq_attrs = attrs(queue_on_moto(
        stack.output("DeadLetterQueueUrl"),
        &moto.endpoint(),
    ))
    .await;
    let visibility: i64 = step_attrs[&QueueAttributeName::VisibilityTimeout]
        .parse()
        .expect("number");
    assert!(
        visibility >= 6 * worker_timeout,
        "visibility {visibility} s < 6 x {worker_timeout} s"
    );
    assert_eq!(visibility, 6 * worker_timeout);
    let redrive: Value = serde_json::from_str(&step_attrs[&QueueAttributeName::RedrivePolicy])
        .expect("redrive JSON");
    assert_eq!(
        redrive["deadLetterTargetArn"],
        dlq_attrs[&QueueAttributeName::QueueArn].as_str()
    );
    assert_eq!(
        redrive["maxReceiveCount"].to_string().trim_matches('"'),
        "5"
    );
    assert_eq!(
        dlq_attrs[&QueueAttributeName::MessageRetentionPeriod],
        "1209600"
    );

    // The worker's event source: the step queue, partial batch failures, bounded concurrency.
    let mappings = stack.report["event_source_mappings"]
        .as_array()
        .expect("mappings");
    assert_eq!(mappings.len(), 1, "{mappings:?}");
    let m = &mappings[0];
    assert_eq!(m["function"], "WorkerFunction");
    assert_eq!(m["event_source_arn"], stack.output("StepQueueArn"));
    assert_eq!(
        m["function_response_types"],
        json!(["ReportBatchItemFailures"])
    );
    assert_eq!(m["maximum_concurrency"], 4);
    assert_eq!(m["batch_size"], 10);
    assert_eq!(stack.function("WorkerFunction")["reserved_concurrency"], 8);
    for f in ["WebhookFunction", "ApiFunction", "TriggerFunction"] {
        assert_eq!(
            stack.function(f)["reserved_concurrency"],
            Value::Null,
            "{f} reserves nothing by default"
        );
    }

    // The bus, and the sweep rule: every minute on the default bus, into the trigger function.
    let eb = &clients.eventbridge;
    eb.describe_event_bus()
        .name(&worker.event_bus)
        .send()
        .await
        .expect("the platform bus exists");
    let trigger_arn = stack.output("TriggerFunctionArn").to_string();
    let sweep = eb
        .describe_rule()
        .name(stack.output("SweepRuleName"))
        .send()
        .await
        .expect("sweep rule");
    assert_eq!(sweep.schedule_expression(), Some("rate(1 minute)"));
    assert_eq!(sweep.state().map(|s| s.as_str()), Some("ENABLED"));
    let targets = eb
        .list_targets_by_rule()
        .rule(stack.output("SweepRuleName"))
        .send()
        .await
        .expect("sweep targets")
        .targets
        .unwrap_or_default();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].arn(), trigger_arn);
    let input: Value = serde_json::from_str(targets[0].input().unwrap_or("null")).expect("input");
    assert_eq!(input, json!({ "sweep": true }));
    assert!(
        TriggerInput::parse(&input).is_none(),
        "a sweep is not a workflow trigger"
    );

    // Trigger sync with the api's configuration: the event rule it makes is within the api
    // role's rule permissions and may invoke the trigger function; the sweep rule is outside
    // both; the schedule is a Scheduler schedule in the stack's group (below).
    let group = api.schedule_group.clone().expect("schedule group");
    let scheduler_role = api.scheduler_role_arn.clone().expect("scheduler role");
    let rules = WorkflowTriggers::new(
        TriggerRules::new(
            eb.clone(),
            &api.event_bus,
            api.trigger_target_arn.clone().expect("trigger target"),
        ),
        Some(TriggerSchedules::new(
            clients.scheduler.clone(),
            &group,
            api.trigger_target_arn.clone().expect("trigger target"),
            &scheduler_role,
        )),
    );
    let workflow = serde_json::from_value(json!({
        "id": "infra-probe",
        "steps": [ { "id": "start", "type": "start", "triggers": [
            { "type": "schedule", "cron": "0 9 * * 1-5" },
            { "type": "event", "event": "order.created" } ] } ]
    }))
    .expect("workflow");
    let report = rules
        .sync("infra-probe", Some(&workflow))
        .await
        .expect("sync rules");
    assert_eq!(report.created.len(), 2, "{report:?}");
    let api_statements = stack.role_statements("ApiRole");
    let trigger_policy = stack.function("TriggerFunction")["policy_statements"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let invokable = |rule_arn: &str| {
        trigger_policy.iter().any(|st| {
            st["Effect"] == "Allow"
                && st["Principal"]["Service"] == "events.amazonaws.com"
                && strings_of(&st["Action"])
                    .iter()
                    .any(|a| a == "lambda:InvokeFunction")
                && st["Condition"]["ArnLike"]["AWS:SourceArn"]
                    .as_str()
                    .is_some_and(|p| glob(p, rule_arn))
        })
    };
    for (rule, bus) in [(
        format!("{RULE_PREFIX}infra-probe-ev"),
        api.event_bus.clone(),
    )] {
        assert!(report.created.contains(&rule), "{rule} in {report:?}");
        let described = eb
            .describe_rule()
            .name(&rule)
            .event_bus_name(&bus)
            .send()
            .await
            .expect("describe synced rule");
        let arn = described.arn().expect("rule arn").to_string();
        for action in [
            "events:PutRule",
            "events:DeleteRule",
            "events:DescribeRule",
            "events:PutTargets",
            "events:RemoveTargets",
            "events:ListTargetsByRule",
        ] {
            assert!(
                allows(&api_statements, action, &arn),
                "api role lacks {action} on {arn}"
            );
        }
        assert!(allows(&api_statements, "events:ListRules", "*"));
        assert!(
            invokable(&arn),
            "rule {arn} may not invoke the trigger function"
        );
    }
    // The schedule: within the api role's schedule permissions (and the role it passes, to
    // Scheduler only); the scheduler role may invoke the trigger function and dead-letter.
    let name = format!("{RULE_PREFIX}infra-probe-s0");
    assert!(report.created.contains(&name), "{name} in {report:?}");
    let schedule = clients
        .scheduler
        .get_schedule()
        .group_name(&group)
        .name(&name)
        .send()
        .await
        .expect("the schedule is in the stack's group");
    let schedule_arn = schedule.arn().expect("schedule arn").to_string();
    for action in [
        "scheduler:CreateSchedule",
        "scheduler:UpdateSchedule",
        "scheduler:DeleteSchedule",
        "scheduler:GetSchedule",
    ] {
        assert!(
            allows(&api_statements, action, &schedule_arn),
            "api role lacks {action} on {schedule_arn}"
        );
    }
    assert!(allows(&api_statements, "scheduler:ListSchedules", "*"));
    assert!(
        !allows(
            &api_statements,
            "scheduler:CreateSchedule",
            &schedule_arn.replace(&format!("/{group}/"), "/default/")
        ),
        "only the stack's group"
    );
    let pass = api_statements
        .iter()
        .find(|st| grants(st, "iam:PassRole", &scheduler_role))
        .expect("the api may pass the scheduler role");
    assert_eq!(
        pass["Condition"]["StringEquals"]["iam:PassedToService"],
        "scheduler.amazonaws.com"
    );
    assert!(
        !allows(
            &api_statements,
            "iam:PassRole",
            &format!("arn:aws:iam::{ACCOUNT}:role/admin")
        ),
        "no other role is passed"
    );
    let target = schedule.target().expect("target");
    assert_eq!(target.role_arn(), scheduler_role);
    let scheduler_statements = stack.role_statements("SchedulerRole");
    assert!(allows(
        &scheduler_statements,
        "lambda:InvokeFunction",
        target.arn()
    ));
    let trigger_dlq_arn = format!(
        "arn:aws:sqs:{REGION}:{ACCOUNT}:{}",
        stack
            .output("TriggerDeadLetterQueueUrl")
            .rsplit('/')
            .next()
            .unwrap_or_default()
    );
    assert!(allows(
        &scheduler_statements,
        "sqs:SendMessage",
        &trigger_dlq_arn
    ));
    // The move from schedule rules: the api may remove a rule-based schedule (default bus,
    // RulePrefix), never make one; those rules still reach the trigger function until moved.
    let old_rule = format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/{name}");
    for action in [
        "events:DeleteRule",
        "events:RemoveTargets",
        "events:ListTargetsByRule",
    ] {
        assert!(allows(&api_statements, action, &old_rule), "{action}");
    }
    for action in ["events:PutRule", "events:PutTargets"] {
        assert!(!allows(&api_statements, action, &old_rule), "{action}");
    }
    assert!(invokable(&old_rule), "an old schedule rule until moved");
    let sweep_arn = sweep.arn().expect("sweep arn");
    assert!(
        !allows(&api_statements, "events:PutRule", sweep_arn),
        "the sweep rule is outside RulePrefix"
    );
    assert!(
        invokable(sweep_arn),
        "the sweep rule invokes the trigger function"
    );

    // Least privilege: only the api role manages rules; "*" only where IAM has no resource.
    for role in ["WebhookRole", "ApiRole", "TriggerRole", "WorkerRole"] {
        let statements = stack.role_statements(role);
        assert!(!statements.is_empty(), "{role} has a policy");
        for st in &statements {
            let actions = strings_of(&st["Action"]);
            assert!(
                actions.iter().all(|a| !a.ends_with(":*")),
                "{role}: wildcard action in {st}"
            );
            // Only the list actions IAM has no resource type for.
            if strings_of(&st["Resource"]).iter().any(|r| r == "*") {
                assert!(
                    actions == ["events:ListRules"] || actions == ["scheduler:ListSchedules"],
                    "{role}: Resource * in {st}"
                );
            }
            // The api syncs rules on activation, the trigger's sweep reconciles them; the
            // webhook and the worker never change rules.
            if !["ApiRole", "TriggerRole"].contains(&role) {
                assert!(
                    !actions
                        .iter()
                        .any(|a| a.starts_with("events:") && a != "events:PutEvents"),
                    "{role} must not manage rules: {st}"
                );
                assert!(
                    !actions
                        .iter()
                        .any(|a| a.starts_with("scheduler:") || a == "iam:PassRole"),
                    "{role} must not manage schedules: {st}"
                );
            }
        }
    }
    // Writes per role: the webhook and trigger start executions but never touch records; the
    // api keeps the AI chat history in the records table's `_chat` partition and nothing else
    // (it was denied the table altogether, so generate and chat failed on AWS).
    let records_arn = format!(
        "arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{}",
        worker.records_table
    );
    for role in ["WebhookRole", "TriggerRole"] {
        assert!(
            !allows(
                &stack.role_statements(role),
                "dynamodb:PutItem",
                &records_arn
            ),
            "{role}"
        );
    }
    let api = stack.role_statements("ApiRole");
    assert!(!allows_unconditionally(
        &api,
        "dynamodb:PutItem",
        &records_arn
    ));
    for action in [
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
    ] {
        let st = api
            .iter()
            .find(|st| grants(st, action, &records_arn))
            .unwrap_or_else(|| panic!("ApiRole cannot {action} the chat history"));
        assert_eq!(
            st["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"],
            serde_json::json!(["_chat"]),
            "{st}"
        );
    }
    assert!(allows(
        &stack.role_statements("WorkerRole"),
        "dynamodb:PutItem",
        &records_arn
    ));
}

// ---------------------------------------------------------------------------------------------
// The conformance suite on the stack's resources

/// Reads the raw TTL attribute of every item of an execution.
struct TtlProbe {
    store: DynamoStore,
}

#[async_trait]
impl RetentionProbe for TtlProbe {
    async fn expiries(&self, execution_id: &str) -> Vec<(String, Option<i64>)> {
        let out = self
            .store
            .client()
            .query()
            .table_name(self.store.executions_table())
            .key_condition_expression("#pk = :id")
            .expression_attribute_names("#pk", keys::EXECUTIONS_PK)
            .expression_attribute_values(":id", AttributeValue::S(execution_id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .expect("query items");
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(|item| {
                let sk = match item.get(keys::SK) {
                    Some(AttributeValue::S(s)) => s.clone(),
                    other => panic!("item without sk: {other:?}"),
                };
                let ttl = match item.get(keys::TTL_ATTRIBUTE) {
                    Some(AttributeValue::N(n)) => n.parse().ok(),
                    _ => None,
                };
                (sk, ttl)
            })
            .collect()
    }
}

/// Wait for `checks` (tasks of one LocalSet: some checks' futures are not Send), each on its
/// own stack; panic naming every check that failed.
async fn run_all(checks: Vec<(&'static str, tokio::task::JoinHandle<()>)>) {
    let mut failed = Vec::new();
    for (name, handle) in checks {
        if let Err(e) = handle.await {
            failed.push(format!("{name}: {e}"));
        }
    }
    assert!(
        failed.is_empty(),
        "conformance checks failed on the stack's resources:\n{}",
        failed.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_conformance_on_the_stack_tables() {
    const CHECKS: [&str; 12] = [
        "claim_semantics",
        "finish_step_once",
        "list_steps_and_delete",
        "update_execution_until_terminal",
        "dedupe_keys",
        "list_executions_pages",
        "list_iterations_in_index_order",
        "definitions",
        "records",
        "payload_limit",
        "loop_join_counts_each_iteration_once",
        "retention_marks_every_item",
    ];
    let moto = Moto::start();
    let names: Vec<String> = CHECKS.iter().map(|_| unique_prefix("st")).collect();
    let created = create_stacks(&moto, &names, &[("ExecutionRetentionDays", "9")]).await;
    let clients = moto.clients(None).await;
    let local = LocalSet::new();
    let mut checks = Vec::new();
    for (check, stack) in CHECKS.into_iter().zip(&created.stacks) {
        // The worker's view: it is the function that uses all three tables.
        let config = stack.config("WorkerFunction", &moto);
        let store = DynamoStore::new(clients.dynamodb.clone(), &config);
        let handle = local.spawn_local(async move {
            match check {
                "claim_semantics" => store::claim_semantics(&store).await,
                "finish_step_once" => store::finish_step_once(&store).await,
                "list_steps_and_delete" => store::list_steps_and_delete(&store).await,
                "update_execution_until_terminal" => {
                    store::update_execution_until_terminal(&store).await
                }
                "dedupe_keys" => store::dedupe_keys(&store).await,
                "list_executions_pages" => store::list_executions_pages(&store).await,
                "list_iterations_in_index_order" => {
                    store::list_iterations_in_index_order(&store).await
                }
                "definitions" => store::definitions(&store).await,
                "records" => store::records(&store).await,
                "payload_limit" => store::payload_limit(&store).await,
                "loop_join_counts_each_iteration_once" => {
                    store::loop_join_counts_each_iteration_once(Arc::new(store)).await
                }
                "retention_marks_every_item" => {
                    assert_eq!(
                        store.retention_days(),
                        9,
                        "ExecutionRetentionDays reaches the store"
                    );
                    let probe = TtlProbe {
                        store: store.clone(),
                    };
                    store::retention_marks_every_item(&store, &probe, 9).await
                }
                other => unreachable!("{other}"),
            }
        });
        checks.push((check, handle));
    }
    local.run_until(run_all(checks)).await;
}

/// Whole seconds: the shortest SQS visibility timeout that is useful.
const SHORT_VISIBILITY: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_conformance_on_the_stack_queue() {
    const CHECKS: [&str; 5] = [
        "delay_is_honoured",
        "batch_send",
        "receive_wakes_on_send",
        "redelivery_and_stale_receipts",
        "durable_across_reopen",
    ];
    let moto = Moto::start();
    let names: Vec<String> = CHECKS.iter().map(|_| unique_prefix("q")).collect();
    let created = create_stacks(&moto, &names, &[]).await;
    let clients = moto.clients(None).await;
    let sdk = moto.sdk_config().await;
    let local = LocalSet::new();
    let mut checks = Vec::new();
    for (check, stack) in CHECKS.into_iter().zip(&created.stacks) {
        let config = stack.config("WorkerFunction", &moto);
        if matches!(
            check,
            "redelivery_and_stale_receipts" | "durable_across_reopen"
        ) {
            // The stack's visibility (6x the worker's timeout, 12 min by default) would make these
            // checks wait that long: only this attribute is lowered; the redrive policy stays.
            clients
                .sqs
                .set_queue_attributes()
                .queue_url(&config.queue_url)
                .attributes(
                    QueueAttributeName::VisibilityTimeout,
                    SHORT_VISIBILITY.as_secs().to_string(),
                )
                .send()
                .await
                .expect("lower the visibility timeout");
        }
        let q = SqsQueue::new(clients.sqs.clone(), &config.queue_url);
        let sdk = sdk.clone();
        let handle = local.spawn_local(async move {
            match check {
                "delay_is_honoured" => queue::delay_is_honoured(&q, Duration::from_secs(2)).await,
                "batch_send" => queue::batch_send(&q).await,
                "receive_wakes_on_send" => queue::receive_wakes_on_send(Arc::new(q)).await,
                "redelivery_and_stale_receipts" => {
                    queue::redelivery_and_stale_receipts(&q, SHORT_VISIBILITY).await
                }
                "durable_across_reopen" => {
                    queue::durable_across_reopen(
                        move || {
                            // New clients each time: what survives is what the services kept.
                            let clients = AwsClients::from_sdk_config(&sdk, None);
                            let store = DynamoStore::new(clients.dynamodb.clone(), &config);
                            let q = SqsQueue::new(clients.sqs, &config.queue_url);
                            async move { (Arc::new(store), q) }
                        },
                        SHORT_VISIBILITY,
                    )
                    .await
                }
                other => unreachable!("{other}"),
            }
        });
        checks.push((check, handle));
    }
    local.run_until(run_all(checks)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_conformance_on_the_stack_bus() {
    let moto = Moto::start();
    let name = unique_prefix("bus");
    let created = create_stacks(&moto, std::slice::from_ref(&name), &[]).await;
    let stack = &created.stacks[0];
    // The worker publishes (event.emit, record changes): its configuration names the bus.
    let config = stack.config("WorkerFunction", &moto);
    assert_eq!(config.event_bus, stack.output("EventBusName"));
    let clients = moto.clients(None).await;
    let bus = EventBridgeBus::new(clients.eventbridge.clone(), &config.event_bus);
    let mut probe = RuleProbe::new(&clients, &config.event_bus).await;
    bus::routes_by_type(&bus, &mut probe).await;
}

#[test]
fn glob_follows_iam_wildcards() {
    assert!(glob(
        "arn:aws:events:r:1:rule/wf-*",
        "arn:aws:events:r:1:rule/wf-a-s0"
    ));
    assert!(glob(
        "arn:aws:events:r:1:rule/b/wf-*",
        "arn:aws:events:r:1:rule/b/wf-a-ev"
    ));
    assert!(!glob(
        "arn:aws:events:r:1:rule/wf-*",
        "arn:aws:events:r:1:rule/sweep-x"
    ));
    assert!(glob("*", "anything"));
    assert!(glob("a?c", "abc"));
    assert!(!glob("a?c", "abbc"));
    assert_eq!(
        queue_on_moto(
            "https://sqs.us-east-1.amazonaws.com/123456789012/x-StepQueue-1",
            "http://127.0.0.1:9"
        ),
        "http://127.0.0.1:9/123456789012/x-StepQueue-1"
    );
}
