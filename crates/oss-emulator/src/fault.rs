//! Declarative, seeded fault plans.
//!
//! A plan is a seed and a list of rules. Every request the emulator receives gets a number
//! (1, 2, 3, … in order of arrival, failed ones included). After a request is authenticated,
//! each rule whose [`Match`] accepts it fires (subject to `times` and a seeded
//! `probability`); the faults of all rules that fire are combined. Every fault that fires
//! is logged (tracing and [`FaultEvent`]s) with the request number and id.
//!
//! JSON form (the binary's `--faults FILE`):
//!
//! ```json
//! {
//!   "seed": 7,
//!   "rules": [
//!     { "match": { "request": 3 }, "fault": { "kind": "reset_after_bytes", "bytes": 1000 } },
//!     { "match": { "method": "GET", "key": "big.bin", "nth": 2 },
//!       "fault": { "kind": "error", "status": 503, "code": "SlowDown" } },
//!     { "match": { "method": "GET" }, "fault": { "kind": "throttle", "bytes_per_second": 1048576 } },
//!     { "match": { "key": "big.bin" }, "fault": { "kind": "delay_first_byte", "millis": 200 },
//!       "probability": 0.25, "times": 3 },
//!     { "match": { "method": "GET", "key": "big.bin", "nth": 1 },
//!       "fault": { "kind": "change_object" } }
//!   ]
//! }
//! ```
//!
//! `"above_concurrent": N` matches a request only while more than N requests are in flight
//! (itself included; a request is in flight until its answer's body is sent or abandoned):
//! `{ "match": { "method": "GET", "above_concurrent": 4 }, "fault": { "kind": "error",
//! "status": 503, "code": "SlowDown" } }` is a server that throttles above 4 concurrent
//! requests ([`FaultRule::slow_down_above`]).
//!
//! Fault kinds: `reset_before_response`, `reset_after_bytes {bytes}`,
//! `reset_at_offset {offset}`, `short_body {bytes}`, `error {status, code, message?}`,
//! `delay_first_byte {millis}`, `throttle {bytes_per_second}`, `ignore_range`,
//! `change_object {size?}`. Body faults (`reset_after_bytes`, `reset_at_offset`,
//! `short_body`, `throttle`, `ignore_range`) only act on GET object answers with a body.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// A seeded list of fault rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPlan {
    /// Seeds `probability` draws and the new content of `change_object`.
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub rules: Vec<FaultRule>,
}

impl FaultPlan {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            rules: Vec::new(),
        }
    }

    pub fn rule(mut self, rule: FaultRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Parses the JSON form.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a fault plan serializes")
    }
}

/// When a fault fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    #[serde(rename = "match", default)]
    pub matcher: Match,
    pub fault: Fault,
    /// Fire at most this many times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    /// Fire with this probability (0–1) among matching requests, drawn from the plan's seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
}

impl FaultRule {
    /// A rule for every request (narrow it with the builder methods).
    pub fn always(fault: Fault) -> Self {
        Self {
            matcher: Match::default(),
            fault,
            times: None,
            probability: None,
        }
    }

    /// A rule for request number `n` (1-based, in order of arrival).
    pub fn on_request(n: u64, fault: Fault) -> Self {
        Self::always(fault).request(n)
    }

    /// A rule for requests with `method` on `key` (any bucket).
    pub fn on(method: &str, key: &str, fault: Fault) -> Self {
        Self::always(fault).method(method).key(key)
    }

    pub fn request(mut self, n: u64) -> Self {
        self.matcher.request = Some(n);
        self
    }

    pub fn from_request(mut self, n: u64) -> Self {
        self.matcher.from_request = Some(n);
        self
    }

    pub fn method(mut self, method: &str) -> Self {
        self.matcher.method = Some(method.to_ascii_uppercase());
        self
    }

    pub fn bucket(mut self, bucket: &str) -> Self {
        self.matcher.bucket = Some(bucket.to_string());
        self
    }

    pub fn key(mut self, key: &str) -> Self {
        self.matcher.key = Some(key.to_string());
        self
    }

    /// Only while more than `n` requests are in flight, this one included.
    pub fn above_concurrent(mut self, n: u64) -> Self {
        self.matcher.above_concurrent = Some(n);
        self
    }

    /// A server that throttles: 503 `SlowDown` to every GET that arrives while more than `n`
    /// requests are in flight (itself included).
    pub fn slow_down_above(n: u64) -> Self {
        Self::always(Fault::slow_down())
            .method("GET")
            .above_concurrent(n)
    }

    /// Only the `n`th request (1-based) that matches the other criteria.
    pub fn nth(mut self, n: u64) -> Self {
        self.matcher.nth = Some(n);
        self
    }

    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }

    pub fn probability(mut self, p: f64) -> Self {
        self.probability = Some(p);
        self
    }
}

