//! Shared helpers for the integration tests.

pub mod bridge;
pub mod conformance;
pub mod faults;
pub mod functions;
pub mod harness;
pub mod local_llm;
pub mod moto;
pub mod scale;
