//! `wf dev`: the whole product in one process. One SQLite file, worker loops, the cron
//! scheduler, the event router, the sweeper, the HTTP server, and `workflows/*.json` kept
//! published (a changed file becomes a new version; an invalid edit is reported and the
//! previous version keeps running).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};
use wf_core::StoreError;
use wf_core::engine::CompiledWorkflow;
use wf_core::model::Trigger;
use wf_core::ports::{Clock, DefinitionStore, SystemClock};
use wf_core::time_fmt::format_ms;
use wf_core::validate::{format_problems, validate_source};
use wf_local::LocalEventBus;

use crate::activation::{self, TriggerSync};
use crate::event_router::route_event;
use crate::http::{AppState, Metrics, router};
use crate::local::{LocalApp, LocalError, LocalOptions};
use crate::sweeper::{SweepSettings, run_sweeper};
use crate::triggers::schedule::{Scheduler, schedule_specs};
use crate::worker::Worker;

/// Settings of `wf dev`.
#[derive(Debug, Clone)]
pub struct DevOptions {
    pub addr: SocketAddr,
    pub db: PathBuf,
    pub workflows_dir: PathBuf,
    pub workers: usize,
    /// How long a received task stays invisible before it is delivered again (how soon work
    /// of a killed process resumes after a restart).
    pub visibility_timeout: Duration,
    pub sweep: SweepSettings,
    pub sweep_interval: Duration,
    /// How often workflow files are checked for changes.
    pub watch_interval: Duration,
}

/// Keeps the local scheduler in step with activation.
pub struct LocalTriggers {
    pub scheduler: Arc<Scheduler>,
}

#[async_trait]
impl TriggerSync for LocalTriggers {
    async fn sync(
        &self,
        workflow_id: &str,
        active: Option<Arc<CompiledWorkflow>>,
    ) -> Result<(), StoreError> {
        match active {
            Some(c) => {
                let specs = schedule_specs(&c.workflow).map_err(StoreError::Invalid)?;
                self.scheduler.set(workflow_id, c.version, specs);
            }
            None => {
                self.scheduler.remove(workflow_id);
            }
        }
        Ok(())
    }
}

/// A running `wf dev`.
pub struct DevServer {
    pub addr: SocketAddr,
    pub app: Arc<LocalApp>,
    pub state: AppState,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    pool: Option<crate::runner::WorkerPool>,
}

#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error(transparent)]
    Local(#[from] LocalError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("cannot read {0}: {1}")]
    Io(PathBuf, std::io::Error),
}

