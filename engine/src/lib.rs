//! The production operator (not built yet; see the issue "Engine: execute the checked
//! protocol against Kubernetes and DynamoDB").
//!
//! It will own the ports (cluster, store, clock), their kube-rs and aws-sdk-dynamodb
//! adapters, the executor that runs [`failover_model::decide`]'s decisions, the
//! controllers, CRDs and the operator binary. It must never make a protocol decision
//! the model did not check: every choice comes from `failover_model::core`.
