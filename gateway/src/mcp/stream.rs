//! The server-sent event streams of one client session, as one replica serves them. Stream 0
//! is the standalone stream a client opens with GET; every POST answered as a stream gets
//! the next number. Each event carries an id `<epoch>-<stream>-<seq>`, where the epoch is
//! drawn at random for each session entry, so ids stay unique across replicas and across
//! the entries one replica makes for a session over time. The last events are kept so that
//! a client reconnecting with `Last-Event-ID` gets what it missed, and then the rest of that
//! stream if it is still running.

use std::collections::{HashMap, HashSet, VecDeque};
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame};
use tokio::sync::mpsc;

/// Events kept per session for resumption.
const KEPT_EVENTS: usize = 128;
/// Events buffered for one connected client before it counts as too slow and is cut off (it
/// can resume with `Last-Event-ID`).
const CLIENT_BUFFER: usize = 1024;
/// Comment lines keep idle streams open through proxies that cut silent connections.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub const STANDALONE: u64 = 0;

pub struct Streams {
    epoch: u32,
    inner: Mutex<Inner>,
}

impl Default for Streams {
    fn default() -> Self {
        let mut epoch = [0u8; 4];
        aws_lc_rs::rand::fill(&mut epoch).expect("the system has randomness");
        Streams { epoch: u32::from_ne_bytes(epoch), inner: Mutex::default() }
    }
}

#[derive(Default)]
struct Inner {
    last_stream: u64,
    last_seq: u64,
    kept: VecDeque<Kept>,
    /// The connected client of each stream.
    listeners: HashMap<u64, mpsc::Sender<Bytes>>,
    /// POST streams whose exchange has ended: nothing more will be sent on them.
    finished: HashSet<u64>,
    /// Standalone events sent while no client listened, delivered to the next one.
    undelivered: Vec<Bytes>,
}

struct Kept {
    stream: u64,
    seq: u64,
    frame: Bytes,
}

impl Streams {
    /// A new stream answering a POST, and its client's end.
    pub fn open(&self) -> (u64, SseBody) {
        let mut inner = self.inner.lock().expect("streams lock");
        inner.last_stream += 1;
        let stream = inner.last_stream;
        let (tx, rx) = mpsc::channel(CLIENT_BUFFER);
        inner.listeners.insert(stream, tx);
        (stream, SseBody::new(rx))
    }

    /// Sends one JSON-RPC message on `stream`.
    pub fn send(&self, stream: u64, message: &[u8]) {
        let mut inner = self.inner.lock().expect("streams lock");
        inner.last_seq += 1;
        let seq = inner.last_seq;
        let mut frame = Vec::with_capacity(message.len() + 32);
        frame.extend_from_slice(format!("event: message\nid: {:08x}-{stream}-{seq}\ndata: ", self.epoch).as_bytes());
        frame.extend_from_slice(message);
        frame.extend_from_slice(b"\n\n");
        let frame = Bytes::from(frame);
        if inner.kept.len() == KEPT_EVENTS {
            inner.kept.pop_front();
        }
        inner.kept.push_back(Kept { stream, seq, frame: frame.clone() });
        let delivered = match inner.listeners.get(&stream) {
            Some(listener) => listener.try_send(frame.clone()).is_ok(),
            None => false,
        };
        if !delivered {
            inner.listeners.remove(&stream);
            if stream == STANDALONE {
                inner.undelivered.push(frame);
                let excess = inner.undelivered.len().saturating_sub(KEPT_EVENTS);
                inner.undelivered.drain(..excess);
            }
        }
    }

    /// Ends a POST stream: its client's body finishes after the events already sent.
    pub fn finish(&self, stream: u64) {
        let mut inner = self.inner.lock().expect("streams lock");
        inner.listeners.remove(&stream);
        inner.finished.insert(stream);
        // Only streams whose events are still kept can be resumed.
        let oldest = inner.kept.front().map_or(u64::MAX, |k| k.stream);
        inner.finished.retain(|&s| s >= oldest || s == stream);
    }

    /// A client's GET: the standalone stream, or with `Last-Event-ID` the rest of the stream
    /// that event was on. An event of the standalone stream sent by another entry of the
    /// session (another replica's) opens the standalone stream afresh: what that entry kept
    /// is gone. None when the id is not one of this session's, or names a request's stream
    /// another entry served (its answer cannot come here).
    pub fn listen(&self, last_event: Option<&str>) -> Option<SseBody> {
        let resume = match last_event {
            None => None,
            Some(id) => {
                let mut parts = id.splitn(3, '-');
                let epoch = u32::from_str_radix(parts.next()?, 16).ok()?;
                let (stream, seq) = (parts.next()?.parse::<u64>().ok()?, parts.next()?.parse::<u64>().ok()?);
                match (epoch == self.epoch, stream) {
                    (true, _) => Some((stream, seq)),
                    (false, STANDALONE) => None,
                    (false, _) => return None,
                }
            }
        };
        let (tx, rx) = mpsc::channel(CLIENT_BUFFER);
        let mut inner = self.inner.lock().expect("streams lock");
        let (stream, missed): (u64, Vec<Bytes>) = match resume {
            None => (STANDALONE, std::mem::take(&mut inner.undelivered)),
            Some((stream, seq)) => {
                if stream > inner.last_stream || seq > inner.last_seq {
                    return None;
                }
                let missed = inner.kept.iter().filter(|k| k.stream == stream && k.seq > seq).map(|k| k.frame.clone());
                (stream, missed.collect())
            }
        };
        for frame in missed {
            let _ = tx.try_send(frame);
        }
        if stream == STANDALONE || !inner.finished.contains(&stream) {
            inner.listeners.insert(stream, tx);
        }
        Some(SseBody::new(rx))
    }

