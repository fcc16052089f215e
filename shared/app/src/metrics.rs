//! Counters and gauges of this process: shown at `GET /metrics` (Prometheus text format) by
//! `wf dev`, and drained after each invocation into CloudWatch embedded metric format (EMF)
//! documents by the Lambda functions ([`Metrics::drain_emf`]), which CloudWatch turns into
//! metrics from the function's log stream.
//!
//! Names (`reason` is the one label): `wf_executions_started_total{reason=<trigger>}`,
//! `wf_executions_finished_total{reason=<status>}`, `wf_step_failures_total{reason=<code>}`,
//! `wf_webhook_signature_failures_total{reason}`, `wf_events_refused_total{reason}`,
//! `wf_event_rejections_total{reason}`, `wf_sweep_incomplete_total{reason=budget}` (a sweep
//! stopped at its time budget and kept its place), and the gauge `wf_sweep_lag_ms` (how far past its
//! deadline the most overdue execution a sweep found was: a growing lag means sweeps fall
//! behind).

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{Value, json};

/// The CloudWatch namespace of the functions' metrics.
pub const EMF_NAMESPACE: &str = "wf";

#[derive(Debug, Default)]
struct Values {
    /// Totals since start, by (name, reason).
    counters: BTreeMap<(String, String), u64>,
    /// Increments not yet drained into EMF.
    pending: BTreeMap<(String, String), u64>,
    gauges: BTreeMap<String, i64>,
    pending_gauges: BTreeMap<String, i64>,
}

/// Counters by name and reason, and gauges. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct Metrics {
    values: Mutex<Values>,
}

impl Metrics {
    fn values(&self) -> std::sync::MutexGuard<'_, Values> {
        self.values.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn incr(&self, name: &str, reason: &str) {
        let key = (name.to_string(), reason.to_string());
        let mut v = self.values();
        *v.counters.entry(key.clone()).or_insert(0) += 1;
        *v.pending.entry(key).or_insert(0) += 1;
    }

    /// Set a gauge (the latest value wins).
    pub fn set_gauge(&self, name: &str, value: i64) {
        let mut v = self.values();
        v.gauges.insert(name.to_string(), value);
        v.pending_gauges.insert(name.to_string(), value);
    }

    pub fn get(&self, name: &str, reason: &str) -> u64 {
        let key = (name.to_string(), reason.to_string());
        self.values().counters.get(&key).copied().unwrap_or(0)
    }

    pub fn gauge(&self, name: &str) -> Option<i64> {
        self.values().gauges.get(name).copied()
    }

    /// Prometheus text format.
    pub fn render(&self) -> String {
        let v = self.values();
        let counters = v
            .counters
            .iter()
            .map(|((name, reason), n)| format!("{name}{{reason=\"{reason}\"}} {n}\n"));
        let gauges = v.gauges.iter().map(|(name, n)| format!("{name} {n}\n"));
        counters.chain(gauges).collect()
    }

    /// The increments and gauges set since the last drain, as EMF documents (one per metric
    /// and reason: a document holds one value per dimension), dimensions `Function` and
    /// `Reason`. Empty when nothing happened.
    pub fn drain_emf(&self, function: &str, now_ms: i64) -> Vec<String> {
        let mut v = self.values();
        let counters = std::mem::take(&mut v.pending);
        let gauges = std::mem::take(&mut v.pending_gauges);
        drop(v);
        let doc = |name: &str, unit: &str, dims: Vec<&str>, mut fields: Value, value: Value| {
            let metric = emf_name(name);
            fields["_aws"] = json!({
                "Timestamp": now_ms,
                "CloudWatchMetrics": [{
                    "Namespace": EMF_NAMESPACE,
                    "Dimensions": [dims],
                    "Metrics": [{ "Name": metric, "Unit": unit }],
                }],
            });
            fields["Function"] = json!(function);
            fields[metric.as_str()] = value;
            fields.to_string()
        };
        let counter_docs = counters.into_iter().map(|((name, reason), n)| {
            doc(
                &name,
                "Count",
                vec!["Function", "Reason"],
                json!({ "Reason": reason }),
                json!(n),
            )
        });
        let gauge_docs = gauges.into_iter().map(|(name, n)| {
            let unit = if name.ends_with("_ms") {
                "Milliseconds"
            } else {
                "None"
            };
            doc(&name, unit, vec!["Function"], json!({}), json!(n))
        });
        counter_docs.chain(gauge_docs).collect()
    }
}

/// `wf_step_failures_total` → `StepFailures`, `wf_sweep_lag_ms` → `SweepLagMs`.
pub fn emf_name(name: &str) -> String {
    let bare = name.strip_prefix("wf_").unwrap_or(name);
    let bare = bare.strip_suffix("_total").unwrap_or(bare);
    bare.split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_and_drain_into_emf_once() {
        let m = Metrics::default();
        m.incr("wf_executions_finished_total", "failed");
        m.incr("wf_executions_finished_total", "failed");
        m.incr("wf_step_failures_total", "http.status");
        m.set_gauge("wf_sweep_lag_ms", 1500);
        assert!(
            m.render()
                .contains("wf_executions_finished_total{reason=\"failed\"} 2\n")
        );
        let docs: Vec<Value> = m
            .drain_emf("worker", 1_700_000_000_000)
            .iter()
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        assert_eq!(docs.len(), 3);
        let finished = docs
            .iter()
            .find(|d| d.get("ExecutionsFinished").is_some())
            .unwrap();
        assert_eq!(finished["ExecutionsFinished"], json!(2));
        assert_eq!(finished["Reason"], json!("failed"));
        assert_eq!(finished["Function"], json!("worker"));
        let cw = &finished["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], json!("wf"));
        assert_eq!(cw["Dimensions"], json!([["Function", "Reason"]]));
        assert_eq!(cw["Metrics"][0]["Name"], json!("ExecutionsFinished"));
        assert_eq!(finished["_aws"]["Timestamp"], json!(1_700_000_000_000i64));
        let lag = docs.iter().find(|d| d.get("SweepLagMs").is_some()).unwrap();
        assert_eq!(
            lag["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
            json!("Milliseconds")
        );
        // Drained: nothing new, nothing sent again; the totals stay for /metrics.
        assert!(m.drain_emf("worker", 0).is_empty());
        assert_eq!(m.get("wf_executions_finished_total", "failed"), 2);
    }
}
