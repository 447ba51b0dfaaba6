//! The chart's alerting rules and dashboards as shipped: `promtool` (Debian's, from
//! `scripts/install-prometheus.sh`) checks `files/alerts.yaml` and runs its unit tests (each
//! alert firing, and silent on look-alikes), the PrometheusRule the chart renders holds exactly
//! those rules (and promtool accepts them as rendered), and each dashboard ConfigMap holds its
//! file. The queries themselves meet a real Prometheus in `tests/kube/dashboards.rs`.

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
