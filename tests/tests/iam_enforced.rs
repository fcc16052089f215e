//! Least privilege, proven: the stack of `infra/template.yaml` on moto_server with IAM enforced,
//! each function working with the credentials of its own template role.
//!
//! 1. The stack is created on moto's CloudFormation (`scripts/infra/moto_stack.py`, as in
//!    `infra_stack.rs`), the SSM secrets are put, and each of the four roles the stack created
//!    is assumed through STS (`Moto::assume_role`); then `Moto::enforce_iam` turns enforcement
//!    on: from there every request is authorized against the caller's policies, and the
//!    default credentials are refused as unknown.
//! 2. Each function is built as its Lambda init builds it (`AwsContext` from its own
//!    environment in the stack, `AwsContext::app`, secrets from SSM for the webhook and the
//!    worker), on its role's credentials, with an SDK interceptor recording every call, and does
//!    what it does on AWS through the same use cases and Lambda handlers:
//!    * api: creates, publishes and activates a workflow (the schedule on EventBridge Scheduler,
//!      the event rule, and the removal of an old schedule rule the rule-based design left), chats about
//!      it (the AI chat history in the records table, the model on wiremock), reads the history
//!      and forgets it, publishes a platform event, reruns, test-runs, runs and cancels, stores
//!      webhook secrets, rotates the token, takes a second workflow through activation,
//!      deactivation and deletion, lists the executions;
//!    * webhook: a signed webhook (secret from SSM) starts an execution, its repeat is deduped;
//!    * worker: the SQS event source's part (receive, delete) and `handle_sqs_batch` run the
//!      executions to the end: step records, a loop, `record.*` actions, `event.emit`;
//!    * trigger: a schedule fire, an event routed by a rule, an event envelope, the sweep with its
//!      reconcile of a schedule deleted behind the product's back (clearing `triggerError`).
//!
//!    All of it must succeed.
//! 3. Refusals: what a function must not do fails with `AccessDeniedException` (the webhook
//!    cannot write definitions, records or events; the worker cannot change rules, schedules or
//!    definitions; the trigger cannot delete definitions, write records or take step tasks; the
//!    api cannot take step tasks or read the workflows' secrets).
//! 4. The evaluator: every recorded call is turned into the IAM action(s) and resource ARN(s)
//!    it needs (DynamoDB transactions per item, batches per table, SQS batches as their single
//!    action, the `dynamodb:LeadingKeys` of every item key) and evaluated against the role's
//!    policy documents as the stack holds them (IAM GetRolePolicy; no managed policy is
//!    attached): an explicit Deny refuses, else an Allow whose action, resource and conditions
//!    all match. Every call of the real work must be allowed; the call moto refused in each
//!    refusal of step 3 must be refused by the evaluator too. The calls made and the grants left
//!    unused are printed per role (`--no-capture`).
//!
//! What moto enforces (with `scripts/infra/moto_iam.py`): action and resource ARN with
//! wildcards for DynamoDB (tables, indexes), SQS (queues), EventBridge (buses, rules), SSM
//! (parameters) and EventBridge Scheduler (schedules); the signature; the session's role. What
//! only the evaluator checks: condition keys, here `dynamodb:LeadingKeys` (the api may touch the
//! records table's `_chat` partition only: moto lets the api write any collection, the evaluator
//! refuses it, asserted below), and `iam:PassRole`, which moto never checks: every
//! CreateSchedule / UpdateSchedule passes the scheduler role (the target's `RoleArn`), allowed
//! only on that role and only with `iam:PassedToService` = `scheduler.amazonaws.com`. Not covered by either: CloudWatch Logs (written by the Lambda runtime, not by our
//! code), resource policies (the queue policy, the Lambda permissions: `infra_stack.rs` checks
//! those in the template), the event source mapping's polling (done here with the worker's role,
//! as Lambda does).
//!
//! Needs python3 with moto[server] and aws-sam-translator.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::{Credentials, Intercept, SharedInterceptor};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use serde_json::{Value, json};
use wf_app::App;
use wf_app::ai::AiSettings;
use wf_app::app::triggers::WebhookDelivery;
use wf_app::aws::{AwsContext, AwsOptions};
use wf_app::lambda::{BatchSettings, handle_sqs_batch, handle_trigger};
use wf_app::llm::{LlmConfig, OpenAiCompatible};
use wf_app::testing::sqs_event;
use wf_app::webhooks::sign;
use wf_aws::dynamo::keys;
use wf_aws::{AwsClients, Config, TriggerRules};
use wf_core::execution::{ExecutionQuery, ExecutionStatus};
use wf_core::model::WebhookScheme;
use wf_core::ports::{Clock, SystemClock};
use wf_core::time_fmt::format_ms;
use wf_tests::moto::{ACCOUNT, Moto, REGION, unique_prefix};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The stage's secrets path (the template's default `/wf/<StageName>`).
const SECRETS_PATH: &str = "/wf/dev";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

// ---------------------------------------------------------------------------------------------
// The stack

/// One stack as moto_stack.py reports it.
struct Stack {
    outputs: HashMap<String, String>,
    report: Value,
}

async fn create_stack(moto: &Moto, name: &str) -> Stack {
    let root = repo_root();
    let out = tokio::process::Command::new("python3")
        .arg(root.join("scripts/infra/moto_stack.py"))
        .arg("--template")
        .arg(root.join("infra/template.yaml"))
        .arg("--endpoint")
        .arg(moto.endpoint())
        .arg("--stack-name")
        .arg(name)
        .env_remove("WF_MOTO_URL")
        .kill_on_drop(true)
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
    let stack = report["stacks"][0].clone();
    assert_eq!(stack["status"], "CREATE_COMPLETE", "{stack}");
    let outputs = stack["outputs"]
        .as_object()
        .expect("outputs")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    Stack {
        outputs,
        report: stack,
    }
}

/// `https://sqs.<region>.amazonaws.com/<account>/<name>` as the same queue on moto's endpoint.
fn queue_on_moto(url: &str, endpoint: &str) -> String {
    let name = url
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    format!("{endpoint}/{ACCOUNT}/{name}")
}

impl Stack {
    fn output(&self, key: &str) -> &str {
        self.outputs
            .get(key)
            .unwrap_or_else(|| panic!("no output {key}: {:?}", self.outputs))
    }

    /// The function's environment in the stack, as the Lambda service hands it (plus the
    /// region, and the endpoint of this test's moto).
    fn env(&self, function: &str, moto: &Moto) -> HashMap<String, String> {
        let mut env: HashMap<String, String> = self.report["functions"][function]["environment"]
            .as_object()
            .unwrap_or_else(|| panic!("no function {function}"))
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        let endpoint = moto.endpoint();
        if let Some(url) = env.get("WF_QUEUE_URL").cloned() {
            env.insert("WF_QUEUE_URL".into(), queue_on_moto(&url, &endpoint));
        }
        env.insert("AWS_REGION".into(), REGION.into());
        env.insert("WF_AWS_ENDPOINT_URL".into(), endpoint);
        env
    }

