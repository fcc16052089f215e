//! Schedules: 5-field cron in UTC, presets, plain English, and the EventBridge form.
//!
//! * [`CronSpec::parse`] reads `minute hour day-of-month month day-of-week` (UTC) or a preset
//!   (`@every5m`, `@every<N>m` for N dividing 60, `@every<N>h` for N dividing 24, `@hourly`,
//!   `@daily`, `@weekly`, `@monthly`, `@yearly`).
//! * [`CronSpec::next_after`] / [`CronSpec::next_n`] compute the next runs (croner does the
//!   calendar arithmetic).
//! * [`CronSpec::to_eventbridge`] gives the 6-field `cron(...)` form EventBridge wants, and
//!   refuses what EventBridge cannot express (ARCHITECTURE.md, "EventBridge cron"): day-of-week is 1-7 =
//!   SUN-SAT there, and one of day-of-month / day-of-week must be `?`.
//! * [`parse_english`] turns "every weekday at 9am" into `0 9 * * 1-5`; [`parse_any`] accepts
//!   either.

use std::fmt;

use chrono::{TimeZone, Utc};

use crate::error::{InvalidText, TextRule};

const DOW_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

/// What the presets and the English forms accept, for error messages.
pub const FORMS_HELP: &str = "a 5-field cron expression in UTC (minute hour day-of-month month day-of-week, \
e.g. \"0 9 * * 1-5\"), a preset (@every5m, @every2h, @hourly, @daily, @weekly, @monthly), or plain \
English: \"every minute\", \"every 15 minutes\", \"every 2 hours\", \"hourly\", \"daily at 9am\", \
\"every day at 17:30\", \"every weekday at 9am\", \"every monday at 8:15\", \"weekly on friday at 5pm\", \
\"on the 1st of every month at 6am\", \"on the last day of every month\"";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

const UNITS: [Unit; 5] = [
    Unit::Minute,
    Unit::Hour,
    Unit::DayOfMonth,
    Unit::Month,
    Unit::DayOfWeek,
];

impl Unit {
    fn label(self) -> &'static str {
        match self {
            Unit::Minute => "minute",
            Unit::Hour => "hour",
            Unit::DayOfMonth => "day-of-month",
            Unit::Month => "month",
            Unit::DayOfWeek => "day-of-week",
        }
    }

    /// Inclusive bounds of the values written in an expression (day-of-week 7 = Sunday).
    fn bounds(self) -> (u8, u8) {
        match self {
            Unit::Minute => (0, 59),
            Unit::Hour => (0, 23),
            Unit::DayOfMonth => (1, 31),
            Unit::Month => (1, 12),
            Unit::DayOfWeek => (0, 7),
        }
    }

    fn allowed(self) -> &'static str {
        match self {
            Unit::Minute => "0-59",
            Unit::Hour => "0-23",
            Unit::DayOfMonth => "1-31",
            Unit::Month => "1-12 or JAN-DEC",
            Unit::DayOfWeek => "0-7 (0 and 7 are Sunday) or SUN-SAT",
        }
    }

    /// Every value the field can take (day-of-week without the alias 7).
    fn full_mask(self) -> u64 {
        let (lo, hi) = match self {
            Unit::DayOfWeek => (0, 6),
            other => other.bounds(),
        };
        (lo..=hi).fold(0, |m, v| m | (1u64 << v))
    }
}

/// One parsed field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Field {
    /// `*` or `?`.
    #[default]
    Any,
    /// A set of values (bit i = value i; day-of-week 7 is folded into 0).
    Values(u64),
    /// Day-of-month `L`: the last day of the month.
    LastDayOfMonth,
    /// Day-of-month `15W`: the weekday nearest to the 15th.
    NearestWeekday(u8),
    /// Day-of-week `5L`: the last Friday of the month.
    LastWeekday(u8),
    /// Day-of-week `1#2`: the second Monday of the month.
    NthWeekday(u8, u8),
}

impl Field {
    fn restricted(&self) -> bool {
        !matches!(self, Field::Any)
    }
}

/// A parsed schedule: 5-field cron in UTC.
#[derive(Clone)]
pub struct CronSpec {
    source: String,
    expression: String,
    fields: [Field; 5],
    cron: croner::Cron,
}

impl fmt::Debug for CronSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CronSpec")
            .field("source", &self.source)
            .field("expression", &self.expression)
            .finish()
    }
}

impl PartialEq for CronSpec {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.expression == other.expression
    }
}

impl fmt::Display for CronSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

/// A schedule that breaks the cron rules, with the message to show.
fn invalid(message: impl Into<String>) -> InvalidText {
    InvalidText::new(TextRule::Schedule, message)
}