    /// Whether a client holds the standalone stream.
    pub fn has_listener(&self) -> bool {
        self.inner.lock().expect("streams lock").listeners.get(&STANDALONE).is_some_and(|l| !l.is_closed())
    }
}

/// The body of an SSE response: events as they are sent, and a comment when idle.
pub struct SseBody {
    events: mpsc::Receiver<Bytes>,
    keep_alive: tokio::time::Interval,
    /// Work stopped when the client goes away (the stateless revision's cancellation).
    cancel_on_drop: Option<tokio::task::AbortHandle>,
}

/// Feeds a [`SseBody::direct`] stream.
#[derive(Clone)]
pub struct DirectSender(mpsc::Sender<Bytes>);

impl DirectSender {
    /// Whether the client has gone away.
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    /// Sends one JSON-RPC message as an event without an id.
    pub fn send(&self, message: &[u8]) {
        let mut frame = Vec::with_capacity(message.len() + 24);
        frame.extend_from_slice(b"event: message\ndata: ");
        frame.extend_from_slice(message);
        frame.extend_from_slice(b"\n\n");
        if self.0.try_send(Bytes::from(frame)).is_err() {
            tracing::debug!("a client too slow for its event stream missed a message");
        }
    }
}

impl SseBody {
    fn new(events: mpsc::Receiver<Bytes>) -> Self {
        let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
        keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        keep_alive.reset();
        SseBody { events, keep_alive, cancel_on_drop: None }
    }

    /// A stream outside any session (the stateless revision: no event ids, no resumption).
    pub fn direct() -> (DirectSender, SseBody) {
        let (tx, rx) = mpsc::channel(CLIENT_BUFFER);
        (DirectSender(tx), SseBody::new(rx))
    }

    /// Stops `task` when the client goes away before the stream ends.
    pub fn cancel_on_drop(&mut self, task: tokio::task::AbortHandle) {
        self.cancel_on_drop = Some(task);
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        if let Some(task) = self.cancel_on_drop.take() {
            task.abort();
        }
    }
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.events.poll_recv(cx) {
            Poll::Ready(Some(frame)) => {
                self.keep_alive.reset();
                Poll::Ready(Some(Ok(Frame::data(frame))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.keep_alive.poll_tick(cx) {
                Poll::Ready(_) => Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b": keep-alive\n\n"))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn next(body: &mut SseBody) -> String {
        let frame = body.frame().await.unwrap().unwrap();
        String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn event_ids_are_unique_across_streams() {
        let streams = Streams::default();
        let (a, mut body_a) = streams.open();
        let (b, mut body_b) = streams.open();
        streams.send(a, b"{}");
        streams.send(b, b"{}");
        let epoch = format!("{:08x}", streams.epoch);
        assert!(next(&mut body_a).await.contains(&format!("id: {epoch}-1-1\n")));
        assert!(next(&mut body_b).await.contains(&format!("id: {epoch}-2-2\n")));
        assert_ne!(Streams::default().epoch, streams.epoch, "another entry of the session numbers apart");
    }

    #[tokio::test]
    async fn a_client_resumes_a_stream_after_its_last_event() {
        let streams = Streams::default();
        let (stream, body) = streams.open();
        streams.send(stream, b"1");
        drop(body); // the client's connection broke
        streams.send(stream, b"2");
        streams.send(stream, b"3");
        let mut resumed = streams.listen(Some(&format!("{:08x}-{stream}-1", streams.epoch))).unwrap();
        assert!(next(&mut resumed).await.ends_with("data: 2\n\n"));
        assert!(next(&mut resumed).await.ends_with("data: 3\n\n"));
        streams.send(stream, b"4");
        assert!(next(&mut resumed).await.ends_with("data: 4\n\n"), "then the live rest of the stream");
        streams.finish(stream);
        assert!(resumed.frame().await.is_none());
        let epoch = streams.epoch;
        assert!(streams.listen(Some(&format!("{epoch:08x}-9-9"))).is_none(), "an id this session never sent");
        assert!(streams.listen(Some("9-9")).is_none(), "not an event id of ours");
        let elsewhere = epoch.wrapping_add(1);
        assert!(
            streams.listen(Some(&format!("{elsewhere:08x}-{stream}-1"))).is_none(),
            "another entry's request stream"
        );
        let mut fresh =
            streams.listen(Some(&format!("{elsewhere:08x}-0-7"))).expect("another entry's standalone stream");
        streams.send(STANDALONE, b"5");
        assert!(next(&mut fresh).await.ends_with("data: 5\n\n"), "the standalone stream opens afresh");
    }

    #[tokio::test]
    async fn standalone_events_wait_for_a_listener() {
        let streams = Streams::default();
        streams.send(STANDALONE, b"early");
        let mut body = streams.listen(None).unwrap();
        assert!(next(&mut body).await.ends_with("data: early\n\n"));
        assert!(streams.has_listener());
    }
}