impl DevServer {
    /// Open the store, publish the workflow files, start every loop and the HTTP server.
    pub async fn start(options: DevOptions) -> Result<Self, DevError> {
        if let Some(parent) = options.db.parent() {
            std::fs::create_dir_all(parent).map_err(|e| DevError::Io(parent.to_path_buf(), e))?;
        }
        let app = Arc::new(LocalApp::open(
            &options.db,
            LocalOptions {
                workers: options.workers,
                visibility_timeout: options.visibility_timeout,
            },
        )?);
        let scheduler = Arc::new(Scheduler::for_worker(app.worker.clone()));
        let triggers: Arc<dyn TriggerSync> = Arc::new(LocalTriggers {
            scheduler: scheduler.clone(),
        });
        let listener = tokio::net::TcpListener::bind(options.addr)
            .await
            .map_err(|e| DevError::Bind(options.addr, e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| DevError::Bind(options.addr, e))?;
        let state = AppState {
            worker: app.worker.clone(),
            triggers: triggers.clone(),
            metrics: Arc::new(Metrics::default()),
            public_url: format!("http://{addr}"),
        };
        // Repair drift: triggers follow what the store says is active.
        for meta in app.store.list_metas().await? {
            if let Some(v) = meta.active_version.filter(|_| meta.active)
                && let Ok(c) = app.worker.definition(&meta.id, v).await
            {
                triggers.sync(&meta.id, Some(c)).await?;
            }
        }
        let mut files = FileSync::new(options.workflows_dir.clone());
        files.sync_all(&app.worker, &*triggers).await;

        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let pool = app.start_workers();
        tasks.push(tokio::spawn(scheduler.clone().run(stop_rx.clone())));
        tasks.push(tokio::spawn(run_sweeper(
            app.worker.clone(),
            options.sweep.clone(),
            options.sweep_interval,
            stop_rx.clone(),
        )));
        tasks.push(tokio::spawn(pump_events(
            app.worker.clone(),
            app.store.event_bus(),
            cursor_file(&options.db),
            stop_rx.clone(),
        )));
        {
            let worker = app.worker.clone();
            let triggers = triggers.clone();
            let mut rx = stop_rx.clone();
            let interval = options.watch_interval;
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(interval) => files.sync_all(&worker, &*triggers).await,
                        _ = rx.changed() => return,
                    }
                }
            }));
        }
        {
            let app_router = router(state.clone());
            let mut rx = stop_rx.clone();
            tasks.push(tokio::spawn(async move {
                let shutdown = async move {
                    let _ = rx.changed().await;
                };
                if let Err(e) = axum::serve(listener, app_router)
                    .with_graceful_shutdown(shutdown)
                    .await
                {
                    warn!(error = %e, "http server stopped");
                }
            }));
        }
        Ok(Self {
            addr,
            app,
            state,
            stop,
            tasks,
            pool: Some(pool),
        })
    }

    /// What `wf dev` prints at start: each webhook URL and each schedule's next runs.
    pub async fn banner(&self) -> Result<String, StoreError> {
        let mut out = format!("wf dev listening on http://{}\n", self.addr);
        out.push_str(&format!(
            "  API: http://{0}/workflows   OpenAPI: http://{0}/openapi.json\n",
            self.addr
        ));
        let now = SystemClock.now_ms();
        for meta in self.app.store.list_metas().await? {
            let Some(v) = meta.active_version.filter(|_| meta.active) else {
                out.push_str(&format!(
                    "  {:<24} inactive (latest version {})\n",
                    meta.id, meta.latest_version
                ));
                continue;
            };
            let Ok(c) = self.app.worker.definition(&meta.id, v).await else {
                continue;
            };
            out.push_str(&format!("  {:<24} v{v} active\n", meta.id));
            for t in c.workflow.triggers() {
                match t {
                    Trigger::Webhook(w) => {
                        if let Some(token) = &meta.webhook_token {
                            out.push_str(&format!(
                                "      webhook  POST {}/hooks/{}/{}  (scheme {:?})\n",
                                self.state.public_url, meta.id, token, w.scheme
                            ));
                        }
                    }
                    Trigger::Schedule(s) => {
                        let next = wf_core::cron::CronSpec::parse(&s.cron)
                            .ok()
                            .and_then(|spec| spec.next_after(now))
                            .map(format_ms)
                            .unwrap_or_else(|| "never".into());
                        out.push_str(&format!("      schedule {:<16} next run {next}\n", s.cron));
                    }
                    Trigger::Event(e) => out.push_str(&format!("      event    {}\n", e.event)),
                    Trigger::Manual(_) => out.push_str(&format!(
                        "      manual   POST {}/workflows/{}/executions\n",
                        self.state.public_url, meta.id
                    )),
                }
            }
        }
        Ok(out)
    }

    /// Stop every loop and the server, and wait for them.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(pool) = self.pool.take() {
            pool.shutdown().await;
        }
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

fn cursor_file(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".events-cursor");
    PathBuf::from(p)
}