/// Whether some date can match the day-of-month and month fields: false when day-of-week is `*`
/// and none of the days exists in any of the months (`0 0 30 2 *`, `0 0 31 4,6 *`). A restricted
/// day-of-week matches on its own (standard cron runs when either day field matches).
fn days_can_match(dom: &Field, month: &Field, dow: &Field) -> bool {
    const DAYS_IN_MONTH: [u8; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if dow.restricted() {
        return true;
    }
    let months = match month {
        Field::Values(bits) => *bits,
        _ => Unit::Month.full_mask(),
    };
    let longest = (1..=12u8)
        .filter(|m| months & (1u64 << m) != 0)
        .map(|m| DAYS_IN_MONTH[usize::from(m - 1)])
        .max()
        .unwrap_or(0);
    match dom {
        Field::Values(bits) => (1..=longest).any(|d| bits & (1u64 << d) != 0),
        Field::NearestWeekday(d) => *d <= longest,
        _ => true,
    }
}

/// A start time from which a valid schedule must fire at least once (so `0 0 31 2 *`, which
/// never fires, is refused). Croner searches up to the year 5000.
const NEVER_PROBE_MS: i64 = 946_684_800_000; // 2000-01-01T00:00:00Z

impl CronSpec {
    /// Parse a 5-field cron expression (UTC) or a preset. The error says what is wrong.
    pub fn parse(text: &str) -> Result<CronSpec, InvalidText> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(invalid(format!("empty schedule; write {FORMS_HELP}")));
        }
        let expression = if trimmed.starts_with('@') {
            preset(trimmed)?
        } else {
            trimmed.split_whitespace().collect::<Vec<_>>().join(" ")
        };
        let parts: Vec<&str> = expression.split(' ').collect();
        if parts.len() != 5 {
            let mut msg = format!(
                "{trimmed:?} has {} field{}; a cron expression has 5: minute hour day-of-month month day-of-week (UTC)",
                parts.len(),
                if parts.len() == 1 { "" } else { "s" }
            );
            if parts.len() == 6 {
                msg.push_str(
                    "; seconds and years are not supported (an EventBridge `cron(...)` has 6 fields: drop the year and use `*` for `?`)",
                );
            }
            return Err(invalid(msg));
        }
        let mut fields: [Field; 5] = Default::default();
        for (i, (unit, part)) in UNITS.iter().zip(&parts).enumerate() {
            fields[i] = parse_field(*unit, part).map_err(|e| {
                invalid(format!("{trimmed:?}: {} field {part:?}: {e}", unit.label()))
            })?;
        }
        // Croner reads the day-of-week `L` / `#` forms by their own numbers only: `7L`, `SUNL`
        // or `7#2` never match there (found by the `cron` fuzz target: `0 9 * * 7L` searched to
        // the year 5000 and was refused after 1 s). It gets them as parsed (7 folded into 0).
        let mut croner_parts = parts.clone();
        let dow_form = match fields[4] {
            Field::LastWeekday(d) => Some(format!("{d}L")),
            Field::NthWeekday(d, n) => Some(format!("{d}#{n}")),
            _ => None,
        };
        if let Some(form) = &dow_form {
            croner_parts[4] = form.as_str();
        }
        let cron = croner::Cron::new(&croner_parts.join(" "))
            .parse()
            .map_err(|e| invalid(format!("{trimmed:?} is not a valid cron expression: {e}")))?;
        // A schedule that never runs would have croner search to the year 5000 (0.3-1 s of CPU
        // per schedule, for `0 0 31 4,6 *`): the day fields are checked first.
        if !days_can_match(&fields[2], &fields[3], &fields[4]) {
            return Err(invalid(format!(
                "{trimmed:?} never runs (no calendar date matches it)"
            )));
        }
        let spec = CronSpec {
            source: trimmed.to_string(),
            expression,
            fields,
            cron,
        };
        if spec.next_after(NEVER_PROBE_MS).is_none() {
            return Err(invalid(format!(
                "{trimmed:?} never runs (no calendar date matches it)"
            )));
        }
        Ok(spec)
    }

    /// The text this was parsed from (trimmed).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The 5-field expression (presets and English expanded), e.g. `0 9 * * 1-5`.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The first run strictly after `epoch_ms` (UTC), in epoch milliseconds.
    pub fn next_after(&self, epoch_ms: i64) -> Option<i64> {
        let start = Utc.timestamp_opt(epoch_ms.div_euclid(1000), 0).single()?;
        let next = self.cron.find_next_occurrence(&start, false).ok()?;
        let ms = next.timestamp_millis();
        (ms > epoch_ms).then_some(ms)
    }

    /// The next `n` runs strictly after `from_ms`.
    pub fn next_n(&self, from_ms: i64, n: usize) -> Vec<i64> {
        let mut out = Vec::with_capacity(n);
        let mut cur = from_ms;
        while out.len() < n {
            match self.next_after(cur) {
                Some(t) => {
                    out.push(t);
                    cur = t;
                }
                None => break,
            }
        }
        out
    }

    /// The EventBridge schedule expression: `cron(minute hour day-of-month month day-of-week year)`,
    /// e.g. `0 9 * * 1-5` -> `cron(0 9 ? * MON-FRI *)`.
    pub fn to_eventbridge(&self) -> Result<String, InvalidText> {
        let [minute, hour, dom, month, dow] = &self.fields;
        if dom.restricted() && dow.restricted() {
            let p: Vec<&str> = self.expression.split(' ').collect();
            return Err(invalid(format!(
                "{:?} restricts both the day of the month ({:?}) and the day of the week ({:?}); EventBridge \
                 cannot express that. Standard cron runs when either matches: use two schedule triggers, \
                 \"{} {} {} {} *\" and \"{} {} * {} {}\"",
                self.source, p[2], p[4], p[0], p[1], p[2], p[3], p[0], p[1], p[3], p[4]
            )));
        }
        let minute = render_numeric(Unit::Minute, minute);
        let hour = render_numeric(Unit::Hour, hour);
        let month = render_numeric(Unit::Month, month);
        let (dom, dow) = if dow.restricted() {
            ("?".to_string(), render_dow(dow))
        } else {
            (render_numeric(Unit::DayOfMonth, dom), "?".to_string())
        };
        Ok(format!("cron({minute} {hour} {dom} {month} {dow} *)"))
    }
}

impl std::str::FromStr for CronSpec {
    type Err = InvalidText;
    fn from_str(s: &str) -> Result<Self, InvalidText> {
        CronSpec::parse(s)
    }
}

/// Expand a preset into a 5-field expression.
fn preset(p: &str) -> Result<String, InvalidText> {
    let lower = p.to_ascii_lowercase();
    let fixed = match lower.as_str() {
        "@hourly" => Some("0 * * * *"),
        "@daily" | "@midnight" => Some("0 0 * * *"),
        "@weekly" => Some("0 0 * * 0"),
        "@monthly" => Some("0 0 1 * *"),
        "@yearly" | "@annually" => Some("0 0 1 1 *"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Ok(f.to_string());
    }
    let unknown = || {
        invalid(format!(
            "unknown preset {p:?}; presets are @every<N>m (N dividing 60, e.g. @every5m), @every<N>h \
             (N dividing 24, e.g. @every2h), @hourly, @daily, @weekly, @monthly, @yearly"
        ))
    };
    let rest = lower.strip_prefix("@every").ok_or_else(unknown)?.trim();
    let (num, unit) = rest.split_at(
        rest.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len()),
    );
    let n: u32 = num.parse().map_err(|_| unknown())?;
    match unit.trim() {
        "m" | "min" | "mins" | "minute" | "minutes" => every_minutes(n),
        "h" | "hour" | "hours" => every_hours(n),
        _ => Err(unknown()),
    }
}

fn every_minutes(n: u32) -> Result<String, InvalidText> {
    match n {
        1 => Ok("* * * * *".into()),
        60 => Ok("0 * * * *".into()),
        n if n > 0 && n < 60 && 60 % n == 0 => Ok(format!("*/{n} * * * *")),
        _ => Err(invalid(format!(
            "every {n} minutes cannot be a cron schedule: the minutes must divide 60 (1, 2, 3, 4, 5, 6, 10, 12, 15, \
             20, 30 or 60) so that the runs are evenly spaced"
        ))),
    }
}

