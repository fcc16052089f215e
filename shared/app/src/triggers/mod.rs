//! The local schedule trigger (`wf dev`): the scheduler that fires active workflows' cron
//! schedules in process. Platform events and webhooks are use cases of [`crate::app`].

pub mod schedule;
