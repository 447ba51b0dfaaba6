//! A real Prometheus (Debian's, unpacked by `scripts/install-prometheus.sh`, part of
//! `make peers`) as a child process: a config scraping the given targets every second, in a
//! temporary folder, on a free loopback port, with exemplar storage on. Tests ask it instant
//! queries (`/api/v1/query`) and label values as Grafana would; it is killed when dropped.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};

/// The folder holding `bin/prometheus` and `bin/promtool`, unpacked on first use.
pub fn binaries() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let script = crate::repo_root().join("scripts/install-prometheus.sh");
        let out = std::process::Command::new(&script)
            .stderr(std::process::Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
        assert!(out.status.success(), "scripts/install-prometheus.sh failed (its output is above)");
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

/// `promtool`, from the same package.
pub fn promtool() -> PathBuf {
    binaries().join("bin/promtool")
}

/// A scrape job: its name and `host:port` targets (`/metrics` on each).
pub struct Job {
    pub name: String,
    pub targets: Vec<String>,
}

/// One sample of an instant query's answer.
#[derive(Debug, Clone)]
pub struct Sample {
    pub labels: serde_json::Map<String, Value>,
    pub value: f64,
}

/// One `prometheus` process.
pub struct Prometheus {
    /// Killed when dropped (`kill_on_drop`), before its folder goes.
    _child: Child,
    pub url: String,
    http: reqwest::Client,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `jobs` every second (with `honor_labels`, as the chart's
    /// ServiceMonitors do: the gateways' `namespace` is the tenant's) and waits until ready.
    pub async fn start(jobs: &[Job]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = String::from(
            "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\nscrape_configs:\n",
        );
        for job in jobs {
            let targets: Vec<String> = job.targets.iter().map(|t| format!("\"{t}\"")).collect();
            config += &format!(
                "  - job_name: \"{}\"\n    honor_labels: true\n    static_configs: [{{targets: [{}]}}]\n",
                job.name,
                targets.join(", ")
            );
        }
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, config).expect("write prometheus.yml");
        let address = crate::process::free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("create prometheus.log");
        let child = Command::new(binaries().join("bin/prometheus"))
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={address}"))
            .arg("--enable-feature=exemplar-storage")
            .arg("--log.level=warn")
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("start prometheus ({e}): install it with scripts/install-prometheus.sh (part of `make peers`)")
            });
        let prometheus =
            Prometheus { _child: child, url: format!("http://{address}"), http: reqwest::Client::new(), dir };
        let ready = format!("{}/-/ready", prometheus.url);
        let http = prometheus.http.clone();
        crate::eventually("prometheus answers /-/ready", Duration::from_secs(30), || {
            let (http, ready) = (http.clone(), ready.clone());
            async move { http.get(&ready).send().await.ok().filter(|r| r.status().is_success()).map(|_| ()) }
        })
        .await;
        prometheus
    }

    /// Prometheus' own log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query at the current time: the samples of a vector, or the one value of a
    /// scalar; Err with Prometheus' message when it refuses the query.
    pub async fn query(&self, promql: &str) -> Result<Vec<Sample>, String> {
        let data = self.api("/api/v1/query", &[("query", promql)]).await?;
        let sample = |item: &Value| Sample {
            labels: item["metric"].as_object().cloned().unwrap_or_default(),
            value: number(&item["value"][1]),
        };
        match data["resultType"].as_str() {
            Some("vector") => Ok(data["result"].as_array().into_iter().flatten().map(sample).collect()),
            Some("scalar") => Ok(vec![Sample { labels: Default::default(), value: number(&data["result"][1]) }]),
            other => Err(format!("an answer of type {other:?}, not a vector or a scalar: {data}")),
        }
    }

    /// The values of `label` over the series `matcher` selects (`label_values(matcher, label)`
    /// of Grafana's Prometheus data source).
    pub async fn label_values(&self, label: &str, matcher: &str) -> Result<Vec<String>, String> {
        let data = self.api(&format!("/api/v1/label/{label}/values"), &[("match[]", matcher)]).await?;
        Ok(data.as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_owned)).collect())
    }

    /// Waits until every target has been scraped at least twice since now, so queries see
    /// what the targets expose at this moment (and a rate has two points past it).
    pub async fn until_scraped_twice_more(&self) {
        let since =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs_f64();
        let query = "min(timestamp(up))";
        crate::eventually("prometheus scrapes every target twice more", Duration::from_secs(20), || async move {
            let oldest = self.query(query).await.ok()?.first()?.value;
            (oldest > since + 1.0).then_some(())
        })
        .await;
    }

    async fn api(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, String> {
        let url = url::Url::parse_with_params(&format!("{}{path}", self.url), params)
            .map_err(|e| format!("a bad URL for {path}: {e}"))?;
        let response = self.http.get(url).send().await;
        let body: Value = match response {
            Ok(response) => response.json().await.map_err(|e| format!("not JSON: {e}"))?,
            Err(e) => return Err(format!("prometheus does not answer: {e}")),
        };
        if body["status"] == "success" {
            Ok(body["data"].clone())
        } else {
            Err(format!("{}: {}", body["errorType"], body["error"]))
        }
    }
}

/// A sample value: Prometheus writes numbers as strings ("NaN", "+Inf" included).
fn number(value: &Value) -> f64 {
    value.as_str().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN)
}
