//! Real MCP peers, run as child processes: from the repository's venv, FastMCP upstream
//! servers (`e2e/peers/upstream.py`), the conformance fixture (`conformance_fixture.py`) and
//! downstream clients (`e2e/peers/client.py`, driving the official `mcp` SDK or a FastMCP
//! `Client` through a list of operations), the agent examples of examples/agents/ against a
//! scripted model (`e2e/peers/agents.py`); from `e2e/peers/node`, Node 22 and the npm peers
//! (the conformance suite, MCP Inspector, the TypeScript SDK, server-everything, @google/genai).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::repo_root;

/// The venv's Python; panics with the set-up command when it is missing.
pub fn python() -> PathBuf {
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `scripts/install-peers.sh` (the README's test command, `make test`, does it)",
        python.display()
    );
    python
}

/// The directory holding Node 22 and the npm peers' executables; panics with the set-up
/// command when it is missing.
pub fn node_bin() -> PathBuf {
    let bin = repo_root().join("e2e/peers/node/node_modules/.bin");
    assert!(
        bin.join("node").exists(),
        "{} is missing: run `scripts/install-peers.sh` (the README's test command, `make test`, does it)",
        bin.display()
    );
    bin
}

/// A command running an npm peer's executable under Node 22.
pub fn node_command(executable: &str) -> Command {
    let bin = node_bin();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(&path)))
        .expect("PATH entries join");
    let mut command = Command::new(bin.join(executable));
    command.env("PATH", path).kill_on_drop(true);
    command
}

/// A running upstream server; killed when dropped.
pub struct Upstream {
    child: Child,
    pub port: u16,
    profile: String,
    /// The arguments it was started with, to restart it the same way.
    args: Vec<String>,
}

impl Upstream {
    /// Starts `e2e/peers/upstream.py --profile <profile>` and waits until it listens.
    pub async fn start(profile: &str) -> Self {
        Self::start_with(profile, &[]).await
    }

    /// The conformance fixture: every tool, resource and prompt the conformance suite's
    /// server scenarios call.
    pub async fn conformance_fixture(args: &[&str]) -> Self {
        let mut command = Command::new(python());
        command.arg(repo_root().join("e2e/peers/conformance_fixture.py")).args(args);
        Self::spawn(command, "conformance").await
    }

    /// A real REST app (`e2e/peers/rest_api.py --app <app>`: FastAPI served by uvicorn); its
    /// OpenAPI document is at `/openapi.json`.
    pub async fn rest_api(app: &str) -> Self {
        Self::rest_api_with(app, &[]).await
    }

    /// Same, with extra arguments (for example `--otlp-endpoint URL`).
    pub async fn rest_api_with(app: &str, args: &[&str]) -> Self {
        let mut command = Command::new(python());
        command.arg(repo_root().join("e2e/peers/rest_api.py")).args(["--app", app]).args(args);
        Self::spawn(command, app).await
    }

    /// An upstream that verifies bearer tokens (`e2e/peers/verifying.py --app <app>`): `mcp`
    /// (FastMCP with its `JWTVerifier`, tool `whoami`) or `api` (FastAPI with PyJWT,
    /// `GET /whoami`, OpenAPI at `/openapi.json`); `args` choose the key (`--jwks-uri URL`,
    /// `--public-key-file PEM`, `--hs256-secret-file FILE`), `--issuer` and `--audience`.
    /// Both count accepted and refused tokens at `GET /stats`.
    pub async fn verifying(app: &str, args: &[&str]) -> Self {
        let mut command = Command::new(python());
        command.arg(repo_root().join("e2e/peers/verifying.py")).args(["--app", app]).args(args);
        Self::spawn(command, &format!("verifying-{app}")).await
    }

