//! Server-sent events, parsed incrementally from a byte stream: how both upstream transports
//! (streamable HTTP's SSE responses and the legacy SSE stream) deliver messages.

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};

/// One dispatched event.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Event {
    /// `event:` field; empty means "message".
    pub event: String,
    /// `data:` lines joined by '\n'.
    pub data: String,
    /// `id:` field, if any.
    pub id: Option<String>,
    /// `retry:` field: how long to wait before reconnecting, in milliseconds.
    pub retry: Option<u64>,
}

/// Reads events from a stream of byte chunks.
pub struct EventReader<S> {
    chunks: S,
    buffer: BytesMut,
    /// How far `buffer` is known to hold no line break.
    scanned: usize,
    pending: Event,
    has_data: bool,
}

/// Events larger than this end the stream: a broken or hostile upstream cannot make the
/// gateway buffer without bound. The same bound as a JSON reply's.
const MAX_EVENT_BYTES: usize = super::MAX_MESSAGE_BYTES;

impl<S, E> EventReader<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    pub fn new(chunks: S) -> Self {
        EventReader { chunks, buffer: BytesMut::new(), scanned: 0, pending: Event::default(), has_data: false }
    }

    /// The next complete event; `None` at the end of the stream, or when an event grows past
    /// [`MAX_EVENT_BYTES`].
    pub async fn next(&mut self) -> Option<Result<Event, E>> {
        loop {
            while let Some(offset) = self.buffer[self.scanned..].iter().position(|&b| b == b'\n') {
                let line = self.buffer.split_to(self.scanned + offset + 1);
                self.scanned = 0;
                let line = line.strip_suffix(b"\n").unwrap_or(&line);
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if let Some(event) = self.feed(line) {
                    return Some(Ok(event));
                }
            }
            self.scanned = self.buffer.len();
            if self.buffer.len() + self.pending.data.len() > MAX_EVENT_BYTES {
                return None;
            }
            match self.chunks.next().await {
                Some(Ok(chunk)) => self.buffer.extend_from_slice(chunk.chunk()),
                Some(Err(e)) => return Some(Err(e)),
                None => return None,
            }
        }
    }

    fn feed(&mut self, line: &[u8]) -> Option<Event> {
        if line.is_empty() {
            // An event with no data (a priming event: an id and a retry hint) still carries
            // them to the reader.
            let dispatch = self.has_data || self.pending.id.is_some() || self.pending.retry.is_some();
            self.has_data = false;
            let event = std::mem::take(&mut self.pending);
            return dispatch.then_some(event);
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.pending.event = value.to_owned(),
            "data" => {
                if self.has_data {
                    self.pending.data.push('\n');
                }
                self.pending.data.push_str(value);
                self.has_data = true;
            }
            "id" => self.pending.id = Some(value.to_owned()),
            "retry" => self.pending.retry = value.parse().ok(),
            _ => {} // comments (": keep-alive")
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn events(chunks: &[&'static str]) -> Vec<Event> {
        let stream = futures::stream::iter(chunks.iter().map(|c| Ok::<_, ()>(Bytes::from_static(c.as_bytes()))));
        let mut reader = EventReader::new(stream);
        let mut out = Vec::new();
        while let Some(event) = reader.next().await {
            out.push(event.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn parses_events_split_across_chunks() {
        let got = events(&[
            "event: endpoint\r\ndata: /messages?s",
            "ession_id=1\r\n\r\n",
            ": ping\n\nid: 7\ndata: {\"a\":\ndata: 1}\n\n",
        ])
        .await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].event, "endpoint");
        assert_eq!(got[0].data, "/messages?session_id=1");
        assert_eq!(got[1].id.as_deref(), Some("7"));
        assert_eq!(got[1].data, "{\"a\":\n1}");
    }

    #[tokio::test]
    async fn ends_the_stream_on_an_oversized_event() {
        let line: &'static str = Box::leak(format!("data: {}\n", "x".repeat(1024 * 1024)).into_boxed_str());
        let chunks: Vec<&'static str> = std::iter::repeat_n(line, 65).collect();
        assert!(events(&chunks).await.is_empty(), "65 MiB of data lines in one event is refused");
    }

    #[tokio::test]
    async fn ignores_an_unterminated_last_event() {
        assert!(events(&["data: partial"]).await.is_empty());
    }
}
