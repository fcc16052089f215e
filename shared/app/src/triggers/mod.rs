//! Triggers that start executions from outside a request: schedules (and, later, platform
//! events). Webhooks and the management API live with the HTTP router.

pub mod schedule;
