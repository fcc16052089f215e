//! moto_server for tests of the AWS adapters: started on a free 127.0.0.1 port, reset on
//! demand (`POST /moto-api/reset`), killed on drop. Clients get fake credentials, a fixed
//! region and the server's endpoint through their configuration (not the process environment),
//! so nothing probes the instance metadata address.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_dynamodb::config::{Credentials, SharedInterceptor};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value, json};
use wf_aws::eventbridge::RULE_PREFIX;
use wf_aws::provision::{Resources, ensure};
use wf_aws::{AwsClients, Config, TriggerInput, TriggerRules};
use wf_core::ports::PlatformEvent;

use crate::conformance::bus::BusProbe;

pub const REGION: &str = "us-east-1";
/// moto's default account.
pub const ACCOUNT: &str = "123456789012";

/// moto_server with DynamoDB calls serialized (moto takes no lock per item, DynamoDB is atomic
/// per item), exiting when its standard input closes so a killed test leaves no server behind:
/// see the launcher's own comment. scripts/lambda-local runs the same file.
const LAUNCHER: &str = include_str!("../../scripts/moto-server.py");

/// moto's IAM enforcement completed for DynamoDB, SQS, EventBridge and SSM (resource ARNs,
/// per-item actions of transactions and batches, JSON error shapes): see the file's own comment.
/// Loaded before the launcher by [`Moto::start_with_iam`].
const IAM_PATCH: &str = include_str!("../../scripts/infra/moto_iam.py");