fn every_hours(n: u32) -> Result<String, InvalidText> {
    match n {
        1 => Ok("0 * * * *".into()),
        24 => Ok("0 0 * * *".into()),
        n if n > 0 && n < 24 && 24 % n == 0 => Ok(format!("0 */{n} * * *")),
        _ => Err(invalid(format!(
            "every {n} hours cannot be a cron schedule: the hours must divide 24 (1, 2, 3, 4, 6, 8, 12 or 24) so that \
             the runs are evenly spaced"
        ))),
    }
}

fn parse_field(unit: Unit, text: &str) -> Result<Field, InvalidText> {
    let t = text.to_ascii_uppercase();
    if t == "*" {
        return Ok(Field::Any);
    }
    if t == "?" {
        return match unit {
            Unit::DayOfMonth | Unit::DayOfWeek => Ok(Field::Any),
            _ => Err(invalid(
                "`?` is only allowed in day-of-month and day-of-week",
            )),
        };
    }
    if unit == Unit::DayOfMonth {
        if t == "L" {
            return Ok(Field::LastDayOfMonth);
        }
        if t == "LW" {
            return Err(invalid("`LW` (last weekday of the month) is not supported"));
        }
        if let Some(d) = t.strip_suffix('W') {
            let d = parse_value(unit, d)?;
            return Ok(Field::NearestWeekday(d));
        }
    }
    if unit == Unit::DayOfWeek {
        if let Some((d, n)) = t.split_once('#') {
            let d = parse_value(unit, d)? % 7;
            let n: u8 = n
                .parse()
                .ok()
                .filter(|n| (1..=5).contains(n))
                .ok_or_else(|| {
                    invalid(format!(
                        "`#{n}` must be 1-5 (the nth such weekday of the month)"
                    ))
                })?;
            return Ok(Field::NthWeekday(d, n));
        }
        if t != "L"
            && let Some(d) = t.strip_suffix('L')
        {
            let d = parse_value(unit, d)? % 7;
            return Ok(Field::LastWeekday(d));
        }
    }
    let (lo_bound, hi_bound) = unit.bounds();
    let mut bits = 0u64;
    for item in t.split(',') {
        if item.is_empty() {
            return Err(invalid(
                "empty item in a list (two commas in a row, or a trailing comma)",
            ));
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u8 = s
                    .parse()
                    .ok()
                    .filter(|s| *s >= 1 && *s <= hi_bound.max(1))
                    .ok_or_else(|| {
                        invalid(format!(
                            "step {s:?} in {item:?} must be a number from 1 to {hi_bound}"
                        ))
                    })?;
                (r, Some(step))
            }
            None => (item, None),
        };
        let (lo, hi) = if range == "*" {
            (lo_bound, hi_bound)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (parse_value(unit, a)?, parse_value(unit, b)?);
            if a > b {
                return Err(invalid(format!(
                    "range {range:?} goes backwards; write it from the smaller value to the larger one \
                     (or as a list)"
                )));
            }
            (a, b)
        } else {
            let v = parse_value(unit, range)?;
            if step.is_some() {
                (v, hi_bound)
            } else {
                (v, v)
            }
        };
        for v in (lo..=hi).step_by(step.unwrap_or(1) as usize) {
            bits |= 1u64 << v;
        }
    }
    if unit == Unit::DayOfWeek && bits & (1 << 7) != 0 {
        bits = (bits & !(1 << 7)) | 1;
    }
    Ok(Field::Values(bits))
}

fn parse_value(unit: Unit, s: &str) -> Result<u8, InvalidText> {
    let (lo, hi) = unit.bounds();
    let names: &[&str] = match unit {
        Unit::Month => &MONTH_NAMES,
        Unit::DayOfWeek => &DOW_NAMES,
        _ => &[],
    };
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(if unit == Unit::Month {
            i as u8 + 1
        } else {
            i as u8
        });
    }
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_digit()) {
        return Err(invalid(format!(
            "{s:?} is not a {} value ({})",
            unit.label(),
            unit.allowed()
        )));
    }
    match s.parse::<u8>() {
        Ok(v) if v >= lo && v <= hi => Ok(v),
        _ => Err(invalid(format!(
            "{} value {s} is out of range ({})",
            unit.label(),
            unit.allowed()
        ))),
    }
}

/// Minute, hour, day-of-month and month in EventBridge syntax: `*`, `0/15`, `1-5`, `1,15`.
fn render_numeric(unit: Unit, field: &Field) -> String {
    match field {
        Field::Any => "*".into(),
        Field::LastDayOfMonth => "L".into(),
        Field::NearestWeekday(d) => format!("{d}W"),
        Field::Values(bits) if *bits & unit.full_mask() == unit.full_mask() => "*".into(),
        Field::Values(bits) => {
            let values: Vec<u8> = (0..64u8).filter(|v| bits & (1u64 << v) != 0).collect();
            let (_, hi) = unit.bounds();
            // An arithmetic progression that runs to the end of the range: `start/step`.
            if values.len() >= 3 {
                let step = values[1] - values[0];
                let regular = values.windows(2).all(|w| w[1] - w[0] == step);
                if step > 1 && regular && values[values.len() - 1] + step > hi {
                    return format!("{}/{}", values[0], step);
                }
            }
            runs(&values, |v| v.to_string())
        }
        // Day-of-week forms never reach here.
        Field::LastWeekday(_) | Field::NthWeekday(..) => "*".into(),
    }
}

/// Day-of-week in EventBridge syntax: names (`MON-FRI`, `SUN,SAT`), `6L`, `2#1` (1-7 = SUN-SAT).
fn render_dow(field: &Field) -> String {
    match field {
        Field::Values(bits) if *bits & 0x7f == 0x7f => "*".into(),
        Field::Values(bits) => {
            let values: Vec<u8> = (0..7u8).filter(|v| bits & (1u64 << v) != 0).collect();
            runs(&values, |v| DOW_NAMES[v as usize].to_string())
        }
        Field::LastWeekday(d) => format!("{}L", d + 1),
        Field::NthWeekday(d, n) => format!("{}#{n}", d + 1),
        Field::Any | Field::LastDayOfMonth | Field::NearestWeekday(_) => "*".into(),
    }
}

