//! The chart's alerting rules and dashboards as shipped: `promtool` (Debian's, from
//! `scripts/install-prometheus.sh`) checks `files/alerts.yaml` and runs its unit tests (each
//! alert firing, and silent on look-alikes), the PrometheusRule the chart renders holds exactly
//! those rules (and promtool accepts them as rendered), and each dashboard ConfigMap holds its
//! file. The queries themselves meet a real Prometheus in `tests/kube/dashboards.rs`. Beside
//! them, the OpenTelemetry export the chart's `telemetry` values render into both Deployments.

use manifold_e2e::{dashboards, helm, prometheus, repo_root};

fn promtool(args: &[&str]) -> String {
    let out = std::process::Command::new(prometheus::promtool())
        .current_dir(repo_root())
        .args(args)
        .output()
        .expect("run promtool");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {}:\n{text}", args.join(" "));
    text
}

#[test]
fn every_alert_fires_when_it_should_and_not_otherwise() {
    let checked = promtool(&["check", "rules", "charts/manifold/files/alerts.yaml"]);
    let rules = dashboards::alert_rules();
    assert!(checked.contains(&format!("SUCCESS: {} rules found", rules.len())), "{checked}");
    promtool(&["test", "rules", "charts/manifold/tests/alerts-test.yaml"]);
    // Every alert has a test that expects it to fire.
    let tests = std::fs::read_to_string(repo_root().join("charts/manifold/tests/alerts-test.yaml"))
        .expect("read alerts-test.yaml");
    for rule in &rules {
        let firing = format!("alertname: {}\n        exp_alerts:\n          - exp_labels", rule.name);
        assert!(tests.contains(&firing), "alerts-test.yaml has no case where {} fires", rule.name);
        assert!(
            tests.contains(&format!("alertname: {}, exp_alerts: []", rule.name)),
            "alerts-test.yaml has no case where {} stays silent",
            rule.name
        );
    }
}

#[test]
fn the_chart_renders_the_same_rules_and_dashboards() {
    let out = helm::run(&[
        "template",
        "manifold",
        "charts/manifold",
        "-n",
        "monitoring",
        "--set",
        "metrics.prometheusRule.enabled=true",
        "--show-only",
        "templates/prometheusrule.yaml",
        "--show-only",
        "templates/dashboards.yaml",
    ]);
    assert!(out.status.success(), "helm template: {}", String::from_utf8_lossy(&out.stderr));
    let rendered = String::from_utf8_lossy(&out.stdout);
    let objects: Vec<serde_yaml::Value> = rendered
        .split("\n---\n")
        .map(|document| serde_yaml::from_str(document).expect("helm renders YAML"))
        .filter(|object: &serde_yaml::Value| !object.is_null())
        .collect();

    let file: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo_root().join("charts/manifold/files/alerts.yaml")).expect("read alerts.yaml"),
    )
    .expect("alerts.yaml is YAML");
    let rule = objects.iter().find(|o| o["kind"] == "PrometheusRule").expect("a PrometheusRule is rendered");
    assert_eq!(rule["metadata"]["name"], "manifold-alerts");
    assert_eq!(rule["spec"]["groups"], file["groups"], "the PrometheusRule holds files/alerts.yaml's groups");
    // What the Prometheus Operator hands Prometheus: the spec as a rules file.
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = dir.path().join("rendered.yaml");
    std::fs::write(&spec, serde_yaml::to_string(&rule["spec"]).expect("YAML")).expect("write the rendered rules");
    promtool(&["check", "rules", &spec.display().to_string()]);

    let files = dashboards::files();
    assert_eq!(files.len(), 3, "the tenant, fleet and operator dashboards: {files:?}");
    for path in &files {
        let name = path.file_name().and_then(|n| n.to_str()).expect("a file name");
        let map = objects
            .iter()
            .find(|o| o["kind"] == "ConfigMap" && !o["data"][name].is_null())
            .unwrap_or_else(|| panic!("no ConfigMap holds {name}"));
        assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1", "labelled for the sidecar: {name}");
        assert_eq!(map["metadata"]["namespace"], "monitoring");
        let held: serde_json::Value = serde_json::from_str(map["data"][name].as_str().expect("text")).expect("JSON");
        assert_eq!(held, dashboards::read(path), "{name} is held as it is");
    }
}