/// Route every event of the local bus to the workflows it triggers. The outbox is read from a
/// cursor kept in a file, so events published while routing was behind (or down) are routed
/// later; routing is idempotent (one execution per workflow and event id).
async fn pump_events(
    worker: Arc<Worker>,
    bus: LocalEventBus,
    cursor_path: PathBuf,
    mut stop: watch::Receiver<bool>,
) {
    let mut wake = bus.subscribe();
    let mut cursor: i64 = std::fs::read_to_string(&cursor_path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    loop {
        match bus.list_events(cursor, 100).await {
            Ok(batch) if !batch.is_empty() => {
                for (seq, event) in batch {
                    if let Err(e) = route_event(&worker, &event).await {
                        warn!(event_id = %event.id, error = %e, "routing failed; will retry");
                        break;
                    }
                    cursor = seq;
                }
                if let Err(e) = std::fs::write(&cursor_path, cursor.to_string()) {
                    warn!(error = %e, "cannot save the event cursor");
                }
                continue;
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "cannot read events"),
        }
        tokio::select! {
            _ = wake.recv() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Keeps `workflows/*.json` published: content hash per file, publish on change.
struct FileSync {
    dir: PathBuf,
    seen: HashMap<PathBuf, SystemTime>,
}

impl FileSync {
    fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            seen: HashMap::new(),
        }
    }

    async fn sync_all(&mut self, worker: &Worker, triggers: &dyn TriggerSync) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| x == "json")
                    && p.file_name().is_some_and(|n| n != "schema.json")
            })
            .collect();
        files.sort();
        for path in files {
            let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            if modified.is_some() && self.seen.get(&path) == modified.as_ref() {
                continue;
            }
            if let Some(m) = modified {
                self.seen.insert(path.clone(), m);
            }
            if let Err(e) = sync_file(worker, triggers, &path).await {
                eprintln!("wf dev: {}: {e}", path.display());
            }
        }
    }
}

/// Publish one workflow file if its content changed, and (de)activate it per `config.active`.
pub async fn sync_file(
    worker: &Worker,
    triggers: &dyn TriggerSync,
    path: &Path,
) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let name = path.display().to_string();
    let report = validate_source(&text);
    let Some(workflow) = report.workflow else {
        // Printing is the point here: the developer watches this terminal.
        eprint!("{}", format_problems(&name, &report.problems));
        return Err("invalid: the previous version (if any) keeps running".into());
    };
    let svc = worker.services();
    let hash = hex::encode(Sha256::digest(
        serde_json::to_vec(&workflow).unwrap_or_default(),
    ));
    let meta = svc
        .definitions
        .get_meta(&workflow.id)
        .await
        .map_err(|e| e.to_string())?;
    let source = format!("file:{name}");
    let unchanged = meta
        .as_ref()
        .is_some_and(|m| m.content_hash.as_deref() == Some(hash.as_str()));
    let now = svc.clock.now_ms();
    if !unchanged {
        let draft = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        svc.definitions
            .put_draft(&workflow.id, &draft, now)
            .await
            .map_err(|e| e.to_string())?;
        let published = crate::publish::publish(&*svc.definitions, &workflow, now)
            .await
            .map_err(|e| e.to_string())?;
        info!(workflow_id = %workflow.id, version = published.version, "published from file");
        eprintln!("wf dev: {name}: published version {}", published.version);
    }
    let meta = svc
        .definitions
        .get_meta(&workflow.id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the workflow vanished")?;
    // Only write when something changed: `updatedAt` must not move on every start.
    let meta = if meta.source.as_deref() == Some(source.as_str())
        && meta.content_hash.as_deref() == Some(hash.as_str())
    {
        meta
    } else {
        activation::write_meta(worker, meta, |m| {
            m.source = Some(source.clone());
            m.content_hash = Some(hash.clone());
        })
        .await
        .map_err(|e| e.message)?
    };
    if workflow.config.active {
        if !meta.active || meta.active_version != Some(meta.latest_version) {
            activation::activate(worker, triggers, &workflow.id, None)
                .await
                .map_err(|e| e.message)?;
        }
    } else if meta.active {
        activation::deactivate(worker, triggers, &workflow.id)
            .await
            .map_err(|e| e.message)?;
    }
    Ok(())
}
