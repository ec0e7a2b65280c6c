//! The walk over one export: each resource, then each item under it, asks
//! the [`Checker`] whether it stays; containers emptied by a refusal go
//! too (a metric without data points, a scope without items, a resource
//! without scopes). Containers that were empty as sent are left alone, so
//! an export nothing was refused from is unchanged.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::{Checker, Rule};
use crate::ingest::cardinality::Part;
use crate::ingest::otlp::Export;

pub(super) fn walk(export: &mut Export, check: &mut Checker<'_>) {
    match export {
        Export::Metrics(request) => request.resource_metrics.retain_mut(|rm| {
            let attributes = attributes(&rm.resource);
            let found = check.resource(attributes);
            let resource = if check.guarded() {
                check.resource_part(attributes)
            } else {
                Part::default()
            };
            emptied(&mut rm.scope_metrics, |sm| {
                emptied(&mut sm.metrics, |metric| {
                    let found = found.or_else(|| check.name(Rule::MetricName, &metric.name));
                    points(metric, check, found, resource)
                })
            })
        }),
        Export::Traces(request) => request.resource_spans.retain_mut(|rs| {
            let found = check.resource(attributes(&rs.resource));
            emptied(&mut rs.scope_spans, |ss| {
                emptied(&mut ss.spans, |span| {
                    let found = found.or_else(|| check.name(Rule::SpanName, &span.name));
                    check.keep(found, &span.attributes, None)
                })
            })
        }),
        Export::Logs(request) => request.resource_logs.retain_mut(|rl| {
            let found = check.resource(attributes(&rl.resource));
            emptied(&mut rl.scope_logs, |sl| {
                let logger = sl.scope.as_ref().map_or("", |s| s.name.as_str());
                emptied(&mut sl.log_records, |record| {
                    let name = if record.event_name.is_empty() {
                        logger
                    } else {
                        &record.event_name
                    };
                    let found = found.or_else(|| check.name(Rule::LogName, name));
                    check.keep(found, &record.attributes, None)
                })
            })
        }),
    }
}

fn attributes(resource: &Option<Resource>) -> &[KeyValue] {
    resource.as_ref().map_or(&[], |r| r.attributes.as_slice())
}

/// Retains the `items` `keep` says stay; whether the container stays:
/// yes unless this call emptied it.
fn emptied<T>(items: &mut Vec<T>, mut keep: impl FnMut(&mut T) -> bool) -> bool {
    if items.is_empty() {
        return true;
    }
    items.retain_mut(|item| keep(item));
    !items.is_empty()
}

/// Retains a metric's points; whether the metric stays.
fn points(
    metric: &mut Metric,
    check: &mut Checker<'_>,
    found: Option<super::Rule>,
    resource: Part,
) -> bool {
    let name = metric.name.as_str();
    let series = Some((name, resource));
    macro_rules! retain {
        ($points:expr) => {
            emptied($points, |point| {
                check.keep(found, &point.attributes, series)
            })
        };
    }
    match metric.data.as_mut() {
        Some(Data::Gauge(g)) => retain!(&mut g.data_points),
        Some(Data::Sum(s)) => retain!(&mut s.data_points),
        Some(Data::Histogram(h)) => retain!(&mut h.data_points),
        Some(Data::ExponentialHistogram(h)) => retain!(&mut h.data_points),
        Some(Data::Summary(s)) => retain!(&mut s.data_points),
        // No points: nothing to refuse; a disallowed name still goes.
        None => found.is_none(),
    }
}
