//! Integration tests against real kube-apiservers and DynamoDB Local (not built yet).
//!
//! It will own the harness that starts etcd, two kube-apiservers with their
//! controller-managers and DynamoDB Local, and the tests that run the release operator
//! binaries against them and kill things.
