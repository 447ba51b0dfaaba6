//! Local stack on a precompiled GatewayConfig (what `manifold-operator render` writes and
//! `manifold-gateway --config` serves): served, reloaded on change, and a tampered file is
//! refused while the last good config keeps serving.

use std::time::Duration;

use manifold_api::manifests::{self, Source};
use manifold_e2e::peers::Upstream;
use manifold_e2e::raw::RawSession;
use manifold_e2e::{eventually, yaml};
use manifold_gateway::{ConfigSource, Settings};

fn render(upstream: &Upstream, prefix: &str) -> String {
    let text = yaml::server("alpha", &upstream.mcp_url(), "")
        + &yaml::route("tools", &format!("mounts: [{{server: alpha, prefix: {prefix}}}]"));
    let read = manifests::read(&[Source { origin: "test".into(), text }]).unwrap();
    serde_yaml::to_string(&manifold_api::compile(&read.inputs, None).config).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn serves_reloads_and_verifies_a_compiled_config() {
    let alpha = Upstream::start("alpha").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, render(&alpha, "first")).unwrap();
    let settings = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        watch_interval: Duration::from_millis(100),
        ..Settings::default()
    };
    let running = manifold_gateway::start(settings, ConfigSource::File(file.clone())).await.unwrap();
    let url = running.url("/acme/tools/mcp");
    assert!(RawSession::initialize(&url).await.tool_names().await.iter().all(|n| n.starts_with("first_")));

    let replace = |text: String| {
        // Write then rename, so the gateway never reads a half-written file.
        let tmp = dir.path().join(".config.yaml.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &file).unwrap();
    };
    replace(render(&alpha, "second"));
    eventually("the new file served", Duration::from_secs(10), || async {
        let names = RawSession::initialize(&url).await.tool_names().await;
        names.iter().all(|n| n.starts_with("second_")).then_some(())
    })
    .await;

    let tampered = render(&alpha, "third").replace("prefix: third", "prefix: evil");
    assert!(tampered.contains("prefix: evil"), "the tampering took");
    replace(tampered);
    let metrics = format!("http://{}/metrics", running.admin_addr);
    eventually("the tampered file rejected", Duration::from_secs(10), || async {
        let text = reqwest::get(&metrics).await.ok()?.text().await.ok()?;
        text.contains(r#"manifold_config_loads_total{outcome="rejected"} 1"#).then_some(())
    })
    .await;
    assert!(RawSession::initialize(&url).await.tool_names().await.iter().all(|n| n.starts_with("second_")));
    running.shutdown().await;
}