/// A running moto_server, killed on drop.
pub struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    /// Start moto_server on a free loopback port and wait until it answers (up to 30 s).
    pub fn start() -> Self {
        Self::spawn(LAUNCHER)
    }

    /// [`Moto::start`], able to enforce IAM: requests are authorized against the caller's IAM
    /// policies once [`Moto::enforce_iam`] turns enforcement on (off at start, so a stack can be
    /// created and roles assumed with the unchecked default credentials first). moto evaluates
    /// actions and resource ARNs with wildcards for DynamoDB (tables, indexes; transactions per
    /// item), SQS (queues; batches as their single actions), EventBridge (buses, rules) and SSM
    /// (parameters), and answers a refusal as AWS does (`AccessDeniedException`). It does not
    /// evaluate condition keys such as `dynamodb:LeadingKeys` (see scripts/infra/moto_iam.py).
    pub fn start_with_iam() -> Self {
        Self::spawn(&format!("{IAM_PATCH}\n{LAUNCHER}"))
    }

    /// Turn IAM enforcement on (every later request is authorized; the default credentials
    /// `testing` are then refused as unknown) or off again. moto's `/moto-api/reset-auth`:
    /// INITIAL_NO_AUTH_ACTION_COUNT becomes 0 (on) or infinite (off).
    pub fn enforce_iam(&self, on: bool) {
        let count = if on { "0" } else { "inf" };
        http_with_body(self.port, "POST", "/moto-api/reset-auth", count)
            .expect("set moto_server's IAM enforcement");
    }

    /// An SDK configuration for this server with the given credentials (an assumed role's).
    pub async fn sdk_config_as(&self, credentials: Credentials) -> aws_config::SdkConfig {
        wf_aws::config::sdk_loader()
            .region(aws_config::Region::new(REGION))
            .endpoint_url(self.endpoint())
            .credentials_provider(credentials)
            .load()
            .await
    }

    /// Temporary credentials of `role_arn` from STS AssumeRole on this server, fetched now (with
    /// the default credentials: call before [`Moto::enforce_iam`]; moto cannot evaluate a trust
    /// policy whose principal is a service). The caller keeps them: they are not refreshed.
    pub async fn assume_role(&self, role_arn: &str, session: &str) -> Credentials {
        use aws_sdk_dynamodb::config::ProvideCredentials;
        let provider = aws_config::sts::AssumeRoleProvider::builder(role_arn)
            .session_name(session)
            .configure(&self.sdk_config().await)
            .build()
            .await;
        let c = provider
            .provide_credentials()
            .await
            .unwrap_or_else(|e| panic!("STS AssumeRole {role_arn} on moto: {e}"));
        Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            c.session_token().map(str::to_string),
            None,
            "moto-sts",
        )
    }

    fn spawn(code: &str) -> Self {
        let mut last_error = String::new();
        // A port taken between choosing it and binding it makes moto exit: try again.
        for _ in 0..3 {
            let port = free_port();
            let child = Command::new("python3")
                .args(["-c", code, &port.to_string(), "--exit-with-stdin"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start moto_server (python3 -m moto.server; pip install 'moto[server]')");
            let mut moto = Moto { child, port };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = moto.child.try_wait() {
                    last_error = format!("moto_server exited with {status}");
                    break;
                }
                if http(port, "GET", "/moto-api/").is_ok() {
                    return moto;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if last_error.is_empty() {
                last_error = "moto_server did not answer within 30 s".into();
            }
        }
        panic!("{last_error}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Forget every resource (tables, queues, buses) of every service.
    pub fn reset(&self) {
        http(self.port, "POST", "/moto-api/reset").expect("reset moto_server");
    }

    /// An SDK configuration for this server: fake static credentials, fixed region.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        wf_aws::config::sdk_loader()
            .region(aws_config::Region::new(REGION))
            .endpoint_url(self.endpoint())
            .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
            .load()
            .await
    }

    /// Clients for this server, each with `interceptor` when given.
    pub async fn clients(&self, interceptor: Option<SharedInterceptor>) -> AwsClients {
        AwsClients::from_sdk_config(&self.sdk_config().await, interceptor)
    }

    /// Create tables, queue and bus named after `prefix`; the configuration that uses them.
    pub async fn provision(&self, prefix: &str, visibility: Duration) -> Config {
        let clients = self.clients(None).await;
        ensure(
            &clients,
            &Resources::prefixed(prefix, visibility),
            REGION,
            Some(&self.endpoint()),
        )
        .await
        .expect("provision tables, queue and bus on moto")
    }

    /// Environment variables a child process needs to reach this server as `config` says
    /// (fake credentials, no instance metadata probing).
    pub fn child_env(config: &Config) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = config
            .to_env()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        for (k, v) in [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ] {
            env.push((k.to_string(), v.to_string()));
        }
        env
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A minimal HTTP/1.1 request (no client dependency for two admin calls); Ok on a 2xx answer.
fn http(port: u16, method: &str, path: &str) -> Result<(), String> {
    http_with_body(port, method, path, "")
}

/// [`http`] with a plain-text body.
fn http_with_body(port: u16, method: &str, path: &str, body: &str) -> Result<(), String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| e.to_string())?;
    match answer.split_whitespace().nth(1) {
        Some(code) if code.starts_with('2') => Ok(()),
        other => Err(format!("{method} {path}: HTTP {other:?}")),
    }
}

/// A short unique resource prefix (table and queue names allow `-`).
pub fn unique_prefix(what: &str) -> String {
    format!("{what}-{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// A [`BusProbe`] that subscribes with the production event rule (`TriggerRules`) on `bus`,
/// targeting an SQS queue it reads (moto cannot invoke a Lambda target): the rule, its pattern,
/// its input transformer and the envelope parsing are all exercised. Used by the conformance
/// suite on moto and on the stack's bus.
pub struct RuleProbe {
    clients: AwsClients,
    bus: String,
    queue_url: String,
    queue_arn: String,
}

impl RuleProbe {
    /// Create the probe's queue.
    pub async fn new(clients: &AwsClients, bus: &str) -> Self {
        let queue_url = clients
            .sqs
            .create_queue()
            .queue_name(format!("{}-probe", unique_prefix("bus")))
            .send()
            .await
            .expect("probe queue")
            .queue_url
            .expect("queue url");
        let queue_arn = clients
            .sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue arn")
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .unwrap_or_else(|| {
                let name = queue_url.rsplit('/').next().unwrap_or_default();
                format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}")
            });
        Self {
            clients: clients.clone(),
            bus: bus.to_string(),
            queue_url,
            queue_arn,
        }
    }
}

#[async_trait]
impl BusProbe for RuleProbe {
    async fn subscribe(&mut self, event_type: &str) {
        let rules = TriggerRules::new(self.clients.eventbridge.clone(), &self.bus, &self.queue_arn);
        let workflow = serde_json::from_value(json!({
            "id": "bus-probe",
            "steps": [ { "id": "start", "type": "start", "triggers": [ { "type": "event", "event": event_type } ] } ]
        }))
        .expect("workflow");
        let report = rules
            .sync("bus-probe", Some(&workflow))
            .await
            .expect("sync rules");
        assert_eq!(report.created, [format!("{RULE_PREFIX}bus-probe-ev")]);
    }

    async fn delivered(&mut self, wait: Duration) -> Vec<PlatformEvent> {
        let out = self
            .clients
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(i32::try_from(wait.as_secs().clamp(0, 20)).unwrap_or(1))
            .send()
            .await
            .expect("receive from the probe queue");
        let mut events = Vec::new();
        for m in out.messages.unwrap_or_default() {
            let body: Value = serde_json::from_str(m.body().unwrap_or("null")).expect("JSON body");
            match TriggerInput::parse(&body) {
                Some(TriggerInput::Event { workflow_id, event }) => {
                    assert_eq!(workflow_id, "bus-probe");
                    events.push(event);
                }
                other => panic!("unexpected rule input {body}: {other:?}"),
            }
            self.clients
                .sqs
                .delete_message()
                .queue_url(&self.queue_url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
        events
    }
}
