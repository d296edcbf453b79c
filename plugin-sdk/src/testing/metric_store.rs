//! The harness's side of the `metrics` import: the gateway's rules for plugin metrics,
//! checked in the same order and refused with the same messages, and every call kept
//! for the test to read through [`super::Harness`].

use std::collections::{HashMap, HashSet};

// The gateway's own rules, from its source, so that the two cannot drift apart.
#[path = "../../../host/src/metric_rules.rs"]
mod metric_rules;
use metric_rules::{MAX_SERIES, check_labels, check_name};

/// The value of one metric call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricValue {
    /// [`crate::metrics::counter_add`]
    Counter(u64),
    /// [`crate::metrics::gauge_set`]
    Gauge(f64),
    /// [`crate::metrics::histogram_observe`]
    Histogram(f64),
}

impl MetricValue {
    fn kind(self) -> &'static str {
        match self {
            Self::Counter(_) => "counter",
            Self::Gauge(_) => "gauge",
            Self::Histogram(_) => "histogram",
        }
    }
}

impl From<crate::metrics::Value> for MetricValue {
    fn from(value: crate::metrics::Value) -> Self {
        use crate::metrics::Value;
        match value {
            Value::Counter(v) => Self::Counter(v),
            Value::Gauge(v) => Self::Gauge(v),
            Value::Histogram(v) => Self::Histogram(v),
        }
    }
}

/// One call a plugin made to the `metrics` import.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricCall {
    /// The metric's name.
    pub name: String,
    /// The labels, as given.
    pub labels: Vec<(String, String)>,
    /// What was recorded, and so the metric's kind.
    pub value: MetricValue,
}

/// Every metric call of one test, checked as the gateway checks it.
#[derive(Debug, Default)]
pub(crate) struct MetricStore {
    kinds: HashMap<String, &'static str>,
    series: HashMap<String, HashSet<Vec<(String, String)>>>,
    pub(crate) accepted: Vec<MetricCall>,
    pub(crate) refused: Vec<(MetricCall, String)>,
}

impl MetricStore {
    /// Records `call`, or refuses it as the gateway would and keeps the reason.
    pub(crate) fn record(&mut self, call: MetricCall) -> Result<(), String> {
        match self.check(&call) {
            Ok(()) => {
                self.accepted.push(call);
                Ok(())
            }
            Err(reason) => {
                self.refused.push((call, reason.clone()));
                Err(reason)
            }
        }
    }

    /// The gateway's checks, in its order: the first kind a name is used with sticks
    /// even if that call is then refused for its labels' budget.
    fn check(&mut self, call: &MetricCall) -> Result<(), String> {
        let name = call.name.as_str();
        check_name(name)?;
        check_labels(&call.labels)?;
        if let MetricValue::Gauge(v) | MetricValue::Histogram(v) = call.value
            && !v.is_finite()
        {
            return Err(format!("metric {name:?}: the value {v} is not finite"));
        }
        let wanted = call.value.kind();
        let kind = *self.kinds.entry(name.to_string()).or_insert(wanted);
        if kind != wanted {
            return Err(format!(
                "metric {name:?} is a {kind}; it cannot be used as a {wanted}"
            ));
        }
        let series = self.series.entry(name.to_string()).or_default();
        let labels = sorted(&call.labels);
        if !series.contains(&labels) {
            if series.len() >= MAX_SERIES {
                return Err(format!(
                    "metric {name:?} already has {MAX_SERIES} label combinations for this plugin"
                ));
            }
            series.insert(labels);
        }
        Ok(())
    }

    /// The accepted values of the series `name` with exactly `labels` (in any order).
    pub(crate) fn values<'a>(
        &'a self,
        name: &'a str,
        labels: &[(&str, &str)],
    ) -> impl Iterator<Item = MetricValue> + 'a {
        let wanted = sorted(
            &labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>(),
        );
        self.accepted
            .iter()
            .filter(move |call| call.name == name && sorted(&call.labels) == wanted)
            .map(|call| call.value)
    }
}

fn sorted(labels: &[(String, String)]) -> Vec<(String, String)> {
    let mut labels = labels.to_vec();
    labels.sort();
    labels
}
