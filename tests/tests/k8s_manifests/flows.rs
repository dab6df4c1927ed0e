//! Rule: the NetworkPolicies allow exactly the designed flows.

use crate::operators::{Pod, pods};
use crate::render::{Labels, id, items, kind, labels, labels_at, name, namespace, s};
use crate::selectors::selector_matches;
use crate::world::{assert_rule_catches, object, remove, set, world_flows};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// Rule: the NetworkPolicies allow exactly the designed flows

/// One end of a connection.
#[derive(Debug, Clone)]
pub(crate) enum End {
    /// Pods of a rendered object (see `pods`), by owner id.
    Owner(String),
    /// Any pod with these labels in another namespace.
    Elsewhere { namespace: String, labels: Labels },
    /// Outside the cluster's pod network (the Kubernetes API server, the internet).
    External,
}

pub(crate) fn owner(id: &str) -> End {
    End::Owner(id.to_owned())
}

pub(crate) fn elsewhere(namespace: &str, pairs: &[(&str, &str)]) -> End {
    End::Elsewhere {
        namespace: namespace.to_owned(),
        labels: labels(pairs),
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Flow {
    pub(crate) from: End,
    pub(crate) to: End,
    pub(crate) port: u64,
    pub(crate) protocol: &'static str,
}

pub(crate) fn tcp(from: End, to: End, port: u64) -> Flow {
    Flow {
        from,
        to,
        port,
        protocol: "TCP",
    }
}

/// A resolved endpoint: namespace labels and pod labels, or external.
pub(crate) struct Peer {
    pub(crate) namespace: Option<String>,
    pub(crate) labels: Labels,
    pub(crate) ports: Vec<(String, u64)>,
}

pub(crate) fn resolve(end: &End, pods: &[Pod]) -> Vec<Peer> {
    match end {
        End::Owner(owner) => pods
            .iter()
            .filter(|p| &p.owner == owner)
            .map(|p| Peer {
                namespace: Some(p.namespace.clone()),
                labels: p.labels.clone(),
                ports: p.ports.clone(),
            })
            .collect(),
        End::Elsewhere { namespace, labels } => vec![Peer {
            namespace: Some(namespace.clone()),
            labels: labels.clone(),
            ports: vec![],
        }],
        End::External => vec![Peer {
            namespace: None,
            labels: Labels::new(),
            ports: vec![],
        }],
    }
}

pub(crate) fn namespace_labels(objects: &[Value], ns: &str) -> Labels {
    let mut l = labels(&[("kubernetes.io/metadata.name", ns)]);
    if let Some(o) = objects
        .iter()
        .find(|o| kind(o) == "Namespace" && name(o) == ns)
    {
        l.extend(labels_at(o, "/metadata/labels"));
    }
    l
}

pub(crate) fn peer_matches(
    objects: &[Value],
    policy_ns: &str,
    rule_peers: Option<&Value>,
    other: &Peer,
) -> bool {
    let Some(peers) = rule_peers.and_then(Value::as_array) else {
        return true; // no from/to: everyone
    };
    peers.iter().any(|peer| {
        if let Some(block) = peer.get("ipBlock") {
            // Only "anywhere" blocks are modelled; pod IPs are not known here.
            return other.namespace.is_none() && s(block, "/cidr").ends_with("/0");
        }
        let Some(other_ns) = &other.namespace else {
            return false;
        };
        let ns_ok = match peer.get("namespaceSelector") {
            Some(sel) => selector_matches(sel, &namespace_labels(objects, other_ns)),
            None => other_ns == policy_ns,
        };
        let pod_ok = peer
            .get("podSelector")
            .is_none_or(|sel| selector_matches(sel, &other.labels));
        ns_ok && pod_ok
    })
}

pub(crate) fn port_matches(rule: &Value, dest: &Peer, port: u64, protocol: &str) -> bool {
    let ports = items(rule, "/ports");
    ports.is_empty()
        || ports.iter().any(|p| {
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            let number = match p.get("port") {
                None => return proto == protocol,
                Some(Value::Number(n)) => n.as_u64(),
                Some(Value::String(named)) => dest
                    .ports
                    .iter()
                    .find(|(n, _)| n == named)
                    .map(|(_, number)| *number),
                _ => None,
            };
            let end = p.get("endPort").and_then(Value::as_u64);
            proto == protocol
                && number.is_some_and(|n| n == port || end.is_some_and(|e| (n..=e).contains(&port)))
        })
}

/// Whether `direction` ("Ingress"/"Egress") policies on `subject` admit `other`.
pub(crate) fn admitted(
    objects: &[Value],
    subject: &Peer,
    other: &Peer,
    dest: &Peer,
    direction: &str,
    port: u64,
    protocol: &str,
) -> bool {
    let Some(ns) = &subject.namespace else {
        return true; // not a pod: no policy applies
    };
    let (rules_key, peers_key) = if direction == "Ingress" {
        ("ingress", "from")
    } else {
        ("egress", "to")
    };
    let applying: Vec<&Value> = objects
        .iter()
        .filter(|o| kind(o) == "NetworkPolicy" && namespace(o) == ns)
        .filter(|o| selector_matches(&o["spec"]["podSelector"], &subject.labels))
        .filter(|o| {
            let types = items(o, "/spec/policyTypes");
            if types.is_empty() {
                direction == "Ingress" || o.pointer("/spec/egress").is_some()
            } else {
                types.iter().any(|t| t == direction)
            }
        })
        .collect();
    if applying.is_empty() {
        return true;
    }
    applying.iter().any(|policy| {
        items(policy, &format!("/spec/{rules_key}"))
            .iter()
            .any(|rule| {
                peer_matches(objects, ns, rule.get(peers_key), other)
                    && port_matches(rule, dest, port, protocol)
            })
    })
}

pub(crate) fn flow_allowed(objects: &[Value], pods: &[Pod], flow: &Flow) -> Result<bool, String> {
    let sources = resolve(&flow.from, pods);
    let dests = resolve(&flow.to, pods);
    if sources.is_empty() || dests.is_empty() {
        return Err(format!("flow {flow:?}: an end names no pod"));
    }
    // Only pods of the rendered set are governed by its policies.
    let governed = |p: &Peer| {
        p.namespace
            .as_ref()
            .is_some_and(|ns| pods.iter().any(|q| &q.namespace == ns))
    };
    Ok(sources.iter().all(|src| {
        dests.iter().all(|dst| {
            let out_ok = !governed(src)
                || admitted(objects, src, dst, dst, "Egress", flow.port, flow.protocol);
            let in_ok = !governed(dst)
                || admitted(objects, dst, src, dst, "Ingress", flow.port, flow.protocol);
            out_ok && in_ok
        })
    }))
}

pub(crate) fn flow_violations(objects: &[Value], allowed: &[Flow], denied: &[Flow]) -> Vec<String> {
    let pods = pods(objects);
    let mut out = Vec::new();
    for (flows, want) in [(allowed, true), (denied, false)] {
        for flow in flows {
            match flow_allowed(objects, &pods, flow) {
                Err(e) => out.push(e),
                Ok(got) if got != want => out.push(format!(
                    "{:?} -> {:?} :{}/{} should be {}",
                    flow.from,
                    flow.to,
                    flow.port,
                    flow.protocol,
                    if want { "allowed" } else { "denied" }
                )),
                Ok(_) => {}
            }
        }
    }
    // Every pod resolves names.
    for pod in &pods {
        let dns = Flow {
            from: owner(&pod.owner),
            to: elsewhere("kube-system", &[("k8s-app", "kube-dns")]),
            port: 53,
            protocol: "UDP",
        };
        if flow_allowed(objects, &pods, &dns) != Ok(true) {
            out.push(format!("{}: cannot reach cluster DNS", pod.owner));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn required_flows_must_be_allowed() {
    let (allowed, denied) = world_flows();
    assert_rule_catches(
        |o| flow_violations(o, &allowed, &denied),
        |o| {
            set(
                o,
                "NetworkPolicy/store",
                "/spec/ingress/0/ports/0/port",
                json!(9001),
            )
        },
        "should be allowed",
    );
}

#[test]
fn unwanted_flows_must_be_denied() {
    let (allowed, denied) = world_flows();
    assert_rule_catches(
        |o| flow_violations(o, &allowed, &denied),
        |o| {
            // "Let the app talk to anything": opens the app -> Kafka shortcut.
            let mut open = object(o, "NetworkPolicy/app").clone();
            open["metadata"]["name"] = json!("app-open");
            open["spec"] = json!({"podSelector": {"matchLabels": {"core.spinkube.dev/app-name": "app"}},
                                   "policyTypes": ["Egress"], "egress": [{}]});
            o.push(open);
            set(
                o,
                "NetworkPolicy/kafka",
                "/spec/ingress/0/from",
                json!([{"podSelector": {}}]),
            );
        },
        "should be denied",
    );
}

#[test]
fn every_pod_needs_dns() {
    let (allowed, denied) = world_flows();
    assert_rule_catches(
        |o| flow_violations(o, &allowed, &denied),
        |o| o.retain(|p| id(p) != "NetworkPolicy/dns"),
        "cannot reach cluster DNS",
    );
}

#[test]
fn database_clients_are_allowed_in_and_nobody_else() {
    let (allowed, denied) = world_flows();
    assert_rule_catches(
        |o| flow_violations(o, &allowed, &denied),
        |o| remove(o, "NetworkPolicy/db", "/spec/ingress/0/from/1"),
        "Owner(\"Job/migrate\") -> Owner(\"Cluster/db\") :5432/TCP should be allowed",
    );
    assert_rule_catches(
        |o| flow_violations(o, &allowed, &denied),
        |o| {
            // "Any pod of the namespace may connect": MinIO too.
            set(
                o,
                "NetworkPolicy/db",
                "/spec/ingress/0/from",
                json!([{"podSelector": {}}]),
            );
            let mut open = object(o, "NetworkPolicy/migrate").clone();
            open["metadata"]["name"] = json!("store-open");
            open["spec"] = json!({"podSelector": {"matchLabels": {"app": "store"}},
                                   "policyTypes": ["Egress"], "egress": [{}]});
            o.push(open);
        },
        "Owner(\"StatefulSet/store\") -> Owner(\"Cluster/db\") :5432/TCP should be denied",
    );
    assert_rule_catches(
        |o| flow_violations(o, &allowed, &denied),
        |o| {
            // Clients on every port of the database pods, not just PostgreSQL's.
            remove(o, "NetworkPolicy/db", "/spec/ingress/0/ports");
            remove(o, "NetworkPolicy/worker", "/spec/egress/2/ports");
        },
        "Owner(\"Deployment/worker\") -> Owner(\"Cluster/db\") :8000/TCP should be denied",
    );
}
