//! Leader election on a `coordination.k8s.io/v1` Lease: every operator replica resolves and
//! compiles, only the holder of the Lease publishes and writes status.
//!
//! A round reads the Lease and then creates it, renews it (ours), takes it over (expired or
//! released), or leaves it (held by another replica, still fresh). Writes carry the read
//! `resourceVersion`, so two replicas racing for an expired Lease cannot both win: the loser
//! gets 409 and follows. Expiry is judged on this replica's clock, from when it last saw the
//! Lease change, never by comparing another machine's `renewTime` with ours.
//!
//! Rounds run in a task of their own ([`keep`]), so a long reconcile cannot let the Lease
//! lapse unnoticed: the leader acts as one only until [`RENEW_DEADLINE`] after its last
//! renewal, which ends before another replica may take over, and [`Leadership::leads`] is
//! asked before every write.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;

/// How long a Lease holds without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How long after its last renewal the leader still writes: less than [`LEASE_DURATION`], so
/// it has stopped before anyone else may start.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// How often a round runs.
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);

/// What a replica last saw of the Lease, and when (on its own clock).
#[derive(Clone, Debug, PartialEq)]
struct Record {
    holder: Option<String>,
    renewed: Option<MicroTime>,
    held: Option<i32>,
}

pub struct Elector {
    api: Api<Lease>,
    name: String,
    /// This replica (its pod name).
    identity: String,
    observed: Option<(Record, Instant)>,
}

impl Elector {
    pub fn new(api: Api<Lease>, name: &str, identity: &str) -> Self {
        Elector { api, name: name.into(), identity: identity.into(), observed: None }
    }

    /// One round, `now` being the wall clock (written into the Lease) and `local` this
    /// replica's monotonic clock: whether this replica leads after it.
    pub async fn try_lead(&mut self, now: MicroTime, local: Instant) -> kube::Result<bool> {
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
            return self.won(self.api.create(&PostParams::default(), &lease).await, local);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let record = Record {
            holder: spec.holder_identity.clone().filter(|h| !h.is_empty()),
            renewed: spec.renew_time.clone(),
            held: spec.lease_duration_seconds,
        };
        let seen_at = match &self.observed {
            Some((seen, at)) if *seen == record => *at,
            _ => {
                self.observed = Some((record.clone(), local));
                local
            }
        };
        let ours = record.holder.as_deref() == Some(&self.identity);
        let held = Duration::from_secs(u64::try_from(record.held.unwrap_or(seconds)).unwrap_or(0));
        let free = record.holder.is_none() || local >= seen_at + held;
        if !ours && !free {
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
        self.won(self.api.replace(&self.name, &PostParams::default(), &taken).await, local)
    }

    /// Gives the Lease up, if this replica holds it, so that another takes over at once
    /// instead of after [`LEASE_DURATION`].
    pub async fn release(&mut self) -> kube::Result<()> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else { return Ok(()) };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(&self.identity) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        self.api.replace(&self.name, &PostParams::default(), &lease).await.map(|_| ())
    }

    /// A write that lost a race (409) means another replica leads.
    fn won(&mut self, written: kube::Result<Lease>, local: Instant) -> kube::Result<bool> {
        match written {
            Ok(lease) => {
                let spec = lease.spec.unwrap_or_default();
                let record = Record {
                    holder: spec.holder_identity.filter(|h| !h.is_empty()),
                    renewed: spec.renew_time,
                    held: spec.lease_duration_seconds,
                };
                self.observed = Some((record, local));
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }
}

/// One unbroken stretch of leading: until when this replica may write, and which stretch
/// it is (another replica may have led between two terms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Term {
    until: Instant,
    number: u64,
}

/// Whether this replica leads, as far as the keeper of its Lease knows; pinned to one term,
/// whether it still leads in that term (work begun in a term must not go on in the next:
/// another replica may have led in between).
#[derive(Clone, Debug)]
pub struct Leadership {
    terms: watch::Receiver<Option<Term>>,
    pinned: Option<u64>,
}

impl Leadership {
    /// A replica that always leads: for tools and tests that run one reconciler alone.
    pub fn always() -> Self {
        let until = Instant::now() + Duration::from_secs(100 * 365 * 86_400);
        Leadership { terms: watch::channel(Some(Term { until, number: 1 })).1, pinned: None }
    }

