//! `wf dev`: the whole product in one process. One SQLite file, worker loops, the cron
//! scheduler, the event router, the sweeper, the HTTP server, and `workflows/*.json` kept
//! published (a changed file becomes a new version; an invalid edit is reported and the
//! previous version keeps running).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};
use wf_core::engine::CompiledWorkflow;
use wf_core::model::Trigger;
use wf_core::ports::{Clock, SystemClock};
use wf_core::time_fmt::format_ms;
use wf_core::{StoreError, StoreResult};
use wf_local::LocalEventBus;

use crate::app::maintenance::SweepSettings;
use crate::app::workflows::FileSynced;
use crate::app::{App, AppError, TriggerSync};
use crate::http::{AppState, router};
use crate::local::{LocalApp, LocalOptions};
use crate::settings::EngineSettings;
use crate::triggers::schedule::{Scheduler, schedule_specs};

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
    /// Deliveries a task that cannot be handled gets before its execution is failed.
    pub max_receive_count: u32,
    /// The engine's settings (`WF_LEASE_SECS`, `WF_EVENT_MAX_DEPTH`).
    pub settings: EngineSettings,
    pub sweep: SweepSettings,
    pub sweep_interval: Duration,
    /// How often workflow files are checked for changes.
    pub watch_interval: Duration,
}

/// The workflow files of folder `dir`, sorted: its `*.json` files but `schema.json` (what
/// `wf dev` syncs, and what `wf validate` / `wf deploy` read in a folder).
pub fn workflow_files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && p.file_name().is_some_and(|n| n != "schema.json")
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Keeps the local scheduler in step with activation.
pub struct LocalTriggers {
    pub scheduler: Arc<Scheduler>,
}

#[async_trait]
impl TriggerSync for LocalTriggers {
    async fn sync(
        &self, workflow_id: &str, active: Option<Arc<CompiledWorkflow>>,
    ) -> StoreResult<()> {
        match active {
            Some(c) => {
                let specs =
                    schedule_specs(&c.workflow).map_err(|e| StoreError::Invalid(e.to_string()))?;
                self.scheduler.set(workflow_id, c.version, specs);
            }
            None => {
                self.scheduler.remove(workflow_id);
            }
        }
        Ok(())
    }
}

/// Something about a workflow file the developer should read (the CLI prints these).
#[derive(Debug, Clone, PartialEq)]
pub struct FileNotice {
    pub path: PathBuf,
    pub what: FileSynced,
}

impl std::fmt::Display for FileNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = self.path.display();
        match &self.what {
            FileSynced::Invalid { problems } => write!(
                f,
                "{problems}wf dev: {path}: invalid: the previous version (if any) keeps running"
            ),
            FileSynced::Published { version, .. } => {
                write!(f, "wf dev: {path}: published version {version}")
            }
            FileSynced::Unchanged { .. } => write!(f, "wf dev: {path}: unchanged"),
            FileSynced::Failed { message } => write!(f, "wf dev: {path}: {message}"),
        }
    }
}

/// A running `wf dev`.
pub struct DevServer {
    pub addr: SocketAddr,
    pub local: Arc<LocalApp>,
    pub state: AppState,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    pool: Option<crate::runner::WorkerPool>,
    notices: Option<mpsc::UnboundedReceiver<FileNotice>>,
}

fn io_error(what: String, e: std::io::Error) -> AppError {
    AppError::permanent("io", format!("{what}: {e}"))
}