/// Sorted values as a list of runs: three or more consecutive values become `a-b`.
fn runs(values: &[u8], name: impl Fn(u8) -> String) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < values.len() {
        let mut j = i;
        while j + 1 < values.len() && values[j + 1] == values[j] + 1 {
            j += 1;
        }
        if j - i >= 2 {
            parts.push(format!("{}-{}", name(values[i]), name(values[j])));
        } else {
            for v in &values[i..=j] {
                parts.push(name(*v));
            }
        }
        i = j + 1;
    }
    parts.join(",")
}

/// Parse a schedule written as cron / a preset, or else as plain English.
pub fn parse_any(text: &str) -> Result<CronSpec, InvalidText> {
    let cron_err = match CronSpec::parse(text) {
        Ok(spec) => return Ok(spec),
        Err(e) => e,
    };
    match parse_english(text) {
        Ok(expr) => {
            let mut spec = CronSpec::parse(&expr)?;
            spec.source = text.trim().to_string();
            Ok(spec)
        }
        Err(english_err) => {
            if looks_like_cron(text) {
                Err(cron_err)
            } else {
                Err(english_err)
            }
        }
    }
}

fn looks_like_cron(text: &str) -> bool {
    let t = text.trim();
    t.starts_with('@')
        || t.split_whitespace().next().is_some_and(|first| {
            first
                .chars()
                .all(|c| c.is_ascii_digit() || "*?/,-".contains(c))
        }) && t.split_whitespace().count() >= 3
}

/// Turn plain English into a 5-field cron expression (UTC), e.g. "every weekday at 9am" ->
/// `0 9 * * 1-5`. Anything else is an error listing the forms understood.
pub fn parse_english(text: &str) -> Result<String, InvalidText> {
    let original = text.trim();
    let mut s = original.to_lowercase();
    s = s.trim_end_matches(['.', '!']).to_string();
    s = s.replace(',', " , ");
    let mut words: Vec<&str> = s.split_whitespace().collect();
    // Time zone suffixes: only UTC exists.
    while let Some(last) = words.last() {
        match *last {
            "utc" | "(utc)" | "gmt" | "z" | "in" => {
                words.pop();
            }
            w if w.len() >= 3 && w.chars().all(|c| c.is_ascii_alphabetic()) && is_time_zone(w) => {
                return Err(invalid(format!(
                    "{original:?}: schedules are in UTC; convert the time to UTC and drop {w:?}"
                )));
            }
            _ => break,
        }
    }
    for lead in ["run", "runs", "schedule", "trigger"] {
        if words.first() == Some(&lead) {
            words.remove(0);
        }
    }
    let mut s = words.join(" ");
    // "at 9am every day" -> "every day at 9am"
    if let Some(rest) = s.strip_prefix("at ") {
        let rest = rest.to_string();
        let spaces: Vec<usize> = rest.match_indices(' ').map(|(i, _)| i).collect();
        // the longest prefix that is a time ("5:30 pm" rather than "5:30")
        for i in spaces.into_iter().rev() {
            let (time, remainder) = (&rest[..i], rest[i + 1..].trim());
            if !remainder.is_empty() && parse_times(time).is_ok() {
                s = format!("{remainder} at {time}");
                break;
            }
        }
    }
    english(&s).map_err(|e| match e {
        Some(specific) => invalid(format!("{original:?}: {specific}")),
        None => invalid(format!(
            "could not read {original:?} as a schedule; write {FORMS_HELP}"
        )),
    })
}

fn is_time_zone(w: &str) -> bool {
    matches!(
        w,
        "est"
            | "edt"
            | "cst"
            | "cdt"
            | "mst"
            | "mdt"
            | "pst"
            | "pdt"
            | "cet"
            | "cest"
            | "bst"
            | "ist"
            | "jst"
            | "aest"
            | "local"
    )
}

