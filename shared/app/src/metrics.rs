//! Counters of this process, shown at `GET /metrics` (Prometheus text format).

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Counters by name and reason. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    pub fn incr(&self, name: &str, label: &str) {
        let key = format!("{name}{{reason=\"{label}\"}}");
        let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        *c.entry(key).or_insert(0) += 1;
    }

    pub fn get(&self, name: &str, label: &str) -> u64 {
        let key = format!("{name}{{reason=\"{label}\"}}");
        let c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        c.get(&key).copied().unwrap_or(0)
    }

    pub fn render(&self) -> String {
        let c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        c.iter().map(|(k, v)| format!("{k} {v}\n")).collect()
    }
}
