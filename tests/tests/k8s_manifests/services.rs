//! Rule: Services select pods, on ports those pods have.

use crate::operators::{Pod, pods};
use crate::render::{id, items, kind, namespace};
use crate::selectors::selector_matches;
use crate::world::{assert_rule_catches, set};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// Rule: Services select pods, on ports those pods have

pub(crate) fn service_violations(objects: &[Value]) -> Vec<String> {
    let pods = pods(objects);
    let mut out = Vec::new();
    for o in objects.iter().filter(|o| kind(o) == "Service") {
        let Some(selector) = o
            .pointer("/spec/selector")
            .filter(|s| s.as_object().is_some_and(|m| !m.is_empty()))
        else {
            continue; // selector-less Services are managed by hand (none here)
        };
        let selector = json!({ "matchLabels": selector });
        let matched: Vec<&Pod> = pods
            .iter()
            .filter(|p| p.namespace == namespace(o) && selector_matches(&selector, &p.labels))
            .collect();
        if matched.is_empty() {
            out.push(format!(
                "{}: selector {} matches no pod",
                id(o),
                selector["matchLabels"]
            ));
            continue;
        }
        for port in items(o, "/spec/ports") {
            let Some(target) = port.get("targetPort").and_then(Value::as_str) else {
                continue;
            };
            if !matched
                .iter()
                .any(|p| p.ports.iter().any(|(n, _)| n == target))
            {
                out.push(format!(
                    "{}: targetPort {target:?} is not a port of the selected pods",
                    id(o)
                ));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn service_selector_must_match_a_pod() {
    assert_rule_catches(
        service_violations,
        |o| {
            set(
                o,
                "Service/store",
                "/spec/selector",
                json!({"app": "storage"}),
            )
        },
        "Service/store: selector",
    );
}

#[test]
fn service_target_port_must_exist_on_the_pods() {
    assert_rule_catches(
        service_violations,
        |o| set(o, "Service/store", "/spec/ports/0/targetPort", json!("s3")),
        "targetPort \"s3\"",
    );
}
