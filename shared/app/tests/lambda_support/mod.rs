//! Shared by the Lambda handler tests: a local engine (the handlers' logic does not depend on
//! AWS), workflows published and activated, and the JSON fixtures of tests/fixtures/lambda/
//! with their `{{NAME}}` placeholders filled in.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use wf_app::local::{LocalApp, LocalOptions};
use wf_core::model::Workflow;

pub struct Engine {
    pub app: Arc<LocalApp>,
    _dir: tempfile::TempDir,
}

impl Engine {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let app = LocalApp::open(&dir.path().join("wf.db"), LocalOptions::default()).unwrap();
        Self {
            app: Arc::new(app),
            _dir: dir,
        }
    }

    /// Publish `workflow` (JSON) and activate it.
    pub async fn publish_active(&self, workflow: Value) -> u32 {
        let wf: Workflow = serde_json::from_value(workflow).unwrap();
        let id = wf.id.clone();
        let compiled = self.app.publish(wf).await.unwrap();
        self.app.app.activate(&id, None).await.unwrap();
        compiled.version
    }
}

/// A fixture's text with each `{{NAME}}` replaced; a name written `=NAME` replaces the quoted
/// placeholder `"{{NAME}}"` with raw JSON (numbers), so fixtures stay valid JSON.
pub fn fixture(name: &str, vars: &[(&str, &str)]) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lambda")
        .join(name);
    let mut text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    for (k, v) in vars {
        text = match k.strip_prefix('=') {
            Some(raw) => text.replace(&format!("\"{{{{{raw}}}}}\""), v),
            None => text.replace(&format!("{{{{{k}}}}}"), v),
        };
    }
    assert!(
        !text.contains("{{"),
        "fixture {name} has a placeholder left: {text}"
    );
    text
}

/// A fixture parsed as JSON.
pub fn fixture_json(name: &str, vars: &[(&str, &str)]) -> Value {
    serde_json::from_str(&fixture(name, vars)).unwrap()
}

/// moto_server on a free loopback port for the tests that need the AWS adapters (the same
/// launcher as wf-tests' `moto.rs`: it exits when this process's end of its stdin closes).
pub struct Moto {
    child: std::process::Child,
    pub port: u16,
}

const LAUNCHER: &str = r#"
import os, sys, threading
def watch():
    sys.stdin.read()
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
from moto.server import main
main(["-H", "127.0.0.1", "-p", sys.argv[1]])
"#;

impl Moto {
    pub fn start() -> Self {
        use std::process::{Command, Stdio};
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .unwrap();
            let child = Command::new("python3")
                .args(["-c", LAUNCHER, &port.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start moto_server (pip install 'moto[server]')");
            let mut moto = Moto { child, port };
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = moto.child.try_wait() {
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return moto;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        panic!("moto_server did not start");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Fake credentials, fixed region, this endpoint.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        wf_aws::config::sdk_loader()
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(self.endpoint())
            .credentials_provider(aws_sdk_ssm::config::Credentials::new(
                "testing", "testing", None, None, "moto",
            ))
            .load()
            .await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