    /// `@modelcontextprotocol/server-everything` over streamable HTTP (`/mcp`).
    pub async fn everything() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let mut command = node_command("mcp-server-everything");
        command.arg("streamableHttp").env("PORT", port.to_string());
        let child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start server-everything");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "server-everything did not listen within 60s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Upstream { child, port, profile: "everything".into(), args: vec![] }
    }

    /// Same, with extra arguments (for example `--transport sse`).
    pub async fn start_with(profile: &str, args: &[&str]) -> Self {
        let mut command = Command::new(python());
        command.arg(repo_root().join("e2e/peers/upstream.py")).args(["--profile", profile]).args(args);
        let mut upstream = Self::spawn(command, profile).await;
        upstream.args = args.iter().map(|a| (*a).to_owned()).collect();
        upstream
    }

    /// Runs a server that prints `LISTENING <port>` once it accepts connections.
    pub async fn spawn(mut command: Command, profile: &str) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start upstream `{profile}`: {e}"));
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("upstream `{profile}` did not start within 60s"))
            .expect("read upstream stdout")
            .unwrap_or_else(|| panic!("upstream `{profile}` exited before listening"));
        let port = line
            .strip_prefix("LISTENING ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from upstream `{profile}`: {line}"));
        Upstream { child, port, profile: profile.to_owned(), args: vec![] }
    }

    /// Its streamable HTTP endpoint.
    pub fn mcp_url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    /// Its legacy SSE endpoint.
    pub fn sse_url(&self) -> String {
        format!("http://127.0.0.1:{}/sse", self.port)
    }

    /// Starts the same profile again on the same port: a restarted server that has lost
    /// its sessions.
    pub async fn restart(&mut self) {
        self.kill().await;
        let port = self.port.to_string();
        let mut args: Vec<&str> = self.args.iter().map(String::as_str).filter(|a| *a != "--port").collect();
        if let Some(i) = self.args.iter().position(|a| a == "--port") {
            args.retain(|a| *a != self.args[i + 1]);
        }
        args.extend(["--port", &port]);
        *self = Upstream::start_with(&self.profile, &args).await;
    }

    /// A URL on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Stops it now (to test an upstream going away).
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
        eprintln!("killed upstream `{}`", self.profile);
    }
}

/// Which client library drives the session.
#[derive(Clone, Copy, Debug)]
pub enum Sdk {
    /// The official Python SDK (`mcp`).
    Mcp,
    /// FastMCP's `Client`.
    FastMcp,
    /// The official TypeScript SDK (`e2e/peers/node/client.mjs`).
    TypeScript,
}

impl Sdk {
    pub const ALL: [Sdk; 2] = [Sdk::Mcp, Sdk::FastMcp];

    fn command(self, url: &str) -> Command {
        match self {
            Sdk::TypeScript => {
                let mut command = node_command("node");
                command.arg(repo_root().join("e2e/peers/node/client.mjs")).args(["--url", url]);
                command
            }
            Sdk::Mcp | Sdk::FastMcp => {
                let sdk = if matches!(self, Sdk::Mcp) { "mcp" } else { "fastmcp" };
                let mut command = Command::new(python());
                command.arg(repo_root().join("e2e/peers/client.py")).args([
                    "--url",
                    url,
                    "--sdk",
                    sdk,
                    "--timeout",
                    "20",
                ]);
                command
            }
        }
    }
}

/// Runs `ops` (a JSON array, see client.py) in one client session against `url`; returns one
/// JSON value per operation. Panics on a fatal client error, with its message.
pub async fn run_client(url: &str, sdk: Sdk, ops: Value) -> Vec<Value> {
    run_client_with(url, sdk, &[], ops).await
}

/// Runs `ops` with the Python `mcp` client in the existing session `session` (no
/// `initialize`: `client.py --resume`).
pub async fn run_client_resuming(url: &str, session: &str, ops: Value) -> Vec<Value> {
    run_client_args(url, Sdk::Mcp, &["--resume".to_owned(), session.to_owned()], ops).await
}

/// Same, with HTTP headers (`Name: value`) on every request (Python `mcp` client only).
pub async fn run_client_with(url: &str, sdk: Sdk, headers: &[String], ops: Value) -> Vec<Value> {
    let args: Vec<String> = headers.iter().flat_map(|h| ["--header".to_owned(), h.clone()]).collect();
    run_client_args(url, sdk, &args, ops).await
}

/// Same, with the client's spans exported over OTLP/HTTP to `otlp` (`client.py
/// --otlp-endpoint`, service `e2e-client`), so ops may ask to be `traced`.
pub async fn run_client_traced(url: &str, sdk: Sdk, otlp: &str, headers: &[String], ops: Value) -> Vec<Value> {
    let mut args: Vec<String> = headers.iter().flat_map(|h| ["--header".to_owned(), h.clone()]).collect();
    args.extend(["--otlp-endpoint".to_owned(), otlp.to_owned()]);
    run_client_args(url, sdk, &args, ops).await
}

async fn run_client_args(url: &str, sdk: Sdk, args: &[String], ops: Value) -> Vec<Value> {
    let mut command = sdk.command(url);
    command.args(args);
    let output = fed(command, &ops, &format!("the {sdk:?} client")).await;
    let results: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("client printed non-JSON `{line}`: {e}")))
        .collect();
    if let Some(fatal) = results.iter().find_map(|r| r.get("fatal")) {
        panic!("{sdk:?} client failed: {fatal}\nstderr:\n{}", String::from_utf8_lossy(&output.stderr));
    }
    results
}

/// The sorted tool names of a `list_tools` result.
pub fn tool_names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("not a tools list: {list}"))
        .iter()
        .map(|t| t["name"].as_str().expect("tool name").to_owned())
        .collect();
    names.sort();
    names
}

/// The first text content of a `call` result.
pub fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_else(|| panic!("no text content in {result}"))
}