/// `Err(None)` = not understood at all; `Err(Some(msg))` = understood but invalid.
fn english(s: &str) -> Result<String, Option<InvalidText>> {
    let (head, times) = match s.rsplit_once(" at ") {
        Some((h, t)) => (h.trim(), Some(parse_times(t).map_err(Some)?)),
        None => (s.trim(), None),
    };
    let at = |default: (u32, Vec<u32>)| -> (u32, String) {
        let (m, hours) = times.clone().unwrap_or(default);
        let hours: Vec<String> = hours.iter().map(|h| h.to_string()).collect();
        (m, hours.join(","))
    };
    let w: Vec<&str> = head.split(' ').filter(|w| !w.is_empty()).collect();
    let no_time = |what: &str| -> Result<(), Option<InvalidText>> {
        if times.is_some() {
            Err(Some(invalid(format!(
                "{what} runs several times a day; it cannot also have \"at <time>\""
            ))))
        } else {
            Ok(())
        }
    };
    match w.as_slice() {
        ["every" | "each", "minute"] | ["every", "1", "minute"] | ["minutely"] => {
            no_time("every minute")?;
            return Ok("* * * * *".into());
        }
        ["every", n, unit] if is_unit(unit, &["minute", "minutes", "min", "mins", "m"]) => {
            no_time("every N minutes")?;
            let n = number(n)?;
            return every_minutes(n).map_err(Some);
        }
        ["every", n, unit] if is_unit(unit, &["second", "seconds", "sec", "secs", "s"]) => {
            let _ = n;
            return Err(Some(invalid(
                "schedules run at most once a minute; seconds are not supported",
            )));
        }
        ["every" | "each", "second"] => {
            return Err(Some(invalid(
                "schedules run at most once a minute; seconds are not supported",
            )));
        }
        ["hourly"] | ["every" | "each", "hour"] | ["every", "1", "hour"] => {
            // "every hour at :15" / "hourly at 15" -> minute 15
            return match &times {
                None => Ok("0 * * * *".into()),
                Some(_) => Err(Some(invalid(
                    "for a minute past every hour write a cron expression, e.g. \"15 * * * *\"",
                ))),
            };
        }
        ["every", n, unit] if is_unit(unit, &["hour", "hours", "hr", "hrs", "h"]) => {
            no_time("every N hours")?;
            let n = number(n)?;
            return every_hours(n).map_err(Some);
        }
        ["daily"] | ["every" | "each", "day"] | ["every", "1", "day"] | ["nightly"] => {
            let (m, h) = at((0, vec![0]));
            return Ok(format!("{m} {h} * * *"));
        }
        [
            "every" | "on",
            "weekday" | "weekdays" | "workday" | "workdays",
        ]
        | ["weekdays" | "workdays"]
        | ["every" | "on", "business", "day" | "days"] => {
            let (m, h) = at((0, vec![0]));
            return Ok(format!("{m} {h} * * 1-5"));
        }
        ["every" | "on", "weekend" | "weekends"]
        | ["weekends"]
        | ["every" | "on", "weekend", "day" | "days"] => {
            let (m, h) = at((0, vec![0]));
            return Ok(format!("{m} {h} * * 0,6"));
        }
        ["weekly"] | ["every" | "each", "week"] => {
            let (m, h) = at((0, vec![0]));
            return Ok(format!("{m} {h} * * 0"));
        }
        ["monthly"] | ["every" | "each", "month"] => {
            let (m, h) = at((0, vec![0]));
            return Ok(format!("{m} {h} 1 * *"));
        }
        _ => {}
    }
    // weekly on <days> / every <days> / on <days> / <days>
    let days_part = match w.as_slice() {
        ["weekly" | "every" | "each", "week", "on", rest @ ..] | ["weekly", "on", rest @ ..] => {
            rest
        }
        ["every" | "each" | "on", rest @ ..] => rest,
        rest => rest,
    };
    if let Some(days) = parse_days(days_part)? {
        let (m, h) = at((0, vec![0]));
        return Ok(format!("{m} {h} * * {days}"));
    }
    // Day of the month: "on the 1st of every month", "monthly on the 15th", "every month on the 2nd",
    // "on the last day of the month".
    let (dom_part, monthly) = match w.as_slice() {
        ["monthly" | "every" | "each", "month", "on", rest @ ..] | ["monthly", "on", rest @ ..] => {
            (rest, true)
        }
        ["on", rest @ ..] => (rest, false),
        rest => (rest, false),
    };
    const MONTH_SUFFIXES: [&[&str]; 6] = [
        &["of", "every", "month"],
        &["of", "each", "month"],
        &["of", "the", "month"],
        &["every", "month"],
        &["each", "month"],
        &["monthly"],
    ];
    let stripped = MONTH_SUFFIXES
        .iter()
        .find(|suf| dom_part.len() > suf.len() && dom_part.ends_with(suf))
        .map(|suf| &dom_part[..dom_part.len() - suf.len()]);
    let rest = match (stripped, monthly) {
        (Some(r), _) => Some(r),
        (None, true) => Some(dom_part),
        (None, false) => None,
    };
    if let Some(rest) = rest {
        let rest = match rest {
            ["the", r @ ..] => r,
            r => r,
        };
        let dom = match rest {
            ["last", "day"] | ["last"] => Some("L".to_string()),
            ["day", n] | [n] | [n, "day"] => ordinal(n).map(|d| d.to_string()),
            _ => None,
        };
        match dom {
            Some(dom) => {
                let (m, h) = at((0, vec![0]));
                return Ok(format!("{m} {h} {dom} * *"));
            }
            None => {
                return Err(Some(invalid(format!(
                    "{:?} is not a day of the month (write 1st, 2nd, 15th ... 31st, or \"the last day\")",
                    rest.join(" ")
                ))));
            }
        }
    }
    Err(None)
}

fn is_unit(word: &str, units: &[&str]) -> bool {
    units.contains(&word)
}

fn number(s: &str) -> Result<u32, Option<InvalidText>> {
    let n = match s {
        "one" | "a" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "ten" => 10,
        "twelve" => 12,
        "fifteen" => 15,
        "twenty" => 20,
        "thirty" => 30,
        _ => s
            .parse()
            .map_err(|_| Some(invalid(format!("{s:?} is not a number"))))?,
    };
    Ok(n)
}

/// "1st", "2nd", "15th", "15" -> day of month 1..=31.
fn ordinal(s: &str) -> Option<u8> {
    let digits = s
        .strip_suffix("st")
        .or_else(|| s.strip_suffix("nd"))
        .or_else(|| s.strip_suffix("rd"))
        .or_else(|| s.strip_suffix("th"))
        .unwrap_or(s);
    let n: u8 = digits.parse().ok()?;
    (1..=31).contains(&n).then_some(n)
}

fn day_of_week(word: &str) -> Option<u8> {
    const DAYS: [&[&str]; 7] = [
        &["sunday", "sundays", "sun"],
        &["monday", "mondays", "mon"],
        &["tuesday", "tuesdays", "tue", "tues"],
        &["wednesday", "wednesdays", "wed", "weds"],
        &["thursday", "thursdays", "thu", "thur", "thurs"],
        &["friday", "fridays", "fri"],
        &["saturday", "saturdays", "sat"],
    ];
    DAYS.iter()
        .position(|names| names.contains(&word))
        .map(|i| i as u8)
}

/// "monday", "mon and thu", "monday, wednesday and friday", "monday to friday" -> `1`, `1,4`,
/// `1,3,5`, `1-5`. `Ok(None)` when the words are not a list of days.
fn parse_days(words: &[&str]) -> Result<Option<String>, Option<InvalidText>> {
    if words.is_empty() {
        return Ok(None);
    }
    if let [a, "to" | "through" | "thru" | "-", b] = words
        && let (Some(a), Some(b)) = (day_of_week(a), day_of_week(b))
    {
        if a <= b {
            return Ok(Some(format!("{a}-{b}")));
        }
        return Ok(Some(format!("{a}-6,0-{b}")));
    }
    if let [one] = words
        && let Some((a, b)) = one.split_once('-')
        && let (Some(a), Some(b)) = (day_of_week(a), day_of_week(b))
        && a <= b
    {
        return Ok(Some(format!("{a}-{b}")));
    }
    let mut days = Vec::new();
    for w in words {
        if matches!(*w, "and" | "," | "&") {
            continue;
        }
        match day_of_week(w) {
            Some(d) => days.push(d),
            None => return Ok(None),
        }
    }
    if days.is_empty() {
        return Ok(None);
    }
    days.sort_unstable();
    days.dedup();
    Ok(Some(
        days.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(","),
    ))
}