    fn role(&self, role: &str) -> &Value {
        let r = &self.report["roles"][role];
        assert!(r.is_object(), "no role {role}");
        r
    }

    fn role_arn(&self, role: &str) -> String {
        self.role(role)["arn"]
            .as_str()
            .expect("role arn")
            .to_string()
    }

    /// Every statement of the role's policies as the stack holds them.
    fn statements(&self, role: &str) -> Vec<Value> {
        let r = self.role(role);
        assert_eq!(
            r["attached_policies"],
            json!([]),
            "{role}: only inline policies are evaluated here"
        );
        r["policies"]
            .as_object()
            .expect("policies")
            .values()
            .flat_map(|doc| match &doc["Statement"] {
                Value::Array(items) => items.clone(),
                single @ Value::Object(_) => vec![single.clone()],
                _ => Vec::new(),
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Recording every call

/// One SDK call as sent: the JSON protocols' `X-Amz-Target` and body; for Scheduler (REST
/// JSON) the operation's name and the body with the path's `Name` and the query's `GroupName`
/// added.
#[derive(Debug, Clone)]
struct Call {
    /// `dynamodb`, `sqs`, `events`, `ssm`, `scheduler`.
    service: String,
    operation: String,
    body: Value,
}

#[derive(Debug, Default)]
struct Recorder {
    calls: Mutex<Vec<Call>>,
}

impl Recorder {
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[derive(Debug)]
struct Recording(Arc<Recorder>);

impl Intercept for Recording {
    fn name(&self) -> &'static str {
        "iam-call-recorder"
    }

    fn read_before_transmit(
        &self, context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents, cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let mut body = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        let (service, operation) = match request.headers().get("x-amz-target") {
            Some(target) => {
                let (prefix, operation) = target.split_once('.').unwrap_or(("unknown", target));
                let service = match prefix {
                    p if p.starts_with("DynamoDB") => "dynamodb",
                    p if p.contains("SQS") => "sqs",
                    p if p.contains("Events") => "events",
                    p if p.contains("SSM") => "ssm",
                    _ => "unknown",
                };
                (service, operation.to_string())
            }
            // REST JSON (Scheduler): the operation from the SDK's metadata, the schedule's name
            // from the path (`/schedules/<name>`), the group from the query or the body.
            None => {
                let operation = cfg
                    .load::<Metadata>()
                    .map(|m| m.name().to_string())
                    .unwrap_or_else(|| "unknown".into());
                let uri = request.uri().to_string();
                let (path, query) = uri.split_once('?').unwrap_or((uri.as_str(), ""));
                if !body.is_object() {
                    body = json!({});
                }
                if let Some(name) = path
                    .strip_prefix("/schedules/")
                    .or_else(|| path.split_once("/schedules/").map(|(_, n)| n))
                {
                    body["Name"] = json!(name.trim_end_matches('/'));
                }
                for pair in query.split('&') {
                    if let Some(group) = pair.strip_prefix("groupName=") {
                        body["GroupName"] = json!(group);
                    }
                }
                ("scheduler", operation)
            }
        };
        self.0
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Call {
                service: service.to_string(),
                operation,
                body,
            });
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The evaluator

/// One permission a call needs: IAM action, resource ARN, the partition keys it touches
/// (`dynamodb:LeadingKeys`), and the service a role is passed to (`iam:PassedToService`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
struct Need {
    action: String,
    resource: String,
    leading_keys: BTreeSet<String>,
    passed_to_service: Option<String>,
}

/// Partition key attribute of each table (the adapters' key layout).
fn partition_keys(config: &Config) -> HashMap<String, &'static str> {
    HashMap::from([
        (config.workflows_table.clone(), keys::WORKFLOWS_PK),
        (config.executions_table.clone(), keys::EXECUTIONS_PK),
        (config.records_table.clone(), keys::RECORDS_PK),
    ])
}

fn string_attr(item: &Value, attr: &str) -> Option<String> {
    item.get(attr)
        .and_then(|v| v.get("S"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The partition key values of a Query's key condition (`#pk = :v AND ...`).
fn query_partition(body: &Value, pk: &str) -> Option<String> {
    let condition = body["KeyConditionExpression"].as_str()?;
    for clause in condition.split(" AND ") {
        let (left, right) = clause.split_once('=')?;
        let (left, right) = (left.trim(), right.trim());
        let name = match left.strip_prefix('#') {
            Some(_) => body["ExpressionAttributeNames"][left].as_str()?,
            None => left,
        };
        if name == pk {
            return string_attr(&body["ExpressionAttributeValues"], right);
        }
    }
    None
}

/// What IAM requires for `call` (the same resolution as scripts/infra/moto_iam.py, plus the
/// leading keys).
fn needs(call: &Call, pks: &HashMap<String, &'static str>) -> Vec<Need> {
    let b = &call.body;
    let op = call.operation.as_str();
    let need = |service: &str, action: &str, resource: String, keys: BTreeSet<String>| Need {
        action: format!("{service}:{action}"),
        resource,
        leading_keys: keys,
        passed_to_service: None,
    };
    match call.service.as_str() {
        "dynamodb" => {
            let table = |name: &str| {
                if name.starts_with("arn:") {
                    name.to_string()
                } else {
                    format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}")
                }
            };
            let key_of = |name: &str, item: &Value| -> BTreeSet<String> {
                pks.get(name)
                    .and_then(|pk| string_attr(item, pk))
                    .into_iter()
                    .collect()
            };
            match op {
                "TransactWriteItems" | "TransactGetItems" => b["TransactItems"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|item| item.as_object()?.iter().next())
                    .map(|(kind, v)| {
                        let name = v["TableName"].as_str().unwrap_or_default();
                        let action = match kind.as_str() {
                            "Put" => "PutItem",
                            "Update" => "UpdateItem",
                            "Delete" => "DeleteItem",
                            "ConditionCheck" => "ConditionCheckItem",
                            _ => "GetItem",
                        };
                        let item = if kind == "Put" { &v["Item"] } else { &v["Key"] };
                        need("dynamodb", action, table(name), key_of(name, item))
                    })
                    .collect(),
                "BatchGetItem" | "BatchWriteItem" => b["RequestItems"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, requests)| {
                        let mut keys = BTreeSet::new();
                        let items: Vec<&Value> = if op == "BatchGetItem" {
                            requests["Keys"].as_array().into_iter().flatten().collect()
                        } else {
                            requests
                                .as_array()
                                .into_iter()
                                .flatten()
                                .map(|r| {
                                    if r["PutRequest"].is_object() {
                                        &r["PutRequest"]["Item"]
                                    } else {
                                        &r["DeleteRequest"]["Key"]
                                    }
                                })
                                .collect()
                        };
                        for item in items {
                            keys.extend(key_of(name, item));
                        }
                        need("dynamodb", op, table(name), keys)
                    })
                    .collect(),
                _ => {
                    let name = b["TableName"].as_str().unwrap_or_default();
                    let mut resource = table(name);
                    if let Some(index) = b["IndexName"].as_str() {
                        resource = format!("{resource}/index/{index}");
                    }
                    let keys = match op {
                        "PutItem" => key_of(name, &b["Item"]),
                        "Query" => pks
                            .get(name)
                            .and_then(|pk| query_partition(b, pk))
                            .into_iter()
                            .collect(),
                        _ => key_of(name, &b["Key"]),
                    };
                    vec![need("dynamodb", op, resource, keys)]
                }
            }
        }
        "sqs" => {
            let name = b["QueueUrl"]
                .as_str()
                .and_then(|u| u.rsplit('/').next())
                .unwrap_or("*");
            let action = match op {
                "SendMessageBatch" => "SendMessage",
                "DeleteMessageBatch" => "DeleteMessage",
                "ChangeMessageVisibilityBatch" => "ChangeMessageVisibility",
                other => other,
            };
            vec![need(
                "sqs",
                action,
                format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"),
                BTreeSet::new(),
            )]
        }
        "events" => {
            let base = format!("arn:aws:events:{REGION}:{ACCOUNT}");
            let bus = |v: &Value| -> String {
                match v.as_str() {
                    None | Some("") | Some("default") => "default".to_string(),
                    Some(arn) if arn.starts_with("arn:") => {
                        arn.split(":event-bus/").nth(1).unwrap_or(arn).to_string()
                    }
                    Some(name) => name.to_string(),
                }
            };
            let rule = |name: &Value, bus_name: String| -> String {
                let name = name.as_str().unwrap_or_default();
                if bus_name == "default" {
                    format!("{base}:rule/{name}")
                } else {
                    format!("{base}:rule/{bus_name}/{name}")
                }
            };
            match op {
                "PutEvents" => {
                    let buses: BTreeSet<String> = b["Entries"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|e| bus(&e["EventBusName"]))
                        .collect();
                    buses
                        .into_iter()
                        .map(|bus| {
                            need(
                                "events",
                                op,
                                format!("{base}:event-bus/{bus}"),
                                BTreeSet::new(),
                            )
                        })
                        .collect()
                }
                "PutRule" | "DeleteRule" | "DescribeRule" | "EnableRule" | "DisableRule" => {
                    vec![need(
                        "events",
                        op,
                        rule(&b["Name"], bus(&b["EventBusName"])),
                        BTreeSet::new(),
                    )]
                }
                "PutTargets" | "RemoveTargets" | "ListTargetsByRule" => vec![need(
                    "events",
                    op,
                    rule(&b["Rule"], bus(&b["EventBusName"])),
                    BTreeSet::new(),
                )],
                _ => vec![need("events", op, "*".into(), BTreeSet::new())],
            }
        }
        "ssm" => {
            let param = |name: &str| {
                if name.starts_with('/') {
                    format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{name}")
                } else {
                    format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{name}")
                }
            };
            let names: Vec<String> = match op {
                "GetParametersByPath" => vec![b["Path"].as_str().unwrap_or("/").to_string()],
                "GetParameters" => b["Names"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect(),
                _ => vec![b["Name"].as_str().unwrap_or_default().to_string()],
            };
            names
                .iter()
                .map(|n| need("ssm", op, param(n), BTreeSet::new()))
                .collect()
        }
        "scheduler" => match op {
            "CreateSchedule" | "UpdateSchedule" | "GetSchedule" | "DeleteSchedule" => {
                let group = b["GroupName"].as_str().unwrap_or("default");
                let name = b["Name"].as_str().unwrap_or_default();
                let mut out = vec![need(
                    "scheduler",
                    op,
                    format!("arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/{group}/{name}"),
                    BTreeSet::new(),
                )];
                // The schedule's target runs as a role the caller passes to Scheduler.
                if let Some(role) = b["Target"]["RoleArn"].as_str() {
                    out.push(Need {
                        passed_to_service: Some("scheduler.amazonaws.com".into()),
                        ..need("iam", "PassRole", role.to_string(), BTreeSet::new())
                    });
                }
                out
            }
            _ => vec![need("scheduler", op, "*".into(), BTreeSet::new())],
        },
        other => vec![need(other, op, "*".into(), BTreeSet::new())],
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

/// Whether the statement's conditions hold for `need`. Only what these roles use is known:
/// `dynamodb:LeadingKeys` under `StringEquals` / `ForAllValues:StringEquals` /
/// `ForAnyValue:StringEquals` (IAM's semantics: ForAllValues holds for an empty set), and
/// `iam:PassedToService` under `StringEquals` (absent from the request: does not hold). Anything
/// else is unknown and does not hold (fail closed), named in the error.
fn conditions_hold(statement: &Value, need: &Need) -> Result<bool, String> {
    let Some(conditions) = statement.get("Condition").and_then(Value::as_object) else {
        return Ok(true);
    };
    for (operator, keys) in conditions {
        for (key, expected) in keys.as_object().into_iter().flatten() {
            if key == "iam:PassedToService" && operator == "StringEquals" {
                let expected = strings_of(expected);
                if !need
                    .passed_to_service
                    .as_ref()
                    .is_some_and(|s| expected.contains(s))
                {
                    return Ok(false);
                }
                continue;
            }
            if key != "dynamodb:LeadingKeys" {
                return Err(format!("condition key {key} is not evaluated here"));
            }
            let expected = strings_of(expected);
            let values = &need.leading_keys;
            let holds = match operator.as_str() {
                "ForAllValues:StringEquals" => values.iter().all(|v| expected.contains(v)),
                "ForAnyValue:StringEquals" => values.iter().any(|v| expected.contains(v)),
                "StringEquals" => values.len() == 1 && values.iter().all(|v| expected.contains(v)),
                other => return Err(format!("condition operator {other} is not evaluated here")),
            };
            if !holds {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// IAM's decision for one identity policy set: an explicit Deny refuses; else an Allow whose
/// action, resource and conditions match grants (its Sid is returned); else refused.
fn evaluate(statements: &[Value], need: &Need) -> Result<String, String> {
    let matches = |st: &Value| -> Result<bool, String> {
        let action = need.action.to_ascii_lowercase();
        let action_ok = strings_of(&st["Action"])
            .iter()
            .any(|a| glob(&a.to_ascii_lowercase(), &action));
        let resource_ok = strings_of(&st["Resource"])
            .iter()
            .any(|r| glob(r, &need.resource));
        if !(action_ok && resource_ok) {
            return Ok(false);
        }
        conditions_hold(st, need)
    };
    for st in statements.iter().filter(|st| st["Effect"] == "Deny") {
        if matches(st).unwrap_or(true) {
            return Err(format!("denied by {}", st["Sid"]));
        }
    }
    let mut unknown = None;
    for st in statements.iter().filter(|st| st["Effect"] == "Allow") {
        match matches(st) {
            Ok(true) => return Ok(st["Sid"].as_str().unwrap_or("(no Sid)").to_string()),
            Ok(false) => {}
            Err(e) => unknown = Some(e),
        }
    }
    Err(unknown.unwrap_or_else(|| "no statement allows it".into()))
}

// ---------------------------------------------------------------------------------------------
// The functions

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Webhook,
    Api,
    Trigger,
    Worker,
}

impl Kind {
    fn function(self) -> &'static str {
        match self {
            Kind::Webhook => "WebhookFunction",
            Kind::Api => "ApiFunction",
            Kind::Trigger => "TriggerFunction",
            Kind::Worker => "WorkerFunction",
        }
    }

    fn role(self) -> &'static str {
        match self {
            Kind::Webhook => "WebhookRole",
            Kind::Api => "ApiRole",
            Kind::Trigger => "TriggerRole",
            Kind::Worker => "WorkerRole",
        }
    }

    /// As `wf_app::lambda::Function`: who reads secrets, who keeps trigger rules in step.
    fn reads_secrets(self) -> bool {
        matches!(self, Kind::Webhook | Kind::Worker)
    }

    fn syncs_triggers(self) -> bool {
        matches!(self, Kind::Api | Kind::Trigger)
    }
}

/// One function as its init builds it, on its role's credentials, every call recorded.
struct Function {
    kind: Kind,
    aws: AwsContext,
    options: AwsOptions,
    recorder: Arc<Recorder>,
}

impl Function {
    async fn new(moto: &Moto, stack: &Stack, kind: Kind, credentials: Credentials) -> Self {
        let env = stack.env(kind.function(), moto);
        let lookup = |k: &str| env.get(k).cloned();
        let config = Config::from_lookup(lookup).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        let options = AwsOptions::from_lookup(lookup, kind.reads_secrets())
            .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        let sdk = moto.sdk_config_as(credentials).await;
        let recorder = Arc::new(Recorder::default());
        let interceptor = SharedInterceptor::new(Recording(recorder.clone()));
        // `AwsContext::from_sdk_config` with the recorder on every client.
        let ssm = aws_sdk_ssm::Client::from_conf(
            aws_sdk_ssm::config::Builder::from(&sdk)
                .interceptor(interceptor.clone())
                .build(),
        );
        let aws = AwsContext {
            config,
            clients: AwsClients::from_sdk_config(&sdk, Some(interceptor)),
            ssm,
        };
        Self {
            kind,
            aws,
            options,
            recorder,
        }
    }

    /// What `lambda::init` builds: `AwsContext::app`.
    async fn app(&self) -> Arc<App> {
        self.aws
            .app(&self.options, self.kind.syncs_triggers())
            .await
            .unwrap_or_else(|e| panic!("{:?} init: {e}", self.kind))
    }

    fn config(&self) -> &Config {
        &self.aws.config
    }
}

/// The refusal IAM gives: an error naming AccessDeniedException (never a success).
#[track_caller]
fn assert_denied<T: std::fmt::Debug, E: std::fmt::Display>(what: &str, result: Result<T, E>) {
    match result {
        Ok(v) => panic!("{what}: allowed, expected AccessDenied ({v:?})"),
        Err(e) => {
            let text = e.to_string();
            assert!(
                text.contains("AccessDeniedException"),
                "{what}: expected AccessDenied, got {text}"
            );
        }
    }
}

fn orders_workflow() -> Value {
    json!({
        "id": "orders", "name": "Orders",
        "steps": [
            { "id": "start", "type": "start",
              "triggers": [
                  { "type": "webhook", "scheme": "standard", "secretEnv": "ORDER_SECRET" },
                  { "type": "schedule", "cron": "0 9 * * *" },
                  { "type": "event", "event": "order.placed" } ],
              "next": "save" },
            { "id": "save", "type": "action", "action": "record.create",
              "params": { "collection": "orders", "data": { "amount": "{{ input.amount | default(0) }}" } },
              "next": "touch" },
            { "id": "touch", "type": "action", "action": "record.update",
              "params": { "collection": "orders", "id": "{{ steps.save.output.id }}", "data": { "seen": true } },
              "next": "list" },
            { "id": "list", "type": "action", "action": "record.query",
              "params": { "collection": "orders", "limit": 5 }, "next": "drop" },
            { "id": "drop", "type": "action", "action": "record.delete",
              "params": { "collection": "orders", "id": "{{ steps.save.output.id }}" }, "next": "tell" },
            { "id": "tell", "type": "action", "action": "event.emit",
              "params": { "type": "order.handled", "detail": { "id": "{{ steps.save.output.id }}" } },
              "next": "each" },
            { "id": "each", "type": "loop", "items": "{{ [1, 2, 3] }}", "concurrency": 2,
              "steps": [ { "id": "twice", "type": "output", "output": { "n": "{{ item * 2 }}" } } ],
              "next": "done" },
            { "id": "done", "type": "output",
              "output": { "deleted": "{{ steps.drop.output.deleted }}" } }
        ]
    })
}

fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "test-model",
        "choices": [ { "index": 0, "message": { "role": "assistant", "content": content },
                       "finish_reason": "stop" } ],
        "usage": { "prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150 }
    })
}

/// The event source mapping's part, with the worker's role (Lambda polls with it): receive a
/// batch, hand it to `handle_sqs_batch`, delete what it acknowledged; until every execution of
/// `ids` is terminal (read through the api, as `GET /executions/{id}` would).
async fn run_worker(worker: &Function, app: &App, api: &App, ids: &[String]) {
    let sqs = &worker.aws.clients.sqs;
    let queue_url = &worker.config().queue_url;
    let queue_arn = format!(
        "arn:aws:sqs:{REGION}:{ACCOUNT}:{}",
        queue_url.rsplit('/').next().unwrap_or_default()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .expect("the worker role receives from the step queue");
        let messages = out.messages.unwrap_or_default();
        if !messages.is_empty() {
            let event = sqs_event(&messages, &queue_arn, REGION);
            let answer = handle_sqs_batch(app, event, &BatchSettings::default()).await;
            assert!(
                answer.batch_item_failures.is_empty(),
                "the worker failed tasks under its role: {answer:?}"
            );
            let entries = messages
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle().unwrap_or_default())
                        .build()
                        .expect("entry")
                })
                .collect();
            sqs.delete_message_batch()
                .queue_url(queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .expect("the worker role deletes handled tasks");
        }
        let mut done = true;
        for id in ids {
            let view = api.execution(id).await.expect("the api reads executions");
            let status = view.execution.status;
            if status.is_terminal() {
                assert_eq!(
                    status,
                    ExecutionStatus::Succeeded,
                    "{id}: {:?}",
                    view.execution
                );
            } else {
                done = false;
            }
        }
        if done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "executions did not finish under the worker's role"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_function_works_with_its_own_role_and_is_refused_the_rest() {
    // A refused call shows in the functions' own warnings (`--nocapture`).
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_test_writer()
        .try_init();
    let moto = Moto::start_with_iam();
    let stack = create_stack(&moto, &unique_prefix("iam")).await;

    // Before enforcement, with the default credentials: the operator's part (the webhook's
    // signing secret in SSM, as README's "Secrets" says) and the four sessions.
    let root = AwsContext::from_sdk_config(
        &Config::from_lookup(|k| stack.env("WorkerFunction", &moto).get(k).cloned())
            .expect("config"),
        &moto.sdk_config().await,
    );
    root.ssm
        .put_parameter()
        .name(format!("{SECRETS_PATH}/ORDER_SECRET"))
        .value(SECRET)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .expect("put the webhook secret");
    let mut functions = BTreeMap::new();
    for kind in [Kind::Webhook, Kind::Api, Kind::Trigger, Kind::Worker] {
        let credentials = moto
            .assume_role(&stack.role_arn(kind.role()), &format!("{kind:?}-session"))
            .await;
        let f = Function::new(&moto, &stack, kind, credentials).await;
        functions.insert(kind.role(), f);
    }
    // What the rule-based design left: the schedule rule of `orders` on the default bus, as the
    // old sync made it. Activation moves it to Scheduler under the api role.
    let prefix = functions["ApiRole"].config().rule_prefix.clone();
    let old_rule = format!("{prefix}orders-s0");
    root.clients
        .eventbridge
        .put_rule()
        .name(&old_rule)
        .description("wf trigger of workflow orders")
        .schedule_expression("cron(0 9 * * ? *)")
        .send()
        .await
        .expect("an old schedule rule");
    root.clients
        .eventbridge
        .put_targets()
        .rule(&old_rule)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("wf-trigger")
                .arn(stack.output("TriggerFunctionArn"))
                .input(r#"{"workflowId": "orders", "scheduledTime": 0}"#)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("its target");
    moto.enforce_iam(true);
    // The default credentials are no one now.
    let refused = root
        .ssm
        .get_parameter()
        .name("/wf/dev/ORDER_SECRET")
        .send()
        .await;
    let refused = refused.map_err(|e| aws_sdk_ssm::error::DisplayErrorContext(e).to_string());
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("UnrecognizedClientException")),
        "unknown credentials are refused: {refused:?}"
    );

    let webhook = &functions["WebhookRole"];
    let api = &functions["ApiRole"];
    let trigger = &functions["TriggerRole"];
    let worker = &functions["WorkerRole"];
    let llm = MockServer::start().await;

    // ---- api: create, publish, activate (rule sync), chat, events, history ----
    let api_app = {
        // `AwsContext::app` with the model on wiremock (the LLM is not AWS).
        let mut services = api.aws.services(&api.options).await.expect("api services");
        services.llm =
            Arc::new(OpenAiCompatible::new(LlmConfig::new(llm.uri(), None)).expect("llm client"));
        Arc::new(
            App::with_triggers(services, api.aws.trigger_sync(&api.options))
                .with_settings(api.options.settings),
        )
    };
    api_app
        .create_workflow(orders_workflow())
        .await
        .expect("api creates a workflow");
    api_app
        .publish_draft("orders")
        .await
        .expect("api publishes");
    let meta = api_app
        .activate("orders", None)
        .await
        .expect("api activates (schedule and rule sync)");
    assert_eq!(meta.trigger_error, None, "trigger sync under the api role");
    let token = meta.webhook_token.clone().expect("webhook token");
    let group = api.config().schedule_group.clone().expect("schedule group");
    let schedules = api
        .aws
        .clients
        .scheduler
        .list_schedules()
        .group_name(&group)
        .name_prefix(&prefix)
        .send()
        .await
        .expect("api lists schedules")
        .schedules;
    let schedule_names: Vec<String> = schedules.iter().filter_map(|s| s.name.clone()).collect();
    assert_eq!(
        schedule_names,
        std::slice::from_ref(&old_rule),
        "one schedule, the rule's name"
    );
    let rules = api
        .aws
        .clients
        .eventbridge
        .list_rules()
        .name_prefix(&prefix)
        .send()
        .await
        .expect("api lists rules")
        .rules
        .unwrap_or_default();
    assert!(
        rules.is_empty(),
        "the old schedule rule left the default bus: {rules:?}"
    );

    // The chat: the model answers a changed draft; the turn goes to the `_chat` partition.
    let mut changed = orders_workflow();
    changed["name"] = json!("Orders (renamed)");
    let content = serde_json::to_string(&json!({ "workflow": changed, "explanation": "renamed" }))
        .expect("json");
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(&content)))
        .mount(&llm)
        .await;
    let reply = api_app
        .chat(&AiSettings::default(), "orders", "rename it")
        .await
        .expect("api chats (records table, _chat partition)");
    assert!(reply.changed, "{reply:?}");
    let history = api_app.chat_history("orders").await.expect("history");
    assert_eq!(history.len(), 1, "one turn: {history:?}");
    assert_eq!(history[0].message, "rename it");
    api_app
        .forget_chat("orders")
        .await
        .expect("forget the chat");
    assert!(
        api_app
            .chat_history("orders")
            .await
            .expect("history")
            .is_empty()
    );
    // POST /events: onto the platform bus (a type no rule matches: moto would try to invoke
    // the trigger function, which it cannot run).
    api_app
        .publish_event("order.audited", json!({ "by": "iam-test" }), None, None)
        .await
        .expect("api publishes a platform event");

    // ---- webhook: a signed delivery starts an execution ----
    let webhook_app = webhook.app().await;
    let body = br#"{"amount":250}"#;
    let now = SystemClock.now_ms();
    let signed = sign(
        WebhookScheme::Standard,
        SECRET,
        body,
        now / 1000,
        "msg_iam1",
    )
    .expect("sign");
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "content-type",
        "application/json".parse().expect("header value"),
    );
    for (name, value) in signed {
        headers.insert(name, value.parse().expect("header value"));
    }
    let outcome = webhook_app
        .receive_webhook(WebhookDelivery {
            workflow_id: "orders",
            token: &token,
            headers: &headers,
            body,
        })
        .await
        .expect("the webhook starts an execution under its role");
    let from_webhook = match outcome {
        wf_app::app::triggers::WebhookOutcome::Started(s) => s.execution_id,
        other => panic!("{other:?}"),
    };
    // The same delivery again (a sender's retry): answered with the first execution.
    let again = webhook_app
        .receive_webhook(WebhookDelivery {
            workflow_id: "orders",
            token: &token,
            headers: &headers,
            body,
        })
        .await
        .expect("a repeated delivery under the webhook role");
    assert_eq!(
        again,
        wf_app::app::triggers::WebhookOutcome::Started(wf_app::app::executions::Started {
            execution_id: from_webhook.clone(),
            duplicate: true,
            finished: None,
        })
    );

    // ---- worker: run it to the end (records, events) ----
    let worker_app = worker.app().await;
    run_worker(
        worker,
        &worker_app,
        &api_app,
        std::slice::from_ref(&from_webhook),
    )
    .await;

    // ---- trigger: a schedule fire, a routed event, the sweep repairing a deleted rule ----
    let trigger_app = trigger.app().await;
    let fired = handle_trigger(
        &trigger_app,
        json!({ "workflowId": "orders", "scheduledTime": format_ms(now) }),
    )
    .await
    .expect("a schedule fire under the trigger role");
    let scheduled = fired["started"][0]["executionId"]
        .as_str()
        .unwrap_or_else(|| panic!("nothing started: {fired}"))
        .to_string();
    let routed = handle_trigger(
        &trigger_app,
        json!({ "workflowId": "orders", "event": {
            "id": "ev-iam-1", "detail-type": "order.placed", "source": "shop",
            "time": format_ms(now), "detail": { "amount": 3 } } }),
    )
    .await
    .expect("an event routed under the trigger role");
    let from_event = routed["started"][0]["executionId"]
        .as_str()
        .unwrap_or_else(|| panic!("nothing started: {routed}"))
        .to_string();
    // Drift: the schedule disappears (removed with the api's rights), the sweep restores it.
    api.aws
        .clients
        .scheduler
        .delete_schedule()
        .group_name(&group)
        .name(&schedule_names[0])
        .send()
        .await
        .expect("delete the schedule");
    // As a failed activation sync leaves it: the sweep clears `triggerError` once repaired.
    let meta = api_app.workflow("orders").await.expect("workflow").meta;
    api_app
        .write_meta(meta, |m| m.trigger_error = Some("sync failed".into()))
        .await
        .expect("api writes META");
    let swept = handle_trigger(&trigger_app, json!({ "sweep": true }))
        .await
        .expect("the sweep under the trigger role");
    assert!(
        swept["reconciled"].as_u64().unwrap_or(0) >= 1,
        "the sweep recreated the schedule: {swept}"
    );
    let back = trigger
        .aws
        .clients
        .scheduler
        .get_schedule()
        .group_name(&group)
        .name(&schedule_names[0])
        .send()
        .await
        .expect("the schedule is back (the trigger role reads it)");
    assert_eq!(back.schedule_expression_timezone(), Some("UTC"));
    assert_eq!(
        back.target().map(|t| t.role_arn()),
        trigger.config().scheduler_role_arn.as_deref()
    );
    let meta = api_app.workflow("orders").await.expect("workflow").meta;
    assert_eq!(meta.trigger_error, None, "the sweep cleared triggerError");
    // A sweep out of its time budget keeps its place (an engine mark), the next one goes on and
    // clears it: both writes under the trigger role (the queued executions above are live).
    let tight = wf_app::app::maintenance::SweepSettings {
        budget: Some(std::time::Duration::ZERO),
        page: 1,
        ..wf_app::app::maintenance::SweepSettings::aws()
    };
    let stopped = trigger_app
        .sweep(&tight)
        .await
        .expect("an incomplete sweep keeps its place under the trigger role");
    assert!(stopped.incomplete, "{stopped:?}");
    trigger_app
        .sweep(&wf_app::app::maintenance::SweepSettings::aws())
        .await
        .expect("the next sweep goes on and clears the place under the trigger role");
    // An EventBridge envelope delivered as is: routed to every subscribed workflow.
    let enveloped = handle_trigger(
        &trigger_app,
        json!({ "id": "ev-iam-2", "detail-type": "order.placed", "source": "shop",
                "time": format_ms(now), "detail": { "amount": 4 } }),
    )
    .await
    .expect("an envelope routed under the trigger role");
    let from_envelope = enveloped["started"][0]["executionId"]
        .as_str()
        .unwrap_or_else(|| panic!("nothing started: {enveloped}"))
        .to_string();

    // ---- api: the rest of the management API ----
    let rerun = api_app
        .rerun(&from_webhook, None, None)
        .await
        .expect("api reruns an execution")
        .execution_id;
    let test_run = api_app
        .run_workflow("orders", json!({ "amount": 9 }), true)
        .await
        .expect("api test-runs the draft")
        .execution_id;
    let manual = api_app
        .run_workflow("orders", json!({ "amount": 8 }), false)
        .await
        .expect("api runs the workflow")
        .execution_id;
    let cancelled = api_app.cancel(&manual).await.expect("api cancels");
    assert_eq!(cancelled.execution.status, ExecutionStatus::Cancelled);
    api_app
        .set_webhook_secrets("orders", vec![SECRET.to_string()])
        .await
        .expect("api stores webhook secrets");
    api_app
        .rotate_webhook_token("orders")
        .await
        .expect("api rotates the webhook token");
    // A second workflow through its whole life: rules made, then removed, then deleted.
    let mut scratch = orders_workflow();
    scratch["id"] = json!("scratch");
    api_app.create_workflow(scratch).await.expect("create");
    api_app.publish_draft("scratch").await.expect("publish");
    api_app.activate("scratch", None).await.expect("activate");
    api_app
        .deactivate("scratch")
        .await
        .expect("deactivate (rules removed)");
    api_app.delete_workflow("scratch").await.expect("delete");

    run_worker(
        worker,
        &worker_app,
        &api_app,
        &[
            scheduled.clone(),
            from_event.clone(),
            from_envelope,
            rerun,
            test_run,
        ],
    )
    .await;
    let page = api_app
        .workflow_executions(
            "orders",
            ExecutionQuery {
                limit: 10,
                ..ExecutionQuery::default()
            },
        )
        .await
        .expect("api lists executions (index)");
    assert_eq!(page.items.len(), 7, "{page:?}");

    // ---- refusals, by moto's enforcement (and the evaluator must agree) ----
    let work: HashMap<&str, usize> = functions
        .iter()
        .map(|(role, f)| (*role, f.recorder.calls().len()))
        .collect();
    let mut probes = Probes::default();
    let draft = json!({ "id": "intruder", "steps": [ { "id": "start", "type": "start" } ] });
    let mark = probes.start(webhook);
    let result = webhook_app.create_workflow(draft.clone()).await;
    probes.denied(webhook, mark, "webhook writes a definition", result);
    let mark = probes.start(webhook);
    let result = webhook_app
        .publish_event("order.forged", json!({}), None, None)
        .await;
    probes.denied(webhook, mark, "webhook publishes an event", result);
    let mark = probes.start(webhook);
    let result = webhook_app
        .services()
        .records
        .create("orders", "x", &json!({}), "k")
        .await;
    probes.denied(webhook, mark, "webhook writes a record", result);
    let mark = probes.start(worker);
    let result = worker_app.create_workflow(draft.clone()).await;
    probes.denied(worker, mark, "worker writes a definition", result);
    let worker_rules = TriggerRules::new(
        worker.aws.clients.eventbridge.clone(),
        &worker.config().event_bus,
        trigger
            .config()
            .trigger_target_arn
            .clone()
            .expect("trigger target"),
    );
    let workflow = serde_json::from_value(orders_workflow()).expect("workflow");
    let mark = probes.start(worker);
    let result = worker_rules.sync("orders", Some(&workflow)).await;
    probes.denied(worker, mark, "worker puts a rule", result);
    let schedules = wf_aws::TriggerSchedules::new(
        worker.aws.clients.scheduler.clone(),
        &group,
        stack.output("TriggerFunctionArn"),
        trigger
            .config()
            .scheduler_role_arn
            .clone()
            .expect("scheduler role"),
    );
    let spec = schedules.desired(&workflow).expect("desired")[0].clone();
    let mark = probes.start(worker);
    let result = worker
        .aws
        .clients
        .scheduler
        .create_schedule()
        .group_name(&group)
        .name(format!("{}-by-worker", spec.name))
        .schedule_expression(&spec.expression)
        .flexible_time_window(
            aws_sdk_scheduler::types::FlexibleTimeWindow::builder()
                .mode(aws_sdk_scheduler::types::FlexibleTimeWindowMode::Off)
                .build()
                .expect("window"),
        )
        .target(
            aws_sdk_scheduler::types::Target::builder()
                .arn(stack.output("TriggerFunctionArn"))
                .role_arn(
                    trigger
                        .config()
                        .scheduler_role_arn
                        .clone()
                        .unwrap_or_default(),
                )
                .input(&spec.input)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .map_err(|e| aws_sdk_scheduler::error::DisplayErrorContext(e).to_string());
    probes.denied(worker, mark, "worker creates a schedule", result);
    let mark = probes.start(trigger);
    let result = trigger_app.delete_workflow("orders").await;
    probes.denied(trigger, mark, "trigger deletes a workflow", result);
    let mark = probes.start(trigger);
    let result = trigger_app
        .services()
        .records
        .create("orders", "x", &json!({}), "k")
        .await;
    probes.denied(trigger, mark, "trigger writes a record", result);
    for (who, f) in [("api", api), ("trigger", trigger), ("webhook", webhook)] {
        let mark = probes.start(f);
        let result = f
            .aws
            .clients
            .sqs
            .receive_message()
            .queue_url(&f.config().queue_url)
            .send()
            .await
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string());
        probes.denied(f, mark, &format!("{who} takes step tasks"), result);
    }
    let api_secrets = AwsOptions {
        secrets_path: Some(SECRETS_PATH.into()),
        ..api.options.clone()
    };
    let mark = probes.start(api);
    let result = api.aws.services(&api_secrets).await.map(|_| ());
    probes.denied(api, mark, "api reads the workflows' secrets", result);
    // Not enforced by moto (a condition key): the api writing a collection other than `_chat`
    // succeeds there; the evaluator must refuse the recorded call.
    let mark = probes.start(api);
    api_app
        .services()
        .records
        .create("orders", "not-chat", &json!({}), "k")
        .await
        .expect("moto does not evaluate dynamodb:LeadingKeys");
    probes.refused_by_evaluator(api, mark, "api writes outside the _chat partition");

    // ---- the evaluator: every call of the real work against the role's policies ----
    let mut failures = Vec::new();
    for (role, f) in &functions {
        let statements = stack.statements(role);
        let pks = partition_keys(f.config());
        let calls = f.recorder.calls();
        let mut used: BTreeMap<String, usize> = BTreeMap::new();
        for call in &calls[..work[role]] {
            for need in needs(call, &pks) {
                match evaluate(&statements, &need) {
                    Ok(sid) => *used.entry(format!("{} ({sid})", need.action)).or_default() += 1,
                    Err(reason) => failures.push(format!(
                        "{role}: {} needs {} on {} (keys {:?}): {reason}",
                        call.operation, need.action, need.resource, need.leading_keys
                    )),
                }
            }
        }
        // What each function did, for the record (`--nocapture`).
        println!("{role}: {} calls: {used:?}", work[role]);
        // Grants this run did not use: candidates for trimming, or paths not exercised here.
        let unused: Vec<String> = statements
            .iter()
            .filter(|st| st["Effect"] == "Allow")
            .flat_map(|st| {
                let sid = st["Sid"].as_str().unwrap_or("(no Sid)").to_string();
                strings_of(&st["Action"])
                    .into_iter()
                    .map(move |a| format!("{a} ({sid})"))
            })
            .filter(|grant| !used.contains_key(grant))
            .collect();
        println!("{role}: not used in this run: {unused:?}");
    }
    for (role, label, call) in &probes.marks {
        let f = &functions[role.as_str()];
        let statements = stack.statements(role);
        let pks = partition_keys(f.config());
        let refused = needs(call, &pks)
            .iter()
            .any(|need| evaluate(&statements, need).is_err());
        if !refused {
            failures.push(format!(
                "{role}: {label}: the evaluator allows {} {}",
                call.operation, call.body
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "the evaluator and the roles disagree:\n{}",
        failures.join("\n")
    );
    assert_eq!(
        probes.marks.len(),
        13,
        "every refusal was checked by the evaluator"
    );
    assert!(!stack.output("EventBusName").is_empty());
}

/// The calls made on purpose to be refused: for each, the last call the function made (the one
/// IAM refused, after which the use case stopped) must be refused by the evaluator too.
#[derive(Default)]
struct Probes {
    /// (role, what, the refused call).
    marks: Vec<(String, String, Call)>,
}

impl Probes {
    fn start(&self, f: &Function) -> usize {
        f.recorder.calls().len()
    }

    /// Moto refused it (`AccessDeniedException`); keep the refused call for the evaluator.
    #[track_caller]
    fn denied<T: std::fmt::Debug, E: std::fmt::Display>(
        &mut self, f: &Function, mark: usize, what: &str, result: Result<T, E>,
    ) {
        assert_denied(what, result);
        self.refused_by_evaluator(f, mark, what);
    }

    /// Keep the last call made since `mark` for the evaluator.
    #[track_caller]
    fn refused_by_evaluator(&mut self, f: &Function, mark: usize, what: &str) {
        let calls = f.recorder.calls();
        let call = calls[mark..]
            .last()
            .unwrap_or_else(|| panic!("{what}: no call was made"))
            .clone();
        self.marks
            .push((f.kind.role().to_string(), what.to_string(), call));
    }
}

#[test]
fn the_evaluator_follows_iam() {
    let statements = vec![
        json!({ "Sid": "Rules", "Effect": "Allow", "Action": ["events:PutRule"],
                "Resource": ["arn:aws:events:us-east-1:123456789012:rule/wf-*"] }),
        json!({ "Sid": "Chat", "Effect": "Allow", "Action": ["dynamodb:PutItem"],
                "Resource": "arn:aws:dynamodb:us-east-1:123456789012:table/r",
                "Condition": { "ForAllValues:StringEquals": { "dynamodb:LeadingKeys": ["_chat"] } } }),
        json!({ "Sid": "NoDelete", "Effect": "Deny", "Action": "dynamodb:*",
                "Resource": "arn:aws:dynamodb:us-east-1:123456789012:table/locked" }),
        json!({ "Sid": "All", "Effect": "Allow", "Action": "dynamodb:Get*", "Resource": "*" }),
    ];
    let need = |action: &str, resource: &str, keys: &[&str]| Need {
        action: action.into(),
        resource: resource.into(),
        leading_keys: keys.iter().map(|k| k.to_string()).collect(),
        passed_to_service: None,
    };
    let rule = "arn:aws:events:us-east-1:123456789012:rule";
    assert_eq!(
        evaluate(
            &statements,
            &need("events:PutRule", &format!("{rule}/wf-a-s0"), &[])
        ),
        Ok("Rules".into())
    );
    assert!(
        evaluate(
            &statements,
            &need("events:PutRule", &format!("{rule}/sweep-x"), &[])
        )
        .is_err()
    );
    assert!(
        evaluate(
            &statements,
            &need("events:DeleteRule", &format!("{rule}/wf-a"), &[])
        )
        .is_err()
    );
    let records = "arn:aws:dynamodb:us-east-1:123456789012:table/r";
    assert_eq!(
        evaluate(&statements, &need("dynamodb:PutItem", records, &["_chat"])),
        Ok("Chat".into())
    );
    assert!(evaluate(&statements, &need("dynamodb:PutItem", records, &["orders"])).is_err());
    assert!(
        evaluate(
            &statements,
            &need("dynamodb:PutItem", records, &["_chat", "orders"])
        )
        .is_err()
    );
    // Action names are case-insensitive; an explicit Deny wins over an Allow.
    assert_eq!(
        evaluate(&statements, &need("dynamodb:GETITEM", records, &[])),
        Ok("All".into())
    );
    assert!(
        evaluate(
            &statements,
            &need(
                "dynamodb:GetItem",
                "arn:aws:dynamodb:us-east-1:123456789012:table/locked",
                &[]
            )
        )
        .is_err()
    );
    // An unknown condition key fails closed.
    let odd = vec![
        json!({ "Sid": "Odd", "Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*",
                           "Condition": { "StringEquals": { "aws:SourceVpc": "vpc-1" } } }),
    ];
    assert!(
        evaluate(
            &odd,
            &need("sqs:SendMessage", "arn:aws:sqs:us-east-1:1:q", &[])
        )
        .is_err()
    );

    // A transaction needs each item's action on its table, with its partition key.
    let pks = HashMap::from([("t".to_string(), "pk")]);
    let call = Call {
        service: "dynamodb".into(),
        operation: "TransactWriteItems".into(),
        body: json!({ "TransactItems": [
            { "Put": { "TableName": "t", "Item": { "pk": { "S": "a" }, "sk": { "S": "1" } } } },
            { "ConditionCheck": { "TableName": "t", "Key": { "pk": { "S": "b" } } } } ] }),
    };
    let got = needs(&call, &pks);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].action, "dynamodb:PutItem");
    assert_eq!(got[1].action, "dynamodb:ConditionCheckItem");
    assert_eq!(got[1].leading_keys, BTreeSet::from(["b".to_string()]));
    let query = Call {
        service: "dynamodb".into(),
        operation: "Query".into(),
        body: json!({ "TableName": "t", "IndexName": "byX",
                      "KeyConditionExpression": "#p = :v AND #s > :a",
                      "ExpressionAttributeNames": { "#p": "pk", "#s": "sk" },
                      "ExpressionAttributeValues": { ":v": { "S": "c" }, ":a": { "S": "0" } } }),
    };
    let got = needs(&query, &pks);
    assert_eq!(
        got[0].resource,
        "arn:aws:dynamodb:us-east-1:123456789012:table/t/index/byX"
    );
    assert_eq!(got[0].leading_keys, BTreeSet::from(["c".to_string()]));
    let batch = Call {
        service: "sqs".into(),
        operation: "DeleteMessageBatch".into(),
        body: json!({ "QueueUrl": "http://127.0.0.1:1/123456789012/q" }),
    };
    assert_eq!(
        needs(&batch, &pks),
        [Need {
            action: "sqs:DeleteMessage".into(),
            resource: "arn:aws:sqs:us-east-1:123456789012:q".into(),
            leading_keys: BTreeSet::new(),
            passed_to_service: None,
        }]
    );

    // A schedule: its ARN from the group and the name; the role it passes, to Scheduler only.
    let create = Call {
        service: "scheduler".into(),
        operation: "CreateSchedule".into(),
        body: json!({ "Name": "wf-a-s0", "GroupName": "wf-dev",
                      "Target": { "Arn": "arn:aws:lambda:us-east-1:123456789012:function:t",
                                  "RoleArn": "arn:aws:iam::123456789012:role/sched" } }),
    };
    let got = needs(&create, &pks);
    assert_eq!(
        got[0].resource,
        "arn:aws:scheduler:us-east-1:123456789012:schedule/wf-dev/wf-a-s0"
    );
    assert_eq!(got[1].action, "iam:PassRole");
    let pass = vec![
        json!({ "Sid": "Pass", "Effect": "Allow", "Action": "iam:PassRole",
        "Resource": "arn:aws:iam::123456789012:role/sched",
        "Condition": { "StringEquals": { "iam:PassedToService": "scheduler.amazonaws.com" } } }),
    ];
    assert_eq!(evaluate(&pass, &got[1]), Ok("Pass".into()));
    let to_lambda = Need {
        passed_to_service: Some("lambda.amazonaws.com".into()),
        ..got[1].clone()
    };
    assert!(evaluate(&pass, &to_lambda).is_err());
    let other_role = Need {
        resource: "arn:aws:iam::123456789012:role/admin".into(),
        ..got[1].clone()
    };
    assert!(evaluate(&pass, &other_role).is_err());
}