/// Which requests a rule applies to; every given criterion must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// The request's number (1-based, every request counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<u64>,
    /// Requests numbered at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_request: Option<u64>,
    /// HTTP method, case-insensitive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Exact object key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The `n`th request (1-based) that meets the criteria above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nth: Option<u64>,
    /// Only while more than this many requests are in flight, this one included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above_concurrent: Option<u64>,
}

/// What happens to a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Reset the connection (TCP RST) without sending anything.
    ResetBeforeResponse,
    /// Send the headers and `bytes` body bytes, then reset the connection (TCP RST; SO_LINGER
    /// 0 after the bytes were flushed to the socket). No effect if the body is not longer.
    ResetAfterBytes { bytes: u64 },
    /// Like `ResetAfterBytes`, but counted from the start of the object: the body stops
    /// just before object offset `offset`. Only a response that starts before the offset
    /// and reaches it is cut, so a client resuming at the offset gets through.
    ResetAtOffset { offset: u64 },
    /// Send the headers (full `Content-Length`) and `bytes` body bytes, then close the
    /// connection cleanly (FIN): the client sees a short body. No effect if the body is not
    /// longer.
    ShortBody { bytes: u64 },
    /// Answer with an OSS error instead (e.g. 503 `SlowDown`, 500 `InternalError`); any
    /// code is sent as given, `status` outside 400–599 becomes 500.
    Error {
        status: u16,
        code: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Wait this long before answering.
    DelayFirstByte { millis: u64 },
    /// Send the body at most this fast; the budget is shared by all throttled responses on
    /// the same connection.
    Throttle { bytes_per_second: u64 },
    /// Ignore `Range`: 200 and the whole object.
    IgnoreRange,
    /// Serve this request normally, then replace the object with new content (new ETag):
    /// every byte changed (seeded), size kept unless `size` is given.
    ChangeObject {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
    },
}

impl Fault {
    /// 503 `SlowDown`.
    pub fn slow_down() -> Self {
        Fault::Error {
            status: 503,
            code: "SlowDown".into(),
            message: None,
        }
    }

    /// 500 `InternalError`.
    pub fn internal_error() -> Self {
        Fault::Error {
            status: 500,
            code: "InternalError".into(),
            message: None,
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Fault::ResetBeforeResponse => "reset_before_response",
            Fault::ResetAfterBytes { .. } => "reset_after_bytes",
            Fault::ResetAtOffset { .. } => "reset_at_offset",
            Fault::ShortBody { .. } => "short_body",
            Fault::Error { .. } => "error",
            Fault::DelayFirstByte { .. } => "delay_first_byte",
            Fault::Throttle { .. } => "throttle",
            Fault::IgnoreRange => "ignore_range",
            Fault::ChangeObject { .. } => "change_object",
        }
    }
}

/// One fault that fired.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultEvent {
    /// The request's number (1-based).
    pub request: u64,
    /// Its `x-oss-request-id`.
    pub request_id: String,
    /// Index of the rule in the plan.
    pub rule: usize,
    pub method: String,
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub fault: Fault,
}

pub(crate) use resume_core::SplitMix64;

/// The request facts rules are matched against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestFacts<'a> {
    pub number: u64,
    /// Requests in flight, this one included.
    pub concurrent: u64,
    pub method: &'a str,
    pub bucket: Option<&'a str>,
    pub key: Option<&'a str>,
}

#[derive(Debug)]
struct RuleState {
    matched: u64,
    fired: u64,
}

#[derive(Debug)]
struct Engine {
    plan: FaultPlan,
    states: Vec<RuleState>,
    rng: SplitMix64,
}

impl Engine {
    fn new(plan: FaultPlan) -> Self {
        let states = plan
            .rules
            .iter()
            .map(|_| RuleState {
                matched: 0,
                fired: 0,
            })
            .collect();
        let rng = SplitMix64::new(plan.seed);
        Self { plan, states, rng }
    }
}

/// The live plan: rule counters, the seeded RNG and the log.
#[derive(Debug)]
pub(crate) struct Faults {
    engine: Mutex<Engine>,
    log: Mutex<Vec<FaultEvent>>,
}

impl Faults {
    pub fn new(plan: FaultPlan) -> Self {
        Self {
            engine: Mutex::new(Engine::new(plan)),
            log: Mutex::new(Vec::new()),
        }
    }

    /// Replaces the plan; counters restart (request numbers do not).
    pub fn set_plan(&self, plan: FaultPlan) {
        *self.engine.lock().unwrap_or_else(|p| p.into_inner()) = Engine::new(plan);
    }

    pub fn seed(&self) -> u64 {
        self.engine
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .plan
            .seed
    }

