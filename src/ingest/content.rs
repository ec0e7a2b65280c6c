//! The ingest content policy (`[content]`) and the series guard
//! (`[cardinality]`) applied to a decoded export, after decoding and before
//! enrichment (so the client's own data is judged, not what telegate adds).
//!
//! Rules per resource (`service.name`, resource attribute keys, attribute
//! count and value length) and per item (metric data point, span, log
//! record: its name, attribute keys, count and value length); then the
//! export's item cap; then, for metric points that passed, the series
//! guard ([`super::cardinality`]). The first rule an item breaks is its
//! reason. `drop` removes the offending items (a metric left without data
//! points, an empty scope or resource, goes too) and counts each under its
//! reason ([`Refusals`]), so the answer can say exactly what was refused
//! (OTLP partial success, [`super::partial`]); `reject` refuses the whole
//! export (400 `content_rejected`) and the guard is not consulted, so a
//! refused export spends no series. The guard only ever drops.

mod walk;

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};

use super::cardinality::{Judge, Part};
use super::otlp::{Export, Signal};
use crate::config::glob::Globs;
use crate::config::{ContentSettings, OnViolation};

/// Why an item was refused: the `reason` label of
/// `{ns}_content_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    ServiceName,
    MetricName,
    SpanName,
    LogName,
    AttributeKey,
    TooManyAttributes,
    AttributeValueTooLong,
    TooManyItems,
    Cardinality,
}

impl Rule {
    pub const ALL: [Rule; 9] = [
        Rule::ServiceName,
        Rule::MetricName,
        Rule::SpanName,
        Rule::LogName,
        Rule::AttributeKey,
        Rule::TooManyAttributes,
        Rule::AttributeValueTooLong,
        Rule::TooManyItems,
        Rule::Cardinality,
    ];

    /// Every label, so the metric starts each at zero.
    pub const NAMES: [&'static str; 9] = [
        "service_name",
        "metric_name",
        "span_name",
        "log_name",
        "attribute_key",
        "too_many_attributes",
        "attribute_value_too_long",
        "too_many_items",
        "cardinality",
    ];

    pub fn as_str(self) -> &'static str {
        Rule::NAMES[self as usize]
    }
}

/// Items refused, per rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refusals {
    counts: [u64; 9],
    first: Option<Rule>,
}

impl Refusals {
    pub fn add(&mut self, rule: Rule, items: u64) {
        self.counts[rule as usize] += items;
        self.first.get_or_insert(rule);
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds `other`'s counts (a later pass over the same export).
    pub fn merge(&mut self, other: &Refusals) {
        for rule in Rule::ALL {
            let n = other.counts[rule as usize];
            if n > 0 {
                self.add(rule, n);
            }
        }
    }

    /// The first rule broken, if any.
    pub fn first(&self) -> Option<Rule> {
        self.first
    }

    /// (label, items) of every rule that refused something.
    pub fn counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Rule::ALL
            .iter()
            .map(|rule| (rule.as_str(), self.counts[*rule as usize]))
            .filter(|(_, n)| *n > 0)
    }

    /// The partial-success `error_message`: what was refused and why.
    pub fn message(&self, signal: Signal) -> String {
        let what = match signal {
            Signal::Traces => "spans",
            Signal::Metrics => "data points",
            Signal::Logs => "log records",
        };
        let rules: Vec<String> = self.counts().map(|(r, n)| format!("{r} {n}")).collect();
        format!(
            "telegate refused {} {what} ({})",
            self.total(),
            rules.join(", ")
        )
    }
}

/// The export broke a rule under `on_violation = "reject"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    pub rule: Rule,
    /// Every item of the export (all refused).
    pub items: u64,
}

/// Applies the policy and the guard to `export` in place; `Err` when the
/// policy rejects it whole. With no policy, only `guard` judges (the
/// second pass of the shared guard).
pub fn apply<'a>(
    export: &mut Export,
    policy: Option<&'a ContentSettings>,
    guard: Option<&'a mut (dyn Judge + 'a)>,
) -> Result<Refusals, Rejected> {
    let mut refusals = Refusals::default();
    if let Some(policy) = policy.filter(|p| p.on_violation == OnViolation::Reject) {
        let items = export.items();
        let mut check = Checker::new(Some(policy), None);
        walk::walk(export, &mut check);
        if let Some(rule) = check.refused.first() {
            return Err(Rejected { rule, items });
        }
        if guard.is_none() {
            return Ok(refusals);
        }
        let mut check = Checker::new(None, guard);
        walk::walk(export, &mut check);
        refusals = check.refused;
    } else if policy.is_some() || guard.is_some() {
        let mut check = Checker::new(policy, guard);
        walk::walk(export, &mut check);
        refusals = check.refused;
    }
    Ok(refusals)
}

