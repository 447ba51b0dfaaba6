//! The telemetry flags both binaries share, with the standard `OTEL_*` variables as their
//! environment, and the parsing of their values: a bad value is refused naming the flag and
//! the value.

use clap::{Args, ValueEnum};

/// Where and how traces are exported (flattened into each binary's arguments).
#[derive(Args, Clone, Debug, Default, PartialEq)]
pub struct TelemetryArgs {
    /// Export traces over OTLP to this collector (gRPC: `http://collector:4317`; HTTP:
    /// `http://collector:4318`, `/v1/traces` is appended). Tracing is off without it.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL", value_parser = endpoint)]
    pub otel_endpoint: Option<url::Url>,
    /// The collector's URL for traces, taken as it is (no path appended); wins over
    /// `--otel-endpoint` for traces.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", value_name = "URL", value_parser = endpoint, hide = true)]
    pub otel_traces_endpoint: Option<url::Url>,
    /// OTLP transport: `grpc`, or `http` (protobuf over HTTP; `http/protobuf` is taken too).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_PROTOCOL", value_name = "PROTOCOL", value_enum, default_value_t = Protocol::Http)]
    pub otel_protocol: Protocol,
    /// Headers (gRPC metadata) sent with every export, `key=value,key2=value2`, values
    /// percent-encoded: where a collector's credentials go.
    // Parsed by `TelemetryArgs::headers`, whose errors never quote a value (clap's would).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_HEADERS", value_name = "K=V,...", hide_env_values = true)]
    pub otel_headers: Option<String>,
    /// Share of new traces recorded, from 0 to 1; a request that joins a client's trace
    /// follows the client's decision (parent-based sampling).
    #[arg(long, env = "OTEL_TRACES_SAMPLER_ARG", value_name = "RATIO", value_parser = ratio, default_value_t = 1.0)]
    pub trace_sampling_ratio: f64,
    /// Attributes of every span's resource, `key=value,...` (`deployment.environment=prod`).
    #[arg(long, env = "OTEL_RESOURCE_ATTRIBUTES", value_name = "K=V,...", value_parser = pairs)]
    pub otel_resource_attributes: Option<Pairs>,
    /// The service name traces carry (default: the binary's name).
    #[arg(long, env = "OTEL_SERVICE_NAME", value_name = "NAME", hide = true)]
    pub otel_service_name: Option<String>,
    /// Also export the MCP conventions' histograms over OTLP, to the same collector.
    #[arg(long, env = "MANIFOLD_OTEL_METRICS")]
    pub otel_metrics: bool,
}

/// OTLP's two transports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// OTLP over gRPC (port 4317 by convention).
    Grpc,
    /// OTLP as protobuf over HTTP (port 4318 by convention); the OpenTelemetry default.
    #[default]
    #[value(alias = "http/protobuf")]
    Http,
}

/// `key=value` pairs, in order, values percent-decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pairs(pub Vec<(String, String)>);

impl TelemetryArgs {
    /// The export headers, parsed; an error names the entry by position, never its text.
    pub fn headers(&self) -> Result<Pairs, String> {
        let Some(text) = &self.otel_headers else { return Ok(Pairs::default()) };
        let entries = text.split(',').map(str::trim).filter(|entry| !entry.is_empty());
        let mut headers = Vec::new();
        for (index, entry) in entries.enumerate() {
            let parsed = pairs(entry).map_err(|_| {
                format!(
                    "--otel-headers (OTEL_EXPORTER_OTLP_HEADERS): entry {} is not key=value with a percent-encoded \
                     UTF-8 value (values not shown: they are credentials)",
                    index + 1
                )
            })?;
            headers.extend(parsed.0);
        }
        Ok(Pairs(headers))
    }

    /// Where spans go, when tracing is on: the traces URL as given, else the endpoint (with
    /// `/v1/traces` appended for HTTP, as the OTLP specification says).
    pub fn traces_endpoint(&self) -> Option<String> {
        if let Some(url) = &self.otel_traces_endpoint {
            return Some(url.to_string());
        }
        let url = self.otel_endpoint.as_ref()?;
        Some(match self.otel_protocol {
            // gRPC names its own paths: a bare origin, as `http://collector:4317`.
            Protocol::Grpc if url.path() == "/" => url.as_str().trim_end_matches('/').to_owned(),
            Protocol::Grpc => url.to_string(),
            Protocol::Http => signal_url(url, "v1/traces"),
        })
    }
}

/// `base` with `signal` appended to its path (`http://c:4318` → `http://c:4318/v1/traces`).
pub fn signal_url(base: &url::Url, signal: &str) -> String {
    let text = base.as_str();
    if text.ends_with('/') { format!("{text}{signal}") } else { format!("{text}/{signal}") }
}

