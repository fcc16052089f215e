//! wf-app: the use cases over the ports. The local server (`wf dev`), `wf run` and the Lambda
//! functions all run this same code.

pub mod actions;
pub mod activation;
pub mod ai;
pub mod aws;
pub mod context;
#[cfg(feature = "local")]
pub mod dev;
pub mod event_router;
pub mod http;
pub mod lambda;
pub mod llm;
#[cfg(feature = "local")]
pub mod local;
pub mod publish;
pub mod runner;
pub mod services;
pub mod start;
pub mod step_runner;
pub mod sweeper;
pub mod triggers;
pub mod webhooks;
pub mod worker;
