//! Schedules: 5-field cron, presets (`@daily`, `@every15m`), plain English ("every weekday at
//! 9am"), and what is computed from a parsed schedule (next runs, the EventBridge form).
//!
//! Properties besides "no panic, nothing over 1 s": a parsed schedule runs at least once from
//! 2000-01-01 (`parse` promises it); its next runs increase strictly; its expanded expression
//! parses to the same schedule; an English phrase that is understood gives an expression that
//! parses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wf_core::cron::{CronSpec, parse_any, parse_english};

/// Start points for the next runs: the Unix epoch, 2000, 2026, far past, far future, extremes.
const FROM_MS: [i64; 6] = [
    0,
    946_684_800_000,
    1_780_000_000_000,
    -62_135_596_800_000,
    95_617_584_000_000,
    i64::MAX,
];

fn check(spec: &CronSpec) {
    assert!(
        spec.next_after(946_684_800_000).is_some(),
        "parsed but never runs"
    );
    for from in FROM_MS {
        let runs = spec.next_n(from, 3);
        let mut prev = from;
        for t in runs {
            assert!(t > prev, "next runs do not increase: {t} after {prev}");
            prev = t;
        }
    }
    let again = CronSpec::parse(spec.expression()).expect("the expanded expression parses");
    assert_eq!(again.expression(), spec.expression());
    if let Ok(eb) = spec.to_eventbridge() {
        assert!(eb.starts_with("cron(") && eb.ends_with(')'), "{eb}");
        assert_eq!(eb.split(' ').count(), 6, "{eb}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(spec) = CronSpec::parse(text) {
        check(&spec);
    }
    if let Ok(expr) = parse_english(text) {
        match CronSpec::parse(&expr) {
            Ok(spec) => check(&spec),
            // "on the 31st of february" is understood, and never runs: refused, rightly.
            Err(e) if e.to_string().contains("never runs") => {}
            Err(e) => panic!("{text:?} is understood as {expr:?}, which does not parse: {e}"),
        }
    }
    if let Ok(spec) = parse_any(text) {
        check(&spec);
    }
});