fn endpoint(value: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(value.trim()).map_err(|error| format!("not a URL ({error})"))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(format!("scheme `{other}` is not supported: use http:// or https://")),
    }
}

fn ratio(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err("the sampling ratio is a number from 0 to 1 (0.01 records one trace in a hundred)".to_owned()),
    }
}

fn pairs(value: &str) -> Result<Pairs, String> {
    let mut pairs = Vec::new();
    for item in value.split(',').map(str::trim).filter(|item| !item.is_empty()) {
        let Some((key, raw)) = item.split_once('=') else {
            return Err(format!("`{item}` is not key=value"));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("`{item}` has no key"));
        }
        let decoded = percent_encoding::percent_decode_str(raw.trim())
            .decode_utf8()
            .map_err(|_| format!("the value of `{key}` is not UTF-8 once percent-decoded"))?;
        pairs.push((key.to_owned(), decoded.into_owned()));
    }
    Ok(Pairs(pairs))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        telemetry: TelemetryArgs,
    }

    fn parse(args: &[&str]) -> Result<TelemetryArgs, String> {
        let args = std::iter::once("test").chain(args.iter().copied());
        Cli::try_parse_from(args).map(|cli| cli.telemetry).map_err(|error| error.to_string())
    }

    #[test]
    fn tracing_is_off_without_an_endpoint_and_the_defaults_follow_opentelemetry() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.traces_endpoint(), None);
        assert_eq!((args.otel_protocol, args.trace_sampling_ratio, args.otel_metrics), (Protocol::Http, 1.0, false));
    }

    #[test]
    fn the_traces_url_gets_its_path_over_http_only_and_the_traces_variable_wins() {
        let http = parse(&["--otel-endpoint", "http://127.0.0.1:4318"]).unwrap();
        assert_eq!(http.traces_endpoint().as_deref(), Some("http://127.0.0.1:4318/v1/traces"));
        let grpc = parse(&["--otel-endpoint", "http://127.0.0.1:4317", "--otel-protocol", "grpc"]).unwrap();
        assert_eq!(grpc.traces_endpoint().as_deref(), Some("http://127.0.0.1:4317"));
        let both = parse(&[
            "--otel-endpoint",
            "http://a:4318/base/",
            "--otel-traces-endpoint",
            "http://b:4318/custom",
            "--otel-protocol",
            "http/protobuf",
        ])
        .unwrap();
        assert_eq!(both.traces_endpoint().as_deref(), Some("http://b:4318/custom"));
        assert_eq!(
            signal_url(&url::Url::parse("http://a:4318/base/").unwrap(), "v1/traces"),
            "http://a:4318/base/v1/traces"
        );
    }

    #[test]
    fn pairs_are_percent_decoded_in_order() {
        let args = parse(&[
            "--otel-headers",
            "authorization=Bearer%20abc, x-tenant=acme",
            "--otel-resource-attributes",
            "deployment.environment=prod",
        ])
        .unwrap();
        let headers = args.headers().unwrap().0;
        assert_eq!(headers, [("authorization".into(), "Bearer abc".into()), ("x-tenant".into(), "acme".into())]);
        assert_eq!(args.otel_resource_attributes.unwrap().0, [("deployment.environment".into(), "prod".into())]);
    }

    #[test]
    fn a_bad_value_is_refused_naming_the_flag_and_the_value() {
        let cases = [
            (&["--trace-sampling-ratio", "1.5"][..], ["--trace-sampling-ratio", "1.5", "from 0 to 1"]),
            (&["--trace-sampling-ratio", "often"], ["--trace-sampling-ratio", "often", "from 0 to 1"]),
            (&["--otel-protocol", "http/json"], ["--otel-protocol", "http/json", "grpc, http"]),
            (&["--otel-endpoint", "collector:4317"], ["--otel-endpoint", "collector:4317", "scheme `collector`"]),
            (&["--otel-endpoint", "not a url"], ["--otel-endpoint", "not a url", "not a URL"]),
            (&["--otel-resource-attributes", "=prod"], ["--otel-resource-attributes", "=prod", "has no key"]),
        ];
        for (args, expected) in cases {
            let error = parse(args).unwrap_err();
            for part in expected {
                assert!(error.contains(part), "{args:?}: `{part}` not in {error}");
            }
        }
        let secret = parse(&["--otel-headers", "x-a=1,Bearer-s3cret"]).unwrap().headers().unwrap_err();
        assert!(
            secret.starts_with("--otel-headers (OTEL_EXPORTER_OTLP_HEADERS): entry 2 is not key=value"),
            "{secret}"
        );
        assert!(!secret.contains("s3cret"), "{secret}");
    }
}
