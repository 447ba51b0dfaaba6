//! Leader election on a `coordination.k8s.io/v1` Lease: every operator replica resolves and
//! compiles, only the holder of the Lease publishes and writes status. A round reads the
//! Lease and then creates it, renews it (ours), takes it over (expired), or leaves it (held
//! by another replica, still fresh). Writes carry the read `resourceVersion`, so two replicas
//! racing for an expired Lease cannot both win: the loser gets 409 and follows.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};

/// How long a Lease holds without renewal (renew about every third of it).
pub const LEASE_DURATION: Duration = Duration::from_secs(15);

pub struct Elector {
    api: Api<Lease>,
    name: String,
    /// This replica (its pod name).
    identity: String,
}

impl Elector {
    pub fn new(api: Api<Lease>, name: &str, identity: &str) -> Self {
        Elector { api, name: name.into(), identity: identity.into() }
    }

    /// One round at time `now`: whether this replica leads after it.
    pub async fn try_lead(&self, now: MicroTime) -> kube::Result<bool> {
        let seconds = i32::try_from(LEASE_DURATION.as_secs()).expect("a short duration");
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.name.clone()), ..ObjectMeta::default() },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return won(self.api.create(&PostParams::default(), &lease).await);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let ours = spec.holder_identity.as_deref() == Some(&self.identity);
        let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
            (Some(renewed), Some(held)) => renewed.0.as_second().saturating_add(i64::from(held)) < now.0.as_second(),
            _ => true,
        };
        if !ours && !expired {
            return Ok(false);
        }
        let mut taken = lease;
        let spec = taken.spec.get_or_insert_with(LeaseSpec::default);
        if !ours {
            spec.holder_identity = Some(self.identity.clone());
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.lease_duration_seconds = Some(seconds);
        spec.renew_time = Some(now);
        won(self.api.replace(&self.name, &PostParams::default(), &taken).await)
    }
}

/// A write that lost a race (409) means another replica leads.
fn won(written: kube::Result<Lease>) -> kube::Result<bool> {
    match written {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use http::Method;
    use k8s_openapi::jiff::Timestamp;
    use serde_json::{Value, json};

    use super::*;
    use crate::testing::api_server_with_status;

    const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/manifold-system/leases/manifold-operator";
    const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/manifold-system/leases?";

    fn at(seconds: i64) -> MicroTime {
        MicroTime(Timestamp::from_second(seconds).unwrap())
    }

    fn lease(holder: &str, renewed: i64, transitions: i32) -> Value {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "manifold-operator", "namespace": "manifold-system", "resourceVersion": "7"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                     "renewTime": at(renewed), "acquireTime": at(100), "leaseTransitions": transitions}})
    }

    async fn round(me: &str, now: i64, exchanges: Vec<(Method, &str, u16, Value)>) -> (bool, Vec<Value>) {
        let exchanges = exchanges.into_iter().map(|(m, u, s, a)| (m, u.to_owned(), s, a)).collect();
        let (client, server) = api_server_with_status(exchanges);
        let elector = Elector::new(Api::namespaced(client, "manifold-system"), "manifold-operator", me);
        let leads = elector.try_lead(at(now)).await.unwrap();
        (leads, server.await.unwrap())
    }

    fn not_found() -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"})
    }

    #[tokio::test]
    async fn the_first_replica_creates_the_lease_and_leads() {
        let created = lease("operator-a", 1000, 0);
        let (leads, bodies) = round(
            "operator-a",
            1000,
            vec![(Method::GET, LEASE, 404, not_found()), (Method::POST, LEASES, 201, created)],
        )
        .await;
        assert!(leads);
        assert_eq!(bodies[1]["spec"]["holderIdentity"], "operator-a");
        assert_eq!(bodies[1]["spec"]["leaseDurationSeconds"], 15);
    }

    #[tokio::test]
    async fn a_fresh_lease_of_another_replica_is_left_alone() {
        let (leads, _) = round("operator-b", 1010, vec![(Method::GET, LEASE, 200, lease("operator-a", 1000, 0))]).await;
        assert!(!leads, "a's lease is 10 s old of 15: b follows, and writes nothing");
    }

    #[tokio::test]
    async fn the_leader_renews_its_lease() {
        let (leads, bodies) = round(
            "operator-a",
            1005,
            vec![
                (Method::GET, LEASE, 200, lease("operator-a", 1000, 0)),
                (Method::PUT, &format!("{LEASE}?"), 200, lease("operator-a", 1005, 0)),
            ],
        )
        .await;
        assert!(leads);
        assert_eq!(
            (bodies[1]["spec"]["renewTime"].as_str(), bodies[1]["spec"]["leaseTransitions"].as_i64()),
            (Some("1970-01-01T00:16:45.000000Z"), Some(0))
        );
        assert_eq!(bodies[1]["metadata"]["resourceVersion"], "7", "the write is conditional on what was read");
    }

    #[tokio::test]
    async fn an_expired_lease_changes_leader_and_a_lost_race_follows() {
        let (leads, bodies) = round(
            "operator-b",
            1020,
            vec![
                (Method::GET, LEASE, 200, lease("operator-a", 1000, 0)),
                (Method::PUT, &format!("{LEASE}?"), 200, lease("operator-b", 1020, 1)),
            ],
        )
        .await;
        assert!(leads, "a stopped renewing 20 s ago: b takes over");
        assert_eq!(
            (bodies[1]["spec"]["holderIdentity"].as_str(), bodies[1]["spec"]["leaseTransitions"].as_i64()),
            (Some("operator-b"), Some(1))
        );

        let conflict = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409, "message": "the object has been modified"});
        let (leads, _) = round(
            "operator-c",
            1020,
            vec![
                (Method::GET, LEASE, 200, lease("operator-a", 1000, 0)),
                (Method::PUT, &format!("{LEASE}?"), 409, conflict),
            ],
        )
        .await;
        assert!(!leads, "c raced b for the same expired lease and lost");
    }
}
