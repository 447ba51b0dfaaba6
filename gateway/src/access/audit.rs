//! The audit log: one JSON line per `tools/call`, `resources/read` and `prompts/get`, with
//! who asked for what, through which mount, what was decided and how it ended. Lines go
//! through a channel to a writer thread, so a slow disk never holds a request.

use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// How long the writer lets lines gather before writing them.
const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(20);

/// One audited request.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Event<'a> {
    pub tenant: &'a str,
    pub route: &'a str,
    pub principal: &'a str,
    pub method: &'a str,
    /// The tool, prompt or URI as the client named it.
    pub target: &'a str,
    /// The mounted server that served it; none when refused before routing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount: Option<&'a str>,
    pub decision: super::Decision,
    /// `ok`, `error`, `upstream_error`, `denied`, ...
    pub outcome: &'a str,
    pub latency_ms: f64,
    /// Only when the route opts in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<&'a serde_json::value::RawValue>,
}

/// Where audit lines go.
pub struct Log(mpsc::Sender<String>);

impl Log {
    /// Appends to `path`, or writes to stdout when there is none.
    pub fn open(path: Option<&PathBuf>) -> std::io::Result<Self> {
        let out: Box<dyn Write + Send> = match path {
            Some(path) => Box::new(std::fs::OpenOptions::new().create(true).append(true).open(path)?),
            None => Box::new(std::io::stdout()),
        };
        let mut out = std::io::BufWriter::new(out);
        let (lines, received) = mpsc::channel::<String>();
        std::thread::Builder::new().name("audit-log".into()).spawn(move || {
            // Under load, a wake-up per line would cost the request threads more than the
            // writing: the writer sleeps while a batch gathers, then writes and flushes it.
            while let Ok(line) = received.recv() {
                std::thread::sleep(BATCH_WINDOW);
                let written = std::iter::once(line)
                    .chain(std::iter::from_fn(|| received.try_recv().ok()))
                    .try_for_each(|line| out.write_all(line.as_bytes()))
                    .and_then(|()| out.flush());
                if let Err(error) = written {
                    tracing::error!(%error, "writing the audit log failed");
                }
            }
        })?;
        Ok(Log(lines))
    }

    pub fn record(&self, event: &Event) {
        #[derive(Serialize)]
        struct Line<'a> {
            #[serde(rename = "timeMs")]
            time_ms: u128,
            audit: &'a Event<'a>,
        }
        let time_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let mut line = serde_json::to_string(&Line { time_ms, audit: event }).expect("events serialize");
        line.push('\n');
        let _ = self.0.send(line);
    }
}
