//! Conformance of `EventBus`: an event reaches a target subscribed to its type, with its id,
//! type, source and detail intact; an event of another type does not; batches of any size go
//! through.
//!
//! Subscribing is backend-specific (an EventBridge rule with a target; a filtered subscription
//! to the local broadcast), so each backend brings a [`BusProbe`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Value, json};
use wf_core::ports::{EventBus, PlatformEvent};

use super::{T0, unique};

/// A backend's way to subscribe a target to one event type and read what reached it.
#[async_trait]
pub trait BusProbe: Send + Sync {
    /// Route every event of `event_type` published from now on to this probe's target.
    async fn subscribe(&mut self, event_type: &str);
    /// Events that reached the target, waiting up to `wait` for the first one.
    async fn delivered(&mut self, wait: Duration) -> Vec<PlatformEvent>;
}

fn event(id: &str, event_type: &str, detail: Value) -> PlatformEvent {
    PlatformEvent {
        id: id.to_string(),
        event_type: event_type.to_string(),
        source: "wf.workflow".to_string(),
        detail,
        time: T0,
        chain: Vec::new(),
    }
}

/// Collect deliveries until `want` arrived or `within` passed.
async fn collect<P: BusProbe + ?Sized>(
    probe: &mut P, want: usize, within: Duration,
) -> Vec<PlatformEvent> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    while out.len() < want && Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        out.extend(probe.delivered(left.min(Duration::from_secs(2))).await);
    }
    out
}

/// Matching events arrive intact (their causation chain too); non-matching ones do not; 25 events in one publish all arrive.
pub async fn routes_by_type<B, P>(bus: &B, probe: &mut P)
where
    B: EventBus + ?Sized,
    P: BusProbe + ?Sized,
{
    let wanted = format!("{}.created", unique("order").replace('-', "_"));
    let other = format!("{}.cancelled", unique("order").replace('-', "_"));
    probe.subscribe(&wanted).await;

    // An event started by workflows carries its causation chain (the same workflow twice).
    let first = PlatformEvent {
        chain: vec!["origin".into(), "looper".into(), "looper".into()],
        ..event(
            &unique("ev"),
            &wanted,
            json!({ "amount": 5, "nested": { "f": 1.5 } }),
        )
    };
    let skipped = event(&unique("ev"), &other, json!({ "amount": 6 }));
    let scalar = event(&unique("ev"), &wanted, json!([1, "two"]));
    bus.publish(&[first.clone(), skipped.clone(), scalar.clone()])
        .await
        .expect("publish");
    let got = collect(probe, 2, Duration::from_secs(20)).await;
    let by_id: BTreeMap<&str, &PlatformEvent> = got.iter().map(|e| (e.id.as_str(), e)).collect();
    assert_eq!(
        by_id.len(),
        2,
        "exactly the two matching events arrive: {got:#?}"
    );
    for sent in [&first, &scalar] {
        let received = by_id
            .get(sent.id.as_str())
            .unwrap_or_else(|| panic!("event {} did not arrive: {got:#?}", sent.id));
        assert_eq!(received.event_type, sent.event_type);
        assert_eq!(received.source, sent.source);
        assert_eq!(
            received.detail, sent.detail,
            "the detail arrives as published"
        );
        assert_eq!(
            received.chain, sent.chain,
            "the causation chain arrives as published (none: none)"
        );
    }
    assert!(
        !got.iter()
            .any(|e| e.id == skipped.id || e.event_type == other),
        "an event of another type does not reach the target: {got:#?}"
    );

    // More than one request's worth (EventBridge takes 10 per PutEvents).
    let many: Vec<PlatformEvent> = (0..25)
        .map(|i| {
            event(
                &unique("ev"),
                if i % 5 == 0 { &other } else { &wanted },
                json!({ "i": i }),
            )
        })
        .collect();
    bus.publish(&many).await.expect("publish 25");
    let expected: Vec<&PlatformEvent> = many.iter().filter(|e| e.event_type == wanted).collect();
    let got = collect(probe, expected.len(), Duration::from_secs(30)).await;
    let mut got_ids: Vec<&str> = got.iter().map(|e| e.id.as_str()).collect();
    got_ids.sort_unstable();
    let mut want_ids: Vec<&str> = expected.iter().map(|e| e.id.as_str()).collect();
    want_ids.sort_unstable();
    assert_eq!(
        got_ids, want_ids,
        "every matching event of a large publish arrives once"
    );
    let late = probe.delivered(Duration::from_millis(500)).await;
    assert!(late.is_empty(), "nothing else arrives: {late:#?}");
}