/// "9am", "9:30 pm", "17:30", "noon", "midnight", "9am and 5pm" -> (minute, hours).
fn parse_times(s: &str) -> Result<(u32, Vec<u32>), InvalidText> {
    let parts: Vec<&str> = s
        .split(" and ")
        .flat_map(|p| p.split(" , "))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        return Err(invalid(format!("{s:?} is not a time of day")));
    }
    let mut minute = None;
    let mut hours = Vec::new();
    for p in parts {
        let (h, m) = parse_time(p)?;
        if minute.is_some_and(|x| x != m) {
            return Err(invalid(format!(
                "{s:?}: several times of day must share the same minute (one cron expression); use one schedule trigger per time"
            )));
        }
        minute = Some(m);
        hours.push(h);
    }
    hours.sort_unstable();
    hours.dedup();
    Ok((minute.unwrap_or(0), hours))
}

fn parse_time(s: &str) -> Result<(u32, u32), InvalidText> {
    let bad = || {
        invalid(format!(
            "{s:?} is not a time of day (write 9am, 9:30pm or 17:30; times are UTC)"
        ))
    };
    let t = s.replace(' ', "");
    match t.as_str() {
        "noon" | "midday" => return Ok((12, 0)),
        "midnight" => return Ok((0, 0)),
        _ => {}
    }
    let (body, meridiem) = if let Some(b) = t.strip_suffix("am").or_else(|| t.strip_suffix("a.m")) {
        (b, Some(false))
    } else if let Some(b) = t.strip_suffix("pm").or_else(|| t.strip_suffix("p.m")) {
        (b, Some(true))
    } else {
        (t.as_str(), None)
    };
    let body = body.strip_suffix("o'clock").unwrap_or(body);
    let (h, m) = match body.split_once([':', '.']) {
        Some((h, m)) => (h, m),
        None => (body, "0"),
    };
    if h.is_empty()
        || !h.chars().all(|c| c.is_ascii_digit())
        || !m.chars().all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    if body.contains([':', '.']) && m.len() != 2 {
        return Err(bad());
    }
    let h: u32 = h.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    if m > 59 {
        return Err(invalid(format!("{s:?}: minutes go up to 59")));
    }
    let h = match meridiem {
        Some(pm) => {
            if !(1..=12).contains(&h) {
                return Err(invalid(format!("{s:?}: with am/pm the hour is 1-12")));
            }
            match (h, pm) {
                (12, false) => 0,
                (12, true) => 12,
                (h, true) => h + 12,
                (h, false) => h,
            }
        }
        None => {
            if h > 23 {
                return Err(invalid(format!("{s:?}: hours go up to 23")));
            }
            h
        }
    };
    Ok((h, m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time_fmt::{format_ms, parse_ms};

    fn ms(s: &str) -> i64 {
        parse_ms(s).unwrap()
    }

    fn eb(expr: &str) -> String {
        CronSpec::parse(expr).unwrap().to_eventbridge().unwrap()
    }

    fn runs(expr: &str, from: &str, n: usize) -> Vec<String> {
        CronSpec::parse(expr)
            .unwrap()
            .next_n(ms(from), n)
            .into_iter()
            .map(format_ms)
            .collect()
    }

    #[test]
    fn parses_five_fields_and_presets() {
        assert_eq!(
            CronSpec::parse("0 9 * * 1-5").unwrap().expression(),
            "0 9 * * 1-5"
        );
        assert_eq!(
            CronSpec::parse("  0   9 * *  MON-FRI ")
                .unwrap()
                .expression(),
            "0 9 * * MON-FRI"
        );
        // names and special characters in any case
        for expr in [
            "0 9 * * mon-fri",
            "0 9 * jan,Jul *",
            "0 9 15w * *",
            "0 9 l * *",
            "0 9 * * fri#2",
            "0 9 * * 5l",
        ] {
            let spec = CronSpec::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
            assert!(spec.next_after(0).is_some(), "{expr}");
            assert!(spec.to_eventbridge().is_ok(), "{expr}");
        }
        assert_eq!(eb("0 9 * * mon-fri"), "cron(0 9 ? * MON-FRI *)");
        for (p, e) in [
            ("@every5m", "*/5 * * * *"),
            ("@every1m", "* * * * *"),
            ("@every15m", "*/15 * * * *"),
            ("@every60m", "0 * * * *"),
            ("@every2h", "0 */2 * * *"),
            ("@every1h", "0 * * * *"),
            ("@every24h", "0 0 * * *"),
            ("@hourly", "0 * * * *"),
            ("@daily", "0 0 * * *"),
            ("@weekly", "0 0 * * 0"),
            ("@monthly", "0 0 1 * *"),
            ("@DAILY", "0 0 * * *"),
        ] {
            let spec = CronSpec::parse(p).unwrap();
            assert_eq!(spec.expression(), e, "{p}");
            assert_eq!(spec.source(), p);
        }
    }

    #[test]
    fn rejects_bad_expressions_with_clear_messages() {
        let cases = [
            ("", "empty"),
            ("0 9 * *", "has 4 fields"),
            ("0 0 9 * * 1", "seconds and years are not supported"),
            ("60 * * * *", "minute value 60 is out of range (0-59)"),
            ("0 24 * * *", "hour value 24 is out of range"),
            ("0 0 0 * *", "day-of-month value 0 is out of range"),
            ("0 0 * 13 *", "month value 13"),
            ("0 0 * * 8", "day-of-week value 8"),
            ("0 0 * * FUNDAY", "\"FUNDAY\" is not a day-of-week value"),
            ("*/0 * * * *", "step \"0\""),
            ("5-1 * * * *", "goes backwards"),
            ("1,,2 * * * *", "empty item"),
            ("0 ? * * *", "`?` is only allowed"),
            ("0 0 30 2 *", "never runs"),
            ("@every7m", "must divide 60"),
            ("@every5h", "must divide 24"),
            ("@often", "unknown preset"),
            ("0 0 LW * *", "not supported"),
            ("0 0 * * 1#6", "must be 1-5"),
        ];
        for (text, fragment) in cases {
            let err = CronSpec::parse(text).unwrap_err();
            assert!(err.message.contains(fragment), "{text:?}: {err}");
        }
    }

    #[test]
    fn next_runs_are_strictly_after_and_cross_month_ends() {
        // exactly on a run time: the next one, not the same
        assert_eq!(
            runs("0 9 * * *", "2026-11-24T09:00:00.000Z", 1),
            ["2026-11-25T09:00:00.000Z"]
        );
        // a millisecond before: that very run
        assert_eq!(
            runs("0 9 * * *", "2026-11-24T08:59:59.999Z", 1),
            ["2026-11-24T09:00:00.000Z"]
        );
        // a millisecond after
        assert_eq!(
            runs("0 9 * * *", "2026-11-24T09:00:00.001Z", 1),
            ["2026-11-25T09:00:00.000Z"]
        );
        // month ends, leap years, year ends
        assert_eq!(
            runs("30 23 L * *", "2028-01-31T23:30:00.000Z", 3),
            [
                "2028-02-29T23:30:00.000Z",
                "2028-03-31T23:30:00.000Z",
                "2028-04-30T23:30:00.000Z"
            ]
        );
        assert_eq!(
            runs("0 0 31 * *", "2026-01-31T00:00:00.000Z", 3),
            [
                "2026-03-31T00:00:00.000Z",
                "2026-05-31T00:00:00.000Z",
                "2026-07-31T00:00:00.000Z"
            ]
        );
        assert_eq!(
            runs("@monthly", "2026-12-15T10:00:00.000Z", 2),
            ["2027-01-01T00:00:00.000Z", "2027-02-01T00:00:00.000Z"]
        );
        assert_eq!(
            runs("0 9 * * 1-5", "2026-11-27T10:00:00.000Z", 2), // a Friday after 9
            ["2026-11-30T09:00:00.000Z", "2026-12-01T09:00:00.000Z"]
        );
        assert_eq!(
            runs("@every5m", "2026-11-30T23:57:12.345Z", 2),
            ["2026-12-01T00:00:00.000Z", "2026-12-01T00:05:00.000Z"]
        );
        assert_eq!(
            runs("0 0 29 2 *", "2026-03-01T00:00:00.000Z", 1),
            ["2028-02-29T00:00:00.000Z"]
        );
        // day-of-week 7 is Sunday
        assert_eq!(
            runs("0 12 * * 7", "2026-11-24T00:00:00.000Z", 1),
            ["2026-11-29T12:00:00.000Z"]
        );
        // the weekday nearest the 15th: Sunday 2026-11-15 -> Monday 16th
        assert_eq!(
            runs("0 6 15W * *", "2026-11-01T00:00:00.000Z", 1),
            ["2026-11-16T06:00:00.000Z"]
        );
        // last Friday, second Monday
        assert_eq!(
            runs("0 8 * * 5L", "2026-11-01T00:00:00.000Z", 1),
            ["2026-11-27T08:00:00.000Z"]
        );
        assert_eq!(
            runs("0 8 * * 1#2", "2026-11-01T00:00:00.000Z", 1),
            ["2026-11-09T08:00:00.000Z"]
        );
    }

    #[test]
    fn converts_to_eventbridge() {
        assert_eq!(eb("0 9 * * 1-5"), "cron(0 9 ? * MON-FRI *)");
        assert_eq!(eb("0 9 * * MON-FRI"), "cron(0 9 ? * MON-FRI *)");
        assert_eq!(eb("0 10 * * *"), "cron(0 10 * * ? *)");
        assert_eq!(eb("*/5 * * * *"), "cron(0/5 * * * ? *)");
        assert_eq!(eb("@every5m"), "cron(0/5 * * * ? *)");
        assert_eq!(eb("0 */2 * * *"), "cron(0 0/2 * * ? *)");
        assert_eq!(eb("15,45 8-17 * * *"), "cron(15,45 8-17 * * ? *)");
        assert_eq!(eb("0 0 * * 0"), "cron(0 0 ? * SUN *)");
        assert_eq!(eb("0 0 * * 7"), "cron(0 0 ? * SUN *)");
        assert_eq!(eb("0 0 * * 0,6"), "cron(0 0 ? * SUN,SAT *)");
        assert_eq!(eb("0 0 * * 5-7"), "cron(0 0 ? * SUN,FRI,SAT *)");
        assert_eq!(eb("0 0 * * 1,3,5"), "cron(0 0 ? * MON,WED,FRI *)");
        // a day-of-week list naming every day still counts as restricted (as in standard cron)
        assert_eq!(eb("0 0 * * 0-6"), "cron(0 0 ? * * *)");
        assert_eq!(eb("0 0 * * 5L"), "cron(0 0 ? * 6L *)");
        assert_eq!(eb("0 0 * * MON#1"), "cron(0 0 ? * 2#1 *)");
        // day-of-month cases
        assert_eq!(eb("0 6 1 * *"), "cron(0 6 1 * ? *)");
        assert_eq!(eb("0 6 1,15 * *"), "cron(0 6 1,15 * ? *)");
        assert_eq!(eb("0 6 L * *"), "cron(0 6 L * ? *)");
        assert_eq!(eb("0 6 15W * *"), "cron(0 6 15W * ? *)");
        assert_eq!(eb("0 6 */10 * *"), "cron(0 6 1/10 * ? *)");
        assert_eq!(eb("0 6 1 */3 *"), "cron(0 6 1 1/3 ? *)");
        assert_eq!(eb("0 6 1 JAN,JUL *"), "cron(0 6 1 1,7 ? *)");
        assert_eq!(eb("0 0 1 1 *"), "cron(0 0 1 1 ? *)");
        assert_eq!(eb("0 6 ? * *"), "cron(0 6 * * ? *)");
        assert_eq!(eb("0 6 * * ?"), "cron(0 6 * * ? *)");
        // both restricted: EventBridge cannot
        let err = CronSpec::parse("0 9 1 * 1")
            .unwrap()
            .to_eventbridge()
            .unwrap_err();
        assert!(err.message.contains("both the day of the month"), "{err}");
        assert!(
            err.message.contains("\"0 9 1 * *\" and \"0 9 * * 1\""),
            "{err}"
        );
        assert!(
            CronSpec::parse("0 9 L * FRI")
                .unwrap()
                .to_eventbridge()
                .is_err()
        );
    }

    #[test]
    fn english_forms() {
        for (text, cron) in [
            ("every minute", "* * * * *"),
            ("every 5 minutes", "*/5 * * * *"),
            ("every 15 mins", "*/15 * * * *"),
            ("every 30 minutes", "*/30 * * * *"),
            ("every 60 minutes", "0 * * * *"),
            ("every hour", "0 * * * *"),
            ("hourly", "0 * * * *"),
            ("every 2 hours", "0 */2 * * *"),
            ("every 6 hours", "0 */6 * * *"),
            ("daily", "0 0 * * *"),
            ("daily at 9am", "0 9 * * *"),
            ("daily at 9", "0 9 * * *"),
            ("Daily at 5:30 PM", "30 17 * * *"),
            ("every day at 17:30", "30 17 * * *"),
            ("every day at noon", "0 12 * * *"),
            ("every day at midnight", "0 0 * * *"),
            ("every day at 12am", "0 0 * * *"),
            ("every day at 12pm", "0 12 * * *"),
            ("every day at 9am and 5pm", "0 9,17 * * *"),
            ("at 9am every day", "0 9 * * *"),
            ("every day at 9am UTC", "0 9 * * *"),
            ("every weekday at 9am", "0 9 * * 1-5"),
            ("every weekday at 9:15am", "15 9 * * 1-5"),
            ("weekdays at 8", "0 8 * * 1-5"),
            ("every weekend at 10am", "0 10 * * 0,6"),
            ("every monday at 8:15", "15 8 * * 1"),
            ("every Monday at 8:15", "15 8 * * 1"),
            ("every sunday at 7pm", "0 19 * * 0"),
            ("every friday", "0 0 * * 5"),
            ("mondays at 9am", "0 9 * * 1"),
            ("every monday and thursday at 6am", "0 6 * * 1,4"),
            ("every mon, wed and fri at 07:00", "0 7 * * 1,3,5"),
            ("every monday to friday at 9am", "0 9 * * 1-5"),
            ("weekly", "0 0 * * 0"),
            ("weekly on friday", "0 0 * * 5"),
            ("weekly on friday at 5pm", "0 17 * * 5"),
            ("on the 1st of every month at 6am", "0 6 1 * *"),
            ("on the 2nd of each month at 6am", "0 6 2 * *"),
            ("on the 15th of every month at 14:00", "0 14 15 * *"),
            ("the 3rd of every month", "0 0 3 * *"),
            ("monthly", "0 0 1 * *"),
            ("monthly on the 15th at 9am", "0 9 15 * *"),
            ("on the last day of every month", "0 0 L * *"),
            ("on the last day of the month at 11pm", "0 23 L * *"),
        ] {
            assert_eq!(parse_english(text).as_deref(), Ok(cron), "{text}");
            // every form is a valid schedule EventBridge can run
            let spec = parse_any(text).unwrap();
            assert_eq!(spec.expression(), cron);
            assert!(spec.to_eventbridge().is_ok(), "{text}");
        }
    }

    #[test]
    fn english_errors_are_clear() {
        let e = parse_english("whenever the moon is full").unwrap_err();
        assert!(
            e.message.contains("could not read") && e.message.contains("every weekday at 9am"),
            "{e}"
        );
        assert!(
            parse_english("every 7 minutes")
                .unwrap_err()
                .message
                .contains("must divide 60")
        );
        assert!(
            parse_english("every 5 hours")
                .unwrap_err()
                .message
                .contains("must divide 24")
        );
        assert!(
            parse_english("every 10 seconds")
                .unwrap_err()
                .message
                .contains("seconds are not supported")
        );
        assert!(
            parse_english("every day at 25:00")
                .unwrap_err()
                .message
                .contains("hours go up to 23")
        );
        assert!(
            parse_english("every day at 13pm")
                .unwrap_err()
                .message
                .contains("1-12")
        );
        assert!(
            parse_english("every day at 9am EST")
                .unwrap_err()
                .message
                .contains("UTC")
        );
        assert!(
            parse_english("every day at 9:00 and 17:30")
                .unwrap_err()
                .message
                .contains("same minute")
        );
        assert!(parse_english("on the 32nd of every month").is_err());
    }

    #[test]
    fn parse_any_prefers_cron_and_falls_back_to_english() {
        assert_eq!(
            parse_any("0 9 * * 1-5").unwrap().expression(),
            "0 9 * * 1-5"
        );
        let spec = parse_any("every weekday at 9am").unwrap();
        assert_eq!(spec.expression(), "0 9 * * 1-5");
        assert_eq!(spec.source(), "every weekday at 9am");
        assert_eq!(spec.to_eventbridge().unwrap(), "cron(0 9 ? * MON-FRI *)");
        // cron-looking text reports the cron error
        assert!(
            parse_any("0 25 * * *")
                .unwrap_err()
                .message
                .contains("hour value 25")
        );
        assert!(
            parse_any("@every7m")
                .unwrap_err()
                .message
                .contains("must divide 60")
        );
        // other text reports the English error
        assert!(
            parse_any("sometimes")
                .unwrap_err()
                .message
                .contains("could not read")
        );
    }

    /// Regression (fuzz target `cron`): Sunday written 7 (or SUN) in the `L` and `#` forms was
    /// handed to croner as written, which matches nothing there: `0 9 * * 7L` was refused as
    /// "never runs" after a search to the year 5000.
    #[test]
    fn sunday_as_7_in_last_and_nth_forms() {
        for e in ["0 9 * * 7L", "0 9 * * SUNL", "0 9 * * 0L"] {
            assert_eq!(
                runs(e, "2026-11-01T00:00:00.000Z", 1),
                ["2026-11-29T09:00:00.000Z"],
                "{e}"
            );
        }
        for e in ["0 9 * * 7#2", "0 9 * * sun#2"] {
            assert_eq!(
                runs(e, "2026-11-01T00:00:00.000Z", 1),
                ["2026-11-08T09:00:00.000Z"],
                "{e}"
            );
        }
        assert_eq!(eb("0 9 * * 7L"), "cron(0 9 ? * 1L *)");
    }

    /// Regression (fuzz target `cron`): days that exist in none of the months were refused only
    /// after croner searched to the year 5000 (up to 1 s per schedule); the day fields are now
    /// checked first. Combinations that do occur still parse.
    #[test]
    fn days_missing_from_every_month_never_run() {
        for e in [
            "0 0 30 2 *",
            "0 0 31 4,6 *",
            "0 0 31 2,4,6,9,11 *",
            "0 0 30,31 FEB *",
        ] {
            let err = CronSpec::parse(e).unwrap_err().to_string();
            assert!(err.contains("never runs"), "{e}: {err}");
        }
        for e in [
            "0 0 31 1,4 *",
            "0 0 29 2 *",
            "0 0 31 4 1",
            "0 0 L 2 *",
            "0 0 30W 4 *",
        ] {
            assert!(CronSpec::parse(e).is_ok(), "{e}");
        }
    }
}
