//! wf-core: the pure heart of the workflow engine.
//!
//! * [`model`]: the workflow file format (serde + JSON Schema via schemars).
//! * [`validate`]: every problem at once, each with a JSON pointer and a hint.
//! * [`expr`]: minijinja templates and expressions, sandboxed.
//! * [`cron`]: schedules (cron, presets, plain English) and their EventBridge form.
//! * [`engine`]: pure decisions (state + event -> effects); adapters perform them.
//! * [`ports`]: the small traits adapters implement (store, queue, clock, bus, actions, LLM).
//! * [`keys`]: the sort-key layout of the tables, the same in every store.
//! * [`damaged`]: what stores return for a record they cannot decode.
//! * [`event_chain`]: the causation chain of events and the bounds that stop event loops.
//! * [`json_depth`]: the nesting bound of JSON that enters the engine.
//! * [`json_size`]: the size of a value's JSON, counted without building it.
//! * [`webhook`]: webhook signatures and body parsing (pure; wf-app does the I/O around them).
//!
//! Nothing in this crate performs I/O.

pub mod catalog;
pub mod cron;
pub mod damaged;
pub mod engine;
pub mod error;
pub mod event_chain;
pub mod execution;
pub mod expr;
pub mod json_depth;
pub mod json_size;
pub mod keys;
pub mod model;
pub mod path;
pub mod ports;
pub mod rejection;
pub mod schema;
pub mod scrub;
pub mod time_fmt;
pub mod validate;
pub mod webhook;

pub use error::{StepError, StoreError, StoreResult};