/// Runs `script` (`{"input", "turns"}`) through the agent example `example` of
/// examples/agents/ (`gemini_agent.py`, `gemini_agent.mjs`, ...), its tools the route at `url`
/// (`headers`: at most `Authorization: Bearer <key or JWT>`), its model scripted; returns what
/// e2e/peers/agents.py printed: the final answer or what the SDK raised, the tool names offered
/// per model request, the tool results as the model received them, the request count and the
/// requests the model refused.
pub async fn run_agent(example: &str, url: &str, headers: &[String], script: Value) -> Value {
    let mut command = Command::new(python());
    command.arg(repo_root().join("e2e/peers/agents.py")).arg(example).args(["--url", url]);
    for header in headers {
        command.args(["--header", header]);
    }
    let output = fed(command, &script, "agents.py").await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("agents.py {example} printed `{stdout}` ({e})\nstderr:\n{}", String::from_utf8_lossy(&output.stderr))
    })
}

/// The scripted model server (`e2e/peers/scripted_model.py serve`): one loopback port speaking
/// Gemini `generateContent`, OpenAI Chat Completions and Responses, and Anthropic Messages,
/// playing `turns` one per request and validating each request as its provider does. It stops
/// when dropped (its stdin closes).
pub struct ScriptedModel {
    _child: Child,
    _stdin: tokio::process::ChildStdin,
    /// `http://127.0.0.1:P`.
    pub url: String,
}

impl ScriptedModel {
    /// Starts it with `turns` (see scripted_model.py) and waits until it listens.
    pub async fn start(turns: Value) -> Self {
        let mut child = Command::new(python())
            .arg(repo_root().join("e2e/peers/scripted_model.py"))
            .arg("serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start scripted_model.py serve");
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(json!({ "turns": turns }).to_string().as_bytes()).await.expect("write the turns");
        stdin.flush().await.expect("flush the turns");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the scripted model prints its URL within 60s")
            .expect("read the scripted model's stdout")
            .expect("the scripted model exited before printing its URL");
        let printed: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("scripted model printed `{line}` ({e})"));
        let url = printed["url"].as_str().unwrap_or_else(|| panic!("no url in {printed}")).to_owned();
        ScriptedModel { _child: child, _stdin: stdin, url }
    }

    /// The base URL an SDK of `provider` is given: `…/v1` for openai, the root otherwise.
    pub fn base_url(&self, provider: &str) -> String {
        if provider == "openai" { format!("{}/v1", self.url) } else { self.url.clone() }
    }

    /// `{"requests": [{api, path, body}], "refusals": [{api, status, error}]}` so far.
    pub async fn seen(&self) -> Value {
        reqwest::get(format!("{}/_scripted", self.url))
            .await
            .and_then(|r| r.error_for_status())
            .expect("GET /_scripted")
            .json()
            .await
            .expect("GET /_scripted answers JSON")
    }
}

/// Why the scripted model would refuse a request carrying `tools`, exported in `format`
/// (`openai`, `openai-strict`, `openai-responses`, `anthropic`, `gemini`): the same validators
/// as its request path. Empty when the provider would accept them.
pub async fn validate_tools(format: &str, tools: &Value) -> Vec<String> {
    let mut command = Command::new(python());
    command.arg(repo_root().join("e2e/peers/scripted_model.py")).args(["validate", format]);
    let output = fed(command, tools, "scripted_model.py validate").await;
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("scripted_model.py validate printed no JSON ({e}); stderr:\n{}", String::from_utf8_lossy(&output.stderr))
    });
    printed["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors list in {printed}"))
        .iter()
        .map(|e| e.as_str().expect("each error is a string").to_owned())
        .collect()
}

/// `text` parsed as OpenMetrics by prometheus_client's parser (`e2e/peers/openmetrics.py`):
/// `{"families": [{name, type, samples: [{name, labels, value, exemplar}]}]}`, or
/// `{"fatal": why}` when the text breaks the format's rules.
pub async fn parse_openmetrics(text: &str) -> Value {
    let mut command = Command::new(python());
    command.arg(repo_root().join("e2e/peers/openmetrics.py"));
    let output = fed(command, &Value::String(text.to_owned()), "the OpenMetrics parser").await;
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("the OpenMetrics parser printed no JSON ({e}); stderr:\n{}", String::from_utf8_lossy(&output.stderr))
    })
}

/// Runs `command` (`what` names it in panics) with `input` on its stdin, then its stdin closed,
/// and returns its output once it exits, within two minutes.
async fn fed(mut command: Command, input: &Value, what: &str) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(input.to_string().as_bytes()).await.unwrap_or_else(|e| panic!("write to {what}: {e}"));
    drop(stdin);
    tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{what} finished within 120s"))
        .unwrap_or_else(|e| panic!("{what}'s output: {e}"))
}