    /// A replica whose Lease lapsed.
    #[cfg(test)]
    pub(crate) fn lapsed() -> Self {
        Leadership { terms: watch::channel(None).1, pinned: None }
    }

    /// The term this replica leads in now, if it does.
    pub fn term(&self) -> Option<u64> {
        let term = (*self.terms.borrow()).filter(|term| Instant::now() < term.until)?;
        self.pinned.is_none_or(|pinned| pinned == term.number).then_some(term.number)
    }

    /// The same, pinned to the current term: it leads only while that term lasts.
    pub fn pinned(&self) -> Self {
        Leadership { terms: self.terms.clone(), pinned: self.term().or(Some(0)) }
    }

    /// Whether this replica may write now.
    pub fn leads(&self) -> bool {
        self.term().is_some()
    }

    /// How long this replica may still write, if it leads: a write must be done by then.
    pub fn remaining(&self) -> Option<Duration> {
        self.term()?;
        let until = self.terms.borrow().map(|term| term.until)?;
        until.checked_duration_since(Instant::now()).filter(|left| !left.is_zero())
    }

    /// Waits until leadership is won, lost or renewed.
    pub async fn changed(&mut self) {
        if self.terms.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// How long giving the Lease up on shutdown may take: well within a pod's grace period.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs election rounds every [`RETRY_PERIOD`] until `stop` resolves, then gives the Lease up.
pub fn keep(
    mut elector: Elector,
    stop: impl Future<Output = ()> + Send + 'static,
) -> (Leadership, tokio::task::JoinHandle<()>) {
    let (terms, leadership) = watch::channel(None::<Term>);
    let task = tokio::spawn(async move {
        tokio::pin!(stop);
        let mut number = 0;
        loop {
            let started = Instant::now();
            let round = crate::in_time(RETRY_PERIOD * 2, elector.try_lead(MicroTime(Timestamp::now()), started));
            let current = *terms.borrow();
            // Stopping does not wait for a round under way: the Lease is given up at once.
            let round = tokio::select! {
                round = round => round,
                () = &mut stop => break,
            };
            match round {
                Ok(true) => {
                    // Led without a break: the same term, renewed. Else a new one, as
                    // another replica may have led in between.
                    let number = match current {
                        Some(term) if term.until > started => term.number,
                        _ => {
                            number += 1;
                            number
                        }
                    };
                    terms.send_replace(Some(Term { until: started + RENEW_DEADLINE, number }));
                }
                Ok(false) => {
                    terms.send_if_modified(|term| term.take().is_some());
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot renew the leader Lease; retrying");
                    // The deadline lapses by itself; say so once it has.
                    terms.send_if_modified(|term| term.take_if(|t| t.until <= Instant::now()).is_some());
                }
            }
            tokio::select! {
                () = tokio::time::sleep(RETRY_PERIOD) => {}
                () = &mut stop => break,
            }
        }
        let led = terms.send_replace(None).is_some();
        if led && let Err(error) = crate::in_time(RELEASE_TIMEOUT, elector.release()).await {
            tracing::warn!(%error, "cannot release the leader Lease; another replica takes over once it expires");
        }
    });
    (Leadership { terms: leadership, pinned: None }, task)
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

    /// An elector for `me`, and the local clock's start.
    struct Replica {
        me: &'static str,
        observed: Option<(Record, Instant)>,
        start: Instant,
    }

    impl Replica {
        fn new(me: &'static str) -> Self {
            Replica { me, observed: None, start: Instant::now() }
        }

        /// One round `after` seconds on this replica's clock, `now` on the wall clock.
        async fn round(
            &mut self,
            now: i64,
            after: u64,
            exchanges: Vec<(Method, &str, u16, Value)>,
        ) -> (bool, Vec<Value>) {
            let exchanges = exchanges.into_iter().map(|(m, u, s, a)| (m, u.to_owned(), s, a)).collect();
            let (client, server) = api_server_with_status(exchanges);
            let mut elector = Elector::new(Api::namespaced(client, "manifold-system"), "manifold-operator", self.me);
            elector.observed = self.observed.take();
            let leads = elector.try_lead(at(now), self.start + Duration::from_secs(after)).await.unwrap();
            self.observed = elector.observed;
            (leads, server.await.unwrap())
        }
    }

    fn not_found() -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"})
    }

    #[test]
    fn work_pinned_to_a_term_stops_when_it_ends_even_if_a_new_one_begins() {
        let until = Instant::now() + Duration::from_secs(10);
        let (terms, receiver) = watch::channel(Some(Term { until, number: 1 }));
        let leadership = Leadership { terms: receiver, pinned: None };
        let reconcile = leadership.pinned();
        assert!(reconcile.leads() && reconcile.remaining().is_some());
        terms.send_replace(Some(Term { until, number: 2 }));
        assert!(leadership.leads(), "this replica leads again");
        assert!(!reconcile.leads() && reconcile.remaining().is_none(), "but not in the term the work began in");
        terms.send_replace(None);
        assert!(!leadership.pinned().leads(), "pinned while following: never leads");
    }

    /// A write slower than what is left of the term goes on while the term is renewed, and
    /// is abandoned when the term ends.
    #[tokio::test(start_paused = true)]
    async fn a_slow_write_lasts_as_long_as_its_term() {
        let start = Instant::now();
        let (terms, receiver) = watch::channel(Some(Term { until: start + Duration::from_secs(10), number: 1 }));
        let leadership = Leadership { terms: receiver, pinned: None }.pinned();
        let slow = |seconds| async move {
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            Ok::<_, kube::Error>(seconds)
        };
        let renew = async {
            tokio::time::sleep(Duration::from_secs(8)).await;
            terms.send_replace(Some(Term { until: start + Duration::from_secs(20), number: 1 }));
        };
        let (written, ()) = tokio::join!(crate::publish::while_leading(&leadership, slow(15)), renew);
        assert_eq!(written.unwrap(), 15, "renewed at 8 s: the write may take until 20 s");
        let abandoned = crate::publish::while_leading(&leadership, slow(15)).await;
        assert!(matches!(abandoned, Err(crate::publish::PublishError::NotLeading)), "the term ends at 20 s");
    }

    /// The keeper over 16 s of paused time: it leads (term 1), renews, cannot reach the API
    /// server long enough for its deadline to pass (following), leads again in a new term
    /// (2), and releases the Lease when stopped.
    #[tokio::test(start_paused = true)]
    async fn the_keeper_says_when_a_term_ends_and_numbers_the_next() {
        let failure = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "InternalError", "code": 500, "message": "down"});
        let renew = |at: i64| {
            [
                (Method::GET, LEASE.to_owned(), 200, lease("operator-a", at, 0)),
                (Method::PUT, format!("{LEASE}?"), 200, lease("operator-a", at, 0)),
            ]
        };
        let mut exchanges = vec![
            (Method::GET, LEASE.to_owned(), 404, not_found()),
            (Method::POST, LEASES.to_owned(), 201, lease("operator-a", 0, 0)),
        ];
        exchanges.extend(renew(2)); // t = 2 s
        exchanges.extend((0..5).map(|_| (Method::GET, LEASE.to_owned(), 500, failure.clone()))); // t = 4..12 s
        exchanges.extend(renew(14)); // t = 14 s: a new term
        exchanges.extend(renew(16)); // t = 16 s
        exchanges.extend(renew(16)); // stopped: released (read, then written without a holder)
        let (client, server) = api_server_with_status(exchanges);
        let elector = Elector::new(Api::namespaced(client, "manifold-system"), "manifold-operator", "operator-a");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let start = Instant::now();
        let (mut leadership, keeper) = keep(elector, async move {
            let _ = stopped.await;
        });
        let mut seen = Vec::new();
        while seen.last() != Some(&(14, Some(2))) {
            leadership.changed().await;
            seen.push(((Instant::now() - start).as_secs(), leadership.term()));
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        stop.send(()).unwrap();
        keeper.await.unwrap();
        assert_eq!(seen, [(0, Some(1)), (2, Some(1)), (12, None), (14, Some(2))]);
        let bodies = server.await.unwrap();
        assert_eq!(bodies.last().unwrap()["spec"].get("holderIdentity"), None, "released");
    }

