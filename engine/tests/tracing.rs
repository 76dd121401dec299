//! Tracing: every change a failover makes is logged inside spans that carry the group,
//! the cluster, the failover id, the fencing token, the stage and the task.

use std::io::Write;
use std::sync::{Arc, Mutex};

use failover_engine::executor::{Operator, process_failover};
use failover_engine::memory::{MemoryCluster, MemoryStore, Settle, TokioClock};
use failover_engine::ports::{Kind, MemberState, ObjectRef};
use failover_engine::spec::{FailoverGroupSpec, Group, MembersSpec};
use failover_model::{Cluster, Mode, Request};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn group(me: &str) -> Group {
    let spec = FailoverGroupSpec {
        clusters: vec!["east".into(), "west".into()],
        members: MembersSpec {
            deployments: vec!["web".into()],
            ..MembersSpec::default()
        },
        ..FailoverGroupSpec::default()
    };
    Group::parse("shop", "shop", &spec, me).expect("valid")
}

fn cluster(replicas: i32) -> MemoryCluster {
    let c = MemoryCluster::new(Settle::Instantly);
    c.insert(
        ObjectRef {
            kind: Kind::Deployment,
            namespace: "shop".into(),
            name: "web".into(),
        },
        &[],
        MemberState::Workload {
            replicas,
            remembered: Some(2),
            pods: replicas,
            ready: true,
        },
    );
    c
}

#[tokio::test(start_paused = true)]
async fn changes_are_logged_in_failover_stage_and_task_spans() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .without_time()
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let store = MemoryStore::new();
    let mut a = Operator::new(cluster(2), store.clone(), TokioClock::new(0), group("east"));
    let mut b = Operator::new(cluster(0), store.clone(), TokioClock::new(0), group("west"));
    for op in [&mut a, &mut b] {
        op.run_until(|op, _| op.memory().lease_until.is_some())
            .await;
    }
    let r = Request {
        id: 0xfa11,
        to: Cluster::B,
        mode: Mode::Consistency,
    };
    tokio::join!(process_failover(&mut a, r), process_failover(&mut b, r));

    let log = String::from_utf8(buffer.0.lock().expect("buffer").clone()).expect("utf-8");
    let expect = [
        "failover{group=shop/shop cluster=east id=\"000000000000fa11\" token=1 \
         stage=source-preparation step=scale-down-workloads}",
        "changed change=Deployment/shop/web spec.replicas: 2 -> 0",
        "failover{group=shop/shop cluster=west id=\"000000000000fa11\" token=2 \
         stage=target-activation step=scale-up-workloads}",
        "changed change=Deployment/shop/web spec.replicas: 0 -> 2",
    ];
    for e in expect {
        assert!(log.contains(e), "log lacks {e:?}:\n{log}");
    }
}