impl DevServer {
    /// Open the store, publish the workflow files, start every loop and the HTTP server.
    pub async fn start(options: DevOptions) -> Result<Self, AppError> {
        if let Some(parent) = options.db.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| io_error(format!("cannot create {}", parent.display()), e))?;
        }
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let mut scheduler = None;
        let local = Arc::new(LocalApp::open_with(
            &options.db,
            LocalOptions {
                workers: options.workers,
                visibility_timeout: options.visibility_timeout,
                max_receive_count: options.max_receive_count,
                settings: options.settings,
            },
            |app: Weak<App>| {
                let s = Arc::new(Scheduler::for_app(clock.clone(), app));
                scheduler = Some(s.clone());
                Arc::new(LocalTriggers { scheduler: s }) as Arc<dyn TriggerSync>
            },
        )?);
        let scheduler = scheduler
            .ok_or_else(|| AppError::permanent("internal", "the scheduler was not built"))?;
        let app = local.app.clone();
        let listener = tokio::net::TcpListener::bind(options.addr)
            .await
            .map_err(|e| io_error(format!("cannot listen on {}", options.addr), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| io_error(format!("cannot listen on {}", options.addr), e))?;
        let state = AppState::new(app.clone(), format!("http://{addr}"));
        // Repair drift: triggers follow what the store says is active.
        app.reconcile_triggers().await?;
        let (notify, notices) = mpsc::unbounded_channel();
        let mut files = FileSync::new(options.workflows_dir.clone(), notify);
        files.sync_all(&app).await;

        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let pool = local.start_workers();
        tasks.push(tokio::spawn(scheduler.clone().run(stop_rx.clone())));
        tasks.push(tokio::spawn(run_sweeper(
            app.clone(),
            options.sweep.clone(),
            options.sweep_interval,
            stop_rx.clone(),
        )));
        tasks.push(tokio::spawn(pump_events(
            app.clone(),
            local.store.event_bus(),
            cursor_file(&options.db),
            stop_rx.clone(),
        )));
        {
            let app = app.clone();
            let mut rx = stop_rx.clone();
            let interval = options.watch_interval;
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(interval) => files.sync_all(&app).await,
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
            local,
            state,
            stop,
            tasks,
            pool: Some(pool),
            notices: Some(notices),
        })
    }

    /// What happened to the workflow files, as it happens (the first sync's notices are
    /// queued already). Taken once.
    pub fn take_notices(&mut self) -> Option<mpsc::UnboundedReceiver<FileNotice>> {
        self.notices.take()
    }

    /// What `wf dev` prints at start: each webhook URL and each schedule's next runs.
    pub async fn banner(&self) -> StoreResult<String> {
        let mut out = format!("wf dev listening on http://{}\n", self.addr);
        out.push_str(&format!(
            "  API: http://{0}/workflows   OpenAPI: http://{0}/openapi.json\n",
            self.addr
        ));
        let now = SystemClock.now_ms();
        let app = &self.state.app;
        for w in app
            .list_workflows()
            .await
            .map_err(|e| StoreError::Permanent(e.to_string()))?
        {
            let meta = w.meta;
            let Some(v) = meta.active_version.filter(|_| meta.active) else {
                out.push_str(&format!(
                    "  {:<24} inactive (latest version {})\n",
                    meta.id, meta.latest_version
                ));
                continue;
            };
            let Ok(c) = app.definition(&meta.id, v).await else {
                continue;
            };
            out.push_str(&format!("  {:<24} v{v} active\n", meta.id));
            let unusable = app.webhook_unusable(&meta.id).await.ok().flatten();
            for t in c.workflow.triggers() {
                match t {
                    Trigger::Webhook(w) => {
                        if let Some(token) = &meta.webhook_token {
                            out.push_str(&format!(
                                "      webhook  POST {}/hooks/{}/{}  (scheme {:?})\n",
                                self.state.public_url, meta.id, token, w.scheme
                            ));
                            if let Some(why) = &unusable {
                                out.push_str(&format!(
                                    "               warning: this webhook {why}\n"
                                ));
                            }
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

/// Sweep every `interval` until `shutdown` flips to true.
async fn run_sweeper(
    app: Arc<App>, settings: SweepSettings, interval: Duration, mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = app.sweep(&settings).await {
            warn!(error = %e, "sweep failed; trying again next time");
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

/// Route every event of the local bus to the workflows it triggers. The outbox is read from a
/// cursor kept in a file, so events published while routing was behind (or down) are routed
/// later; routing is idempotent (one execution per workflow and event id).
async fn pump_events(
    app: Arc<App>, bus: LocalEventBus, cursor_path: PathBuf, mut stop: watch::Receiver<bool>,
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
                    if let Err(e) = app.route_event(&event, None).await {
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

/// Keeps `workflows/*.json` published: a file is synced when its modification time changes.
struct FileSync {
    dir: PathBuf,
    seen: HashMap<PathBuf, SystemTime>,
    notify: mpsc::UnboundedSender<FileNotice>,
}

impl FileSync {
    fn new(dir: PathBuf, notify: mpsc::UnboundedSender<FileNotice>) -> Self {
        Self {
            dir,
            seen: HashMap::new(),
            notify,
        }
    }

    async fn sync_all(&mut self, app: &App) {
        let Ok(files) = workflow_files_in(&self.dir) else {
            return;
        };
        for path in files {
            let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            if modified.is_some() && self.seen.get(&path) == modified.as_ref() {
                continue;
            }
            if let Some(m) = modified {
                self.seen.insert(path.clone(), m);
            }
            let what = sync_file(app, &path).await;
            match &what {
                FileSynced::Published { id, version } => {
                    info!(workflow_id = %id, version, path = %path.display(), "published from file");
                }
                FileSynced::Unchanged { .. } => continue,
                FileSynced::Invalid { .. } | FileSynced::Failed { .. } => {
                    warn!(path = %path.display(), "workflow file not published");
                }
            }
            let _ = self.notify.send(FileNotice { path, what });
        }
    }
}

/// Publish one workflow file if its content changed, and (de)activate it per `config.active`.
pub async fn sync_file(app: &App, path: &Path) -> FileSynced {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return FileSynced::Failed {
                message: format!("cannot read: {e}"),
            };
        }
    };
    match app
        .sync_workflow_file(&path.display().to_string(), &text)
        .await
    {
        Ok(synced) => synced,
        Err(e) => FileSynced::Failed {
            message: e.to_string(),
        },
    }
}