    /// The faults that fire for this request, with their rule indices, in plan order.
    pub fn decide(&self, req: RequestFacts<'_>) -> Vec<(usize, Fault)> {
        let mut engine = self.engine.lock().unwrap_or_else(|p| p.into_inner());
        let Engine { plan, states, rng } = &mut *engine;
        let mut out = Vec::new();
        for (i, rule) in plan.rules.iter().enumerate() {
            let m = &rule.matcher;
            let basic = m.request.is_none_or(|n| n == req.number)
                && m.from_request.is_none_or(|n| req.number >= n)
                && m.method
                    .as_deref()
                    .is_none_or(|x| x.eq_ignore_ascii_case(req.method))
                && m.bucket.as_deref().is_none_or(|b| Some(b) == req.bucket)
                && m.key.as_deref().is_none_or(|k| Some(k) == req.key)
                && m.above_concurrent.is_none_or(|n| req.concurrent > n);
            if !basic {
                continue;
            }
            let st = &mut states[i];
            st.matched += 1;
            if m.nth.is_some_and(|n| n != st.matched) {
                continue;
            }
            if rule.times.is_some_and(|t| st.fired >= t) {
                continue;
            }
            if let Some(p) = rule.probability
                && rng.unit_f64() >= p
            {
                continue;
            }
            st.fired += 1;
            out.push((i, rule.fault.clone()));
        }
        out
    }

    pub fn record(&self, event: FaultEvent) {
        tracing::info!(
            request = event.request,
            request_id = %event.request_id,
            rule = event.rule,
            method = %event.method,
            bucket = event.bucket.as_deref().unwrap_or(""),
            key = event.key.as_deref().unwrap_or(""),
            fault = ?event.fault,
            "injected fault"
        );
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
    }

    pub fn log(&self) -> Vec<FaultEvent> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn clear_log(&self) {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(number: u64, method: &'static str, key: &'static str) -> RequestFacts<'static> {
        RequestFacts {
            number,
            concurrent: 1,
            method,
            bucket: Some("b"),
            key: Some(key),
        }
    }

    #[test]
    fn slow_down_fires_only_above_the_concurrency() {
        let plan = FaultPlan::new(3).rule(FaultRule::slow_down_above(2));
        let json = plan.to_json();
        assert!(json.contains("\"above_concurrent\": 2"), "{json}");
        assert_eq!(FaultPlan::from_json(&json).unwrap(), plan);
        let faults = Faults::new(plan);
        let at = |concurrent, method| {
            faults.decide(RequestFacts {
                concurrent,
                ..facts(1, method, "k")
            })
        };
        assert!(at(1, "GET").is_empty());
        assert!(at(2, "GET").is_empty());
        assert_eq!(at(3, "GET"), vec![(0, Fault::slow_down())]);
        assert_eq!(at(9, "GET"), vec![(0, Fault::slow_down())]);
        assert!(at(9, "HEAD").is_empty(), "only GETs are throttled");
    }

    #[test]
    fn json_round_trips_and_rejects_unknown_fields() {
        let plan = FaultPlan::new(7)
            .rule(FaultRule::on_request(
                3,
                Fault::ResetAfterBytes { bytes: 10 },
            ))
            .rule(FaultRule::on("GET", "k", Fault::slow_down()).nth(2))
            .rule(FaultRule::always(Fault::ChangeObject { size: None }).times(1));
        let json = plan.to_json();
        assert_eq!(FaultPlan::from_json(&json).unwrap(), plan);
        let bad = r#"{"rules":[{"match":{"nope":1},"fault":{"kind":"ignore_range"}}]}"#;
        assert!(FaultPlan::from_json(bad).is_err());
        let bad = r#"{"rules":[{"fault":{"kind":"explode"}}]}"#;
        assert!(FaultPlan::from_json(bad).is_err());
    }

    #[test]
    fn nth_times_and_request_numbers_select_requests() {
        let plan = FaultPlan::new(1)
            .rule(FaultRule::on("GET", "k", Fault::IgnoreRange).nth(2))
            .rule(FaultRule::on_request(5, Fault::ResetBeforeResponse))
            .rule(
                FaultRule::always(Fault::DelayFirstByte { millis: 1 })
                    .method("HEAD")
                    .times(1),
            );
        let f = Faults::new(plan);
        let fired = |n, m, k| -> Vec<usize> {
            f.decide(facts(n, m, k))
                .into_iter()
                .map(|(i, _)| i)
                .collect()
        };
        assert_eq!(fired(1, "GET", "k"), Vec::<usize>::new());
        assert_eq!(fired(2, "GET", "other"), Vec::<usize>::new());
        assert_eq!(fired(3, "GET", "k"), vec![0]);
        assert_eq!(fired(4, "HEAD", "k"), vec![2]);
        assert_eq!(fired(5, "HEAD", "k"), vec![1]);
        assert_eq!(fired(6, "GET", "k"), Vec::<usize>::new());
    }

    #[test]
    fn probability_draws_are_seeded() {
        let run = |seed| {
            let f = Faults::new(
                FaultPlan::new(seed).rule(FaultRule::always(Fault::IgnoreRange).probability(0.5)),
            );
            (1..=64)
                .map(|n| !f.decide(facts(n, "GET", "k")).is_empty())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
        let hits = run(9).iter().filter(|b| **b).count();
        assert!((16..=48).contains(&hits), "{hits}");
    }
}
