//! The Kubernetes manifests in `k8s/`, checked offline.
//!
//! Every overlay is rendered with the real kustomize (`kubectl kustomize`,
//! which embeds it; `./x setup` installs a pinned kubectl) and every rendered
//! object is validated:
//!
//! - built-in kinds against the Kubernetes JSON schemas of the pinned release
//!   (strict: unknown fields are errors, as `kubectl apply` treats them),
//! - SpinApp, SpinAppExecutor, Kafka, KafkaNodePool, KafkaTopic, KafkaBridge,
//!   ScaledObject, Cluster and ScheduledBackup (CloudNativePG) against their
//!   operators' published CRD schemas,
//! - the project's rules (selectors match pods, references resolve, every
//!   container has resources and probes, images are pinned, autoscalers have
//!   targets, NetworkPolicies select pods and allow exactly the designed flows,
//!   database clients migrate the schema first, and the settings that must
//!   agree across objects do).
//!
//! The schemas are vendored under `tests/data/k8s/` (provenance in its
//! README). Pods, Services and Secrets that operators create (spin-operator,
//! Strimzi, CloudNativePG) are modelled from the custom resources with the
//! names and labels those operators give them, so that Services,
//! NetworkPolicies, autoscalers and references aimed at them are checked
//! too. Each rule has a test next to it that breaks a small valid "world"
//! and expects the violation.
//!
//! Where each concern lives:
//!
//! - [`render`]: rendering with kustomize, YAML parsing, small accessors;
//! - [`operators`]: the pods, Services and Secrets operators create from
//!   custom resources;
//! - [`selectors`]: label selectors;
//! - [`schema`]: schema validation;
//! - [`services`]: Services select pods, on ports those pods have;
//! - [`references`]: every reference resolves;
//! - [`containers`]: resources, health checks and pinned images;
//! - [`flows`]: NetworkPolicy flow evaluation (exactly the designed flows);
//! - [`rules`]: the project's other rules (autoscalers, NetworkPolicy and
//!   PodDisruptionBudget selectors, settings that must agree, migrations);
//! - [`operations`]: scratch space against the eviction budget, Jobs that
//!   survive the next apply, presigned uploads from outside, ACME solvers;
//! - [`hardening`]: security contexts, host access, API tokens, the
//!   namespace's Pod Security level, disruption budgets, digests, Kafka
//!   placement, each checked on every overlay;
//! - [`observability`]: logs, dashboards and alerts (Fluent Bit, Loki,
//!   Grafana, Prometheus' rules, Alertmanager): their objects, RBAC and
//!   flows, Fluent Bit's parsers on the worker's lines, dashboards and PromQL
//!   (promtool), the metric names they use;
//! - [`deploy`]: apply stages (every object has one, each after what it
//!   needs) and the images the minikube overlay runs (what k8s/minikube.sh
//!   builds, no placeholders);
//! - [`overlays`]: every rule applied to each overlay, and what the overlays
//!   must contain;
//! - [`world`]: the small valid world the unit-style tests break.

mod containers;
mod deploy;
mod flows;
mod hardening;
mod observability;
mod operations;
mod operators;
mod overlays;
mod references;
mod render;
mod rules;
mod schema;
mod selectors;
mod services;
mod world;
