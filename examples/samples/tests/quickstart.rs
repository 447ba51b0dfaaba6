//! The README's quickstart, as a new user runs it: the quickstart binary serves an MCP URL,
//! and the `fastmcp` CLI lists prefixed tools from both sample servers and calls them.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

struct Quickstart(Child);

impl Drop for Quickstart {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn fastmcp(args: &[&str]) -> (bool, String) {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/fastmcp");
    assert!(bin.exists(), "{} is missing: run scripts/install-peers.sh", bin.display());
    let out = Command::new(bin).args(args).output().expect("run fastmcp");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn fastmcp_cli_lists_and_calls_tools_of_both_samples() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_manifold-quickstart"))
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the quickstart");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let quickstart = Quickstart(child);
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("Manifold is serving MCP at ").map(str::to_owned))
        .expect("the quickstart prints its MCP URL");
    std::thread::spawn(move || lines.for_each(drop)); // keep draining what it prints
    assert!(url.ends_with("/demo/quickstart/mcp"), "{url}");

    let (ok, listed) = fastmcp(&["list", &url]);
    assert!(ok, "{listed}");
    for tool in
        ["math_add", "math_multiply", "math_about", "text_upper", "text_reverse", "text_word_count", "text_about"]
    {
        assert!(listed.contains(&format!("{tool}(")), "`{tool}` missing from:\n{listed}");
    }
    let (ok, sum) = fastmcp(&["call", &url, "math_add", "a=2", "b=40"]);
    assert!(ok && sum.contains("42"), "{sum}");
    let (ok, reversed) = fastmcp(&["call", &url, "text_reverse", "text=manifold"]);
    assert!(ok && reversed.contains("dlofinam"), "{reversed}");
    let (ok, about) = fastmcp(&["call", &url, "text_about"]);
    assert!(ok && about.contains("text: string sample server"), "{about}");
    drop(quickstart);
}
