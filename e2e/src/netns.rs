//! Pod addresses without a cluster. The API server refuses loopback addresses in
//! EndpointSlices, so the gateway "pods" of a scenario need addresses of their own: the
//! kube scenarios run in a private network namespace (`unshare`, which needs no privilege
//! beyond a user namespace), where each pod gets one of 198.18.0.0/15 (RFC 2544, for tests)
//! on the namespace's own loopback device. Nothing outside the namespace sees them.

use std::net::Ipv4Addr;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicU16, Ordering};

const INSIDE: &str = "MANIFOLD_E2E_NETNS";

/// Runs this test binary again inside a private network namespace and returns its exit
/// code; returns None when already inside (the caller then runs the tests).
pub fn run_inside() -> Option<ExitCode> {
    if std::env::var_os(INSIDE).is_some() {
        ip(&["link", "set", "lo", "up"]);
        return None;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut unshare = Command::new("unshare");
    // Root needs no user namespace; anyone else gets one, mapped to root inside.
    if !is_root() {
        unshare.arg("--map-root-user");
    }
    let status = unshare
        .args(["--net", "--"])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(INSIDE, "1")
        .status()
        .expect("run `unshare` (util-linux): the kube scenarios run in a private network namespace");
    Some(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

/// A fresh address for a pod, routed to this namespace's loopback device.
pub fn pod_address() -> Ipv4Addr {
    // 198.18.0.10 onwards, never wrapping into an address handed out already.
    static NEXT: AtomicU16 = AtomicU16::new(10);
    assert!(std::env::var_os(INSIDE).is_some(), "pod addresses exist only inside the scenarios' network namespace");
    let next = NEXT.fetch_add(1, Ordering::Relaxed);
    assert!(next < u16::MAX, "out of pod addresses");
    let [high, low] = next.to_be_bytes();
    let address = Ipv4Addr::new(198, 18, high, low);
    ip(&["addr", "add", &format!("{address}/32"), "dev", "lo"]);
    address
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run `ip` (iproute2)");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| out.stdout.starts_with(b"0\n"))
}