    #[tokio::test]
    async fn the_first_replica_creates_the_lease_and_leads() {
        let created = lease("operator-a", 1000, 0);
        let (leads, bodies) = Replica::new("operator-a")
            .round(1000, 0, vec![(Method::GET, LEASE, 404, not_found()), (Method::POST, LEASES, 201, created)])
            .await;
        assert!(leads);
        assert_eq!(bodies[1]["spec"]["holderIdentity"], "operator-a");
        assert_eq!(bodies[1]["spec"]["leaseDurationSeconds"], 15);
    }

    #[tokio::test]
    async fn a_lease_of_another_replica_is_left_alone_while_it_changes() {
        let mut b = Replica::new("operator-b");
        // Its renewTime says long ago: another machine's clock, not to be compared with ours.
        let (leads, _) = b.round(5000, 0, vec![(Method::GET, LEASE, 200, lease("operator-a", 1000, 0))]).await;
        assert!(!leads, "first seen now: fresh for 15 s on b's clock");
        let (leads, _) = b.round(5010, 10, vec![(Method::GET, LEASE, 200, lease("operator-a", 1008, 0))]).await;
        assert!(!leads, "a renewed it meanwhile");
        let (leads, _) = b.round(5020, 20, vec![(Method::GET, LEASE, 200, lease("operator-a", 1016, 0))]).await;
        assert!(!leads, "and again");
    }

