//! wf-app: the application layer. [`app::App`] holds the ports and its methods are the use
//! cases; the worker runs step tasks over it; the entry points (the HTTP router, `wf dev`, the
//! Lambda handlers) call the use cases and nothing lower. `wf dev`, `wf run` and the Lambda
//! functions all run this same code.

pub mod actions;
pub mod ai;
pub mod app;
pub mod aws;
pub mod context;
#[cfg(feature = "local")]
pub mod dev;
pub mod http;
pub mod lambda;
pub mod llm;
#[cfg(feature = "local")]
pub mod local;
pub mod logs;
pub mod metrics;
pub mod runner;
pub mod services;
pub mod settings;
pub mod step_runner;
pub mod triggers;
pub mod webhooks;
pub mod worker;

pub use app::{App, AppError, ErrorKind};
#[cfg(feature = "test-support")]
pub mod testing;