/// One export's judge: the rules, the guard, what was refused so far.
pub(super) struct Checker<'a> {
    policy: Option<&'a ContentSettings>,
    guard: Option<&'a mut (dyn Judge + 'a)>,
    refused: Refusals,
    kept: u64,
}

impl<'a> Checker<'a> {
    fn new(policy: Option<&'a ContentSettings>, guard: Option<&'a mut (dyn Judge + 'a)>) -> Self {
        Checker {
            policy,
            guard,
            refused: Refusals::default(),
            kept: 0,
        }
    }

    /// The rule a resource breaks (then every item under it is refused).
    fn resource(&self, attributes: &[KeyValue]) -> Option<Rule> {
        let policy = self.policy?;
        if let Some(names) = &policy.service_names {
            let service = attributes
                .iter()
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| text(&kv.value));
            if !service.is_some_and(|s| names.iter().any(|n| n == s)) {
                return Some(Rule::ServiceName);
            }
        }
        attributes_rule(
            policy,
            attributes,
            policy.allowed_resource_attribute_keys.as_ref(),
            policy.denied_resource_attribute_keys.as_ref(),
        )
    }

    /// The rule an item's name breaks, if its signal's list is set.
    fn name(&self, rule: Rule, name: &str) -> Option<Rule> {
        let policy = self.policy?;
        let list: Option<&Globs> = match rule {
            Rule::MetricName => policy.metric_names.as_ref(),
            Rule::SpanName => policy.span_names.as_ref(),
            _ => policy.log_names.as_ref(),
        };
        list.filter(|globs| !globs.matches(name)).map(|_| rule)
    }

    /// Whether one item stays: `found` is the rule its resource or name
    /// broke; then its attributes, the export's cap, and for a metric
    /// point (`series`: its metric name and resource part) the guard.
    fn keep(
        &mut self,
        found: Option<Rule>,
        attributes: &[KeyValue],
        series: Option<(&str, Part)>,
    ) -> bool {
        let rule = found.or_else(|| {
            let policy = self.policy?;
            attributes_rule(
                policy,
                attributes,
                policy.allowed_attribute_keys.as_ref(),
                policy.denied_attribute_keys.as_ref(),
            )
        });
        let rule = rule.or_else(|| {
            let max = self.policy?.max_items_per_export?;
            (self.kept >= max).then_some(Rule::TooManyItems)
        });
        let rule = rule.or_else(|| {
            let (metric, resource) = series?;
            let guard = self.guard.as_mut()?;
            (!guard.point(metric, attributes, resource)).then_some(Rule::Cardinality)
        });
        match rule {
            Some(rule) => {
                self.refused.add(rule, 1);
                false
            }
            None => {
                self.kept += 1;
                true
            }
        }
    }

    /// The guard's share of a resource's attributes in its series.
    fn resource_part(&self, attributes: &[KeyValue]) -> Part {
        self.guard
            .as_ref()
            .map_or(Part::default(), |g| g.resource(attributes))
    }

    fn guarded(&self) -> bool {
        self.guard.is_some()
    }
}

fn attributes_rule(
    policy: &ContentSettings,
    attributes: &[KeyValue],
    allowed: Option<&Globs>,
    denied: Option<&Globs>,
) -> Option<Rule> {
    if policy
        .max_attributes
        .is_some_and(|max| attributes.len() > max)
    {
        return Some(Rule::TooManyAttributes);
    }
    for kv in attributes {
        if allowed.is_some_and(|g| !g.matches(&kv.key))
            || denied.is_some_and(|g| g.matches(&kv.key))
        {
            return Some(Rule::AttributeKey);
        }
        if policy
            .max_attribute_value_bytes
            .is_some_and(|max| value_bytes(kv.value.as_ref()) > max)
        {
            return Some(Rule::AttributeValueTooLong);
        }
    }
    None
}

fn text(value: &Option<AnyValue>) -> Option<&str> {
    match value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s),
        _ => None,
    }
}

/// A value's size: strings and bytes by length, arrays and maps summed
/// (keys included), scalars 8. Nesting is bounded by the decoders'
/// recursion limits.
fn value_bytes(value: Option<&AnyValue>) -> usize {
    use any_value::Value;
    match value.and_then(|v| v.value.as_ref()) {
        None => 0,
        Some(Value::StringValue(s)) => s.len(),
        Some(Value::BytesValue(b)) => b.len(),
        Some(Value::ArrayValue(a)) => a.values.iter().map(|v| value_bytes(Some(v))).sum(),
        Some(Value::KvlistValue(kv)) => kv
            .values
            .iter()
            .map(|kv| kv.key.len() + value_bytes(kv.value.as_ref()))
            .sum(),
        Some(_) => 8,
    }
}

#[cfg(test)]
mod tests;