    #[tokio::test]
    async fn the_leader_renews_its_lease() {
        let (leads, bodies) = Replica::new("operator-a")
            .round(
                1005,
                0,
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
    async fn a_lease_unchanged_for_its_duration_changes_leader_and_a_lost_race_follows() {
        let mut b = Replica::new("operator-b");
        let stale = || (Method::GET, LEASE, 200, lease("operator-a", 1000, 0));
        assert!(!b.round(1000, 0, vec![stale()]).await.0);
        assert!(!b.round(1014, 14, vec![stale()]).await.0, "14 s unchanged: not yet");
        let (leads, bodies) = b
            .round(1016, 16, vec![stale(), (Method::PUT, &format!("{LEASE}?"), 200, lease("operator-b", 1016, 1))])
            .await;
        assert!(leads, "a stopped renewing 16 s ago on b's clock: b takes over");
        assert_eq!(
            (bodies[1]["spec"]["holderIdentity"].as_str(), bodies[1]["spec"]["leaseTransitions"].as_i64()),
            (Some("operator-b"), Some(1))
        );

        let conflict = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409, "message": "the object has been modified"});
        let mut c = Replica::new("operator-c");
        assert!(!c.round(1000, 0, vec![stale()]).await.0);
        let (leads, _) = c.round(1016, 16, vec![stale(), (Method::PUT, &format!("{LEASE}?"), 409, conflict)]).await;
        assert!(!leads, "c raced b for the same expired lease and lost");
    }

    #[tokio::test]
    async fn a_released_lease_is_taken_at_once_and_only_its_holder_releases() {
        let released = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "manifold-operator", "namespace": "manifold-system", "resourceVersion": "8"},
            "spec": {"leaseDurationSeconds": 1, "renewTime": at(1000), "leaseTransitions": 0}});
        let (leads, bodies) = Replica::new("operator-b")
            .round(
                1001,
                0,
                vec![
                    (Method::GET, LEASE, 200, released),
                    (Method::PUT, &format!("{LEASE}?"), 200, lease("operator-b", 1001, 1)),
                ],
            )
            .await;
        assert!(leads, "no holder: no need to wait");
        assert_eq!(bodies[1]["spec"]["holderIdentity"], "operator-b");

        let (client, server) = api_server_with_status(vec![
            (Method::GET, LEASE.into(), 200, lease("operator-a", 1000, 0)),
            (Method::PUT, format!("{LEASE}?"), 200, lease("operator-a", 1000, 0)),
        ]);
        Elector::new(Api::namespaced(client, "manifold-system"), "manifold-operator", "operator-a")
            .release()
            .await
            .unwrap();
        let bodies = server.await.unwrap();
        assert_eq!(
            (bodies[1]["spec"].get("holderIdentity"), bodies[1]["spec"]["leaseDurationSeconds"].as_i64()),
            (None, Some(1))
        );

        let (client, server) =
            api_server_with_status(vec![(Method::GET, LEASE.into(), 200, lease("operator-a", 1000, 0))]);
        Elector::new(Api::namespaced(client, "manifold-system"), "manifold-operator", "operator-b")
            .release()
            .await
            .unwrap();
        server.await.unwrap();
    }
}
