//! Per-deployment settings of the engine, read once at start-up (`wf dev`'s flags, the Lambda
//! init) and held by the [`crate::App`].

use std::time::Duration;

use wf_core::engine::DEFAULT_LEASE_MS;

/// A setting whose value cannot be used (the message names it and what it must be).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSetting(pub String);

/// Environment variables read here.
pub mod env {
    /// Seconds a claimed step stays held without its worker renewing it (default 30). A
    /// crashed worker's step is claimable again within this plus the queue's visibility
    /// timeout.
    pub const LEASE_SECS: &str = "WF_LEASE_SECS";
    /// How deep a chain of events started by workflows may go (default 8).
    pub const EVENT_MAX_DEPTH: &str = "WF_EVENT_MAX_DEPTH";
    /// The worker function's timeout in seconds (AWS): bounds a step without `timeoutMs`, and
    /// publishing a step whose `timeoutMs` exceeds it is refused.
    pub const WORKER_TIMEOUT_SECS: &str = "WF_WORKER_TIMEOUT_SECS";
}

/// Default of [`EngineSettings::event_max_depth`].
pub const DEFAULT_EVENT_MAX_DEPTH: u32 = 8;
/// How many times one chain of events may start the same workflow (the origin counts once).
pub const DEFAULT_EVENT_MAX_REVISITS: u32 = 3;

/// What a deployment may tune about the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineSettings {
    /// The lease of a claimed step, renewed by the worker while the step runs.
    pub lease: Duration,
    /// Events started by workflows past this depth of their causation chain are refused.
    pub event_max_depth: u32,
    /// A chain that would start the same workflow more often than this is refused.
    pub event_max_revisits: u32,
    /// The worker function's timeout (AWS only): a step runs at most this long, less a margin
    /// to store its result.
    pub worker_timeout: Option<Duration>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            lease: Duration::from_millis(DEFAULT_LEASE_MS as u64),
            event_max_depth: DEFAULT_EVENT_MAX_DEPTH,
            event_max_revisits: DEFAULT_EVENT_MAX_REVISITS,
            worker_timeout: None,
        }
    }
}

impl EngineSettings {
    /// From the process environment.
    pub fn from_env() -> Result<Self, InvalidSetting> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// From `lookup` (unset or blank: the default).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, InvalidSetting> {
        let number = |name: &str| -> Result<Option<u64>, InvalidSetting> {
            match lookup(name).filter(|v| !v.trim().is_empty()) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .map(Some)
                    .ok_or_else(|| {
                        InvalidSetting(format!("{name}={v:?} must be a whole number, at least 1"))
                    }),
            }
        };
        let d = Self::default();
        Ok(Self {
            lease: number(env::LEASE_SECS)?
                .map(Duration::from_secs)
                .unwrap_or(d.lease),
            event_max_depth: number(env::EVENT_MAX_DEPTH)?
                .map(|n| n.min(u32::MAX as u64) as u32)
                .unwrap_or(d.event_max_depth),
            event_max_revisits: d.event_max_revisits,
            worker_timeout: number(env::WORKER_TIMEOUT_SECS)?.map(Duration::from_secs),
        })
    }

    /// The bounds of an event's causation chain.
    pub fn event_limits(&self) -> wf_core::event_chain::EventLimits {
        wf_core::event_chain::EventLimits {
            max_depth: self.event_max_depth,
            max_revisits: self.event_max_revisits,
        }
    }

    /// The lease in milliseconds (what the engine's decisions take).
    pub fn lease_ms(&self) -> i64 {
        self.lease.as_millis().clamp(1, i64::MAX as u128) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let none = EngineSettings::from_lookup(|_| None).unwrap();
        assert_eq!(none, EngineSettings::default());
        assert_eq!(none.lease_ms(), 30_000);
        assert_eq!(none.event_max_depth, 8);
        let set = EngineSettings::from_lookup(|k| match k {
            "WF_LEASE_SECS" => Some("5".into()),
            "WF_EVENT_MAX_DEPTH" => Some("3".into()),
            "WF_WORKER_TIMEOUT_SECS" => Some("900".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(set.lease, Duration::from_secs(5));
        assert_eq!(set.event_max_depth, 3);
        assert_eq!(set.worker_timeout, Some(Duration::from_secs(900)));
        let bad = EngineSettings::from_lookup(|k| (k == "WF_LEASE_SECS").then(|| "0".into()));
        assert!(bad.unwrap_err().to_string().contains("WF_LEASE_SECS"));
    }
}
