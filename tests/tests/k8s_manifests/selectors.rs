//! Label selectors.

use crate::operators::Pod;
use crate::render::{Labels, items, s};
use serde_json::{Map, Value};

// ---------------------------------------------------------------------------
// Label selectors

pub(crate) fn selector_matches(selector: &Value, labels: &Labels) -> bool {
    let by_labels = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|m| {
            m.iter()
                .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
        });
    let by_expressions = items(selector, "/matchExpressions").iter().all(|e| {
        let value = labels.get(s(e, "/key"));
        let values: Vec<&str> = items(e, "/values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        match s(e, "/operator") {
            "In" => value.is_some_and(|v| values.contains(&v.as_str())),
            "NotIn" => value.is_none_or(|v| !values.contains(&v.as_str())),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    by_labels && by_expressions
}

pub(crate) fn selector_is_empty(selector: &Value) -> bool {
    selector.as_object().is_none_or(|m| {
        m.values().all(|v| {
            v.as_object().is_some_and(Map::is_empty) || v.as_array().is_some_and(Vec::is_empty)
        })
    })
}

pub(crate) fn selects_some_pod(pods: &[Pod], ns: &str, selector: &Value) -> bool {
    pods.iter()
        .any(|p| p.namespace == ns && selector_matches(selector, &p.labels))
}