/// The env of the single container of each Deployment helm renders with `args`, by name.
fn deployment_env(args: &[&str]) -> Vec<(String, Vec<serde_yaml::Value>)> {
    let mut command = vec!["template", "manifold", "charts/manifold", "-n", "manifold-system"];
    command.extend(args);
    command.extend([
        "--show-only",
        "templates/gateway-deployment.yaml",
        "--show-only",
        "templates/operator-deployment.yaml",
    ]);
    let out = helm::run(&command);
    assert!(out.status.success(), "helm template: {}", String::from_utf8_lossy(&out.stderr));
    let rendered = String::from_utf8_lossy(&out.stdout);
    let deployments: Vec<serde_yaml::Value> = rendered
        .split("\n---\n")
        .map(|document| serde_yaml::from_str(document).expect("helm renders YAML"))
        .filter(|object: &serde_yaml::Value| !object.is_null())
        .collect();
    assert_eq!(deployments.len(), 2, "the gateway and operator Deployments: {rendered}");
    deployments
        .iter()
        .map(|deployment| {
            let name = deployment["metadata"]["name"].as_str().expect("a name").to_owned();
            let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
                .as_sequence()
                .expect("the container has env")
                .clone();
            (name, env)
        })
        .collect()
}

fn named<'a>(env: &'a [serde_yaml::Value], name: &str) -> Option<&'a serde_yaml::Value> {
    env.iter().find(|variable| variable["name"] == name)
}

#[test]
fn the_chart_renders_opentelemetry_export_only_when_an_endpoint_is_set() {
    let telemetry_variables = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_RESOURCE_ATTRIBUTES",
        "MANIFOLD_OTEL_METRICS",
    ];
    // Defaults, and every telemetry value but the endpoint: nothing, the binaries do not trace.
    for args in [
        &[][..],
        &[
            "--set",
            "telemetry.otlp.headersSecret.name=otel-headers",
            "--set",
            "telemetry.metrics.otlp=true",
            "--set",
            "telemetry.resourceAttributes.team=platform",
        ],
    ] {
        for (deployment, env) in deployment_env(args) {
            for variable in telemetry_variables {
                assert!(named(&env, variable).is_none(), "{deployment} has {variable} with {args:?}");
            }
            // The runtime's service.instance.id is the pod's name, from the downward API.
            assert_eq!(
                named(&env, "POD_NAME").expect("POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
                "metadata.name"
            );
        }
    }

    // ci/all-options-values.yaml turns it all on.
    for (deployment, env) in deployment_env(&["-f", "charts/manifold/ci/all-options-values.yaml"]) {
        let value = |name: &str| {
            let variable = named(&env, name).unwrap_or_else(|| panic!("{deployment} has no {name}"));
            variable["value"].as_str().unwrap_or_else(|| panic!("{deployment}'s {name} is a plain value")).to_owned()
        };
        assert_eq!(value("OTEL_EXPORTER_OTLP_ENDPOINT"), "http://otel-collector.monitoring:4317", "{deployment}");
        assert_eq!(value("OTEL_EXPORTER_OTLP_PROTOCOL"), "grpc", "{deployment}");
        assert_eq!(value("OTEL_TRACES_SAMPLER_ARG"), "0.01", "{deployment}");
        assert_eq!(value("MANIFOLD_OTEL_METRICS"), "true", "{deployment}");
        // Downward-API variables the kubelet expands: they must come before the reference.
        assert_eq!(
            value("OTEL_RESOURCE_ATTRIBUTES"),
            "k8s.namespace.name=$(POD_NAMESPACE),k8s.pod.name=$(POD_NAME),\
             deployment.environment.name=prod,service.namespace=platform",
            "{deployment}"
        );
        let position = |name: &str| env.iter().position(|variable| variable["name"] == name).expect(name);
        assert!(position("POD_NAMESPACE") < position("OTEL_RESOURCE_ATTRIBUTES"), "{deployment}");
        assert!(position("POD_NAME") < position("OTEL_RESOURCE_ATTRIBUTES"), "{deployment}");
        // The collector's credentials come from the Secret, never inline.
        let headers = named(&env, "OTEL_EXPORTER_OTLP_HEADERS").expect("OTEL_EXPORTER_OTLP_HEADERS");
        assert!(headers["value"].is_null(), "{deployment}: headers inline");
        assert_eq!(headers["valueFrom"]["secretKeyRef"]["name"], "otel-headers", "{deployment}");
        assert_eq!(headers["valueFrom"]["secretKeyRef"]["key"], "headers", "{deployment}");
    }

    // A protocol the binaries do not speak is refused, naming the value.
    let out = helm::run(&["template", "manifold", "charts/manifold", "--set", "telemetry.otlp.protocol=thrift"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "protocol thrift was accepted");
    assert!(stderr.contains("/telemetry/otlp/protocol"), "the refusal names the value: {stderr}");
    // So is a key the chart sets itself.
    let out = helm::run(&[
        "template",
        "manifold",
        "charts/manifold",
        "--set",
        "telemetry.otlp.endpoint=https://collector.example",
        "--set",
        "telemetry.resourceAttributes.service\\.name=x",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "service.name among the resource attributes was accepted");
    assert!(stderr.contains("telemetry.resourceAttributes: `service.name`"), "{stderr}");
}
