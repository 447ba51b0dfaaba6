#!/usr/bin/env bash
# Checks the Dockerfile's images without a registry or a Docker engine (docs/images.md):
#
#  1. its targets operator, samples and gateway copy and run the workspace's binaries
#     (`ENTRYPOINT ["/manifold-<name>"]`, `USER 65532:65532`, one COPY);
#  2. the release binaries build (`cargo build --release --locked -p manifold-<name>`);
#  3. each final stage of the Dockerfile, as written, is built with podman over a stand-in of
#     distroless cc-debian12:nonroot assembled from this machine's files (the binaries' shared
#     libraries from ldd, the CA bundle, /etc/passwd with nonroot 65532), from the binaries just
#     built and stripped as the Dockerfile strips them: no base image can be pulled here.
#     With --build-stages, the whole Dockerfile is built instead, target by target, its build
#     stages over a stand-in of rust:1-bookworm made from this Debian 12 machine and its Rust
#     toolchain (kept as localhost/manifold-check-rust:1-bookworm, ~4 GB, for the next run;
#     the first build of each target takes as long as its cargo build --release);
#  4. the containers run as the chart runs them: uid/gid 65532, read-only root filesystem with
#     no tmpfs added, all capabilities dropped, no-new-privileges; the gateway with a session
#     key file mounted read-only, serving the quickstart's route over the samples container.
#     /healthz and /readyz answer, and an MCP client calls math_add through the gateway; each
#     process's uid, capabilities and root mount are read from /proc;
#  5. the operator image renders the quickstart in the same sandbox and, asked to `run` with no
#     cluster, fails with the client error (there is no API server in this check).
#
# Exits 0 with a `SKIP:` line naming the missing piece when a tool is absent (podman, runc
# where crun cannot run, curl, ldd, strip) or when not root (rootful podman is needed).
# Removes its containers and images. Takes ~20 s once the release binaries are built.
set -euo pipefail

mode=binaries
case "${1:-}" in
    "") ;;
    --build-stages) mode=stages ;;
    *) echo "usage: $0 [--build-stages]" >&2; exit 2 ;;
esac
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
start=$SECONDS
names=(operator samples gateway)
say() { echo "check-image: $*"; }
skip() { say "SKIP: $*"; exit 0; }
fail() { say "FAIL: $*" >&2; exit 1; }
stage() { awk -v t="$1" '$1 == "FROM" { on = (tolower($3) == "as" && $4 == t) } on' Dockerfile; }

# --- 1. The Dockerfile names the right binaries and paths -------------------------------------
for name in "${names[@]}"; do
    final="$(stage "$name")"
    build="$(stage "build-$name")"
    [[ -n "$final" ]] || fail "Dockerfile has no stage \`$name\`"
    grep -qx "COPY --from=build-$name /manifold-$name /manifold-$name" <<<"$final" ||
        fail "stage $name does not copy /manifold-$name from stage build-$name"
    [[ "$(grep -c '^COPY' <<<"$final")" == 1 ]] || fail "stage $name copies more than its binary"
    grep -qx "USER 65532:65532" <<<"$final" || fail "stage $name does not run as 65532:65532"
    grep -qx "ENTRYPOINT \[\"/manifold-$name\"\]" <<<"$final" || fail "stage $name: the entrypoint is not its binary"
    grep -q -- "cargo build --release --locked -p manifold-$name --bin manifold-$name" <<<"$build" ||
        fail "stage build-$name does not build manifold-$name"
    grep -q -- "strip --strip-debug -o /manifold-$name target/release/manifold-$name" <<<"$build" ||
        fail "stage build-$name does not put target/release/manifold-$name at /manifold-$name"
done
say "Dockerfile: stages ${names[*]} copy and run their binary as 65532:65532"

# --- Tools -------------------------------------------------------------------------------------
command -v podman >/dev/null || skip "podman is not installed (apt-get install podman runc)"
# Rootless podman maps 65532 to a subordinate uid, and the checks read the containers' /proc
# as the host sees it.
[[ "$EUID" == 0 ]] || skip "needs root (rootful podman)"
for tool in curl ldd strip; do command -v "$tool" >/dev/null || skip "$tool is not installed"; done
# crun refuses to start anything where cgroup v2 is mounted beside v1 with a controller
# ("cgroups in hybrid mode not supported, drop all controllers from cgroupv2"); runc does not.
if command -v runc >/dev/null; then
    runtime=(--runtime runc)
elif [[ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ]]; then
    skip "crun cannot start containers under hybrid cgroups here and runc is not installed (apt-get install runc)"
else
    runtime=()
fi
# A hard limit can only be raised with CAP_SYS_RESOURCE, which a sandbox may withhold, and
# podman's defaults (nofile 1048576) are above this machine's: ask for less than this shell has.
nofile="$(ulimit -Hn)"; [[ "$nofile" == unlimited || "$nofile" -gt 65536 ]] && nofile=65536
nproc="$(ulimit -Hu)"; [[ "$nproc" == unlimited || "$nproc" -gt 4096 ]] && nproc=4096
podman_run() { podman "${runtime[@]}" run --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc" "$@"; }

# --- 2. The release binaries -------------------------------------------------------------------
# One binary per invocation, as the Dockerfile builds them (each with its own features).
for name in "${names[@]}"; do
    cargo build --release --locked -q -p "manifold-$name" --bin "manifold-$name"
done
bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release"
say "release binaries built ($((SECONDS - start)) s so far)"

# --- 3. Images: the Dockerfile's final stages over a local stand-in of distroless ---------------
tag="check-$$"
work="$(mktemp -d)"
containers=()
cleanup() {
    for c in "${containers[@]}"; do podman "${runtime[@]}" rm -f "$c" >/dev/null 2>&1 || true; done
    for name in "${names[@]}" check-distroless; do podman rmi -f "localhost/manifold-$name:$tag" >/dev/null 2>&1 || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# distroless cc-debian12:nonroot holds glibc, libgcc_s, CA certificates, /etc/passwd and
# /etc/group with nonroot (65532), /home/nonroot and /tmp: no shell, no package manager.
base="$work/base"
mkdir -p "$base/etc/ssl/certs" "$base/tmp" "$base/home/nonroot"
chmod 1777 "$base/tmp"
libs="$(for name in "${names[@]}"; do
    ldd "$bin/manifold-$name" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'
done | sort -u)"
for lib in $libs; do
    mkdir -p "$base$(dirname "$lib")"
    cp -L "$lib" "$base$lib"
done
cp /etc/ssl/certs/ca-certificates.crt "$base/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$base/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$base/etc/group"
printf 'FROM scratch\nCOPY . /\nUSER 65532:65532\n' >"$work/Containerfile.base"
podman build -q -f "$work/Containerfile.base" -t "localhost/manifold-check-distroless:$tag" "$base" >/dev/null

# A stand-in of rust:1-bookworm: this machine's Debian 12 without the large trees a build
# does not use, and its Rust toolchain where the official image keeps it.
rust_standin() {
    local image=localhost/manifold-check-rust:1-bookworm sysroot toolchain
    podman image exists "$image" && return
    grep -qx 'VERSION_ID="12"' /etc/os-release || skip "--build-stages makes its Rust image from a Debian 12 host"
    sysroot="$(rustc --print sysroot)"
    toolchain="$(basename "$sysroot")"
    say "making $image from / and $sysroot (once; a few minutes)"
    mkdir -p "$work/skel/tmp" "$work/skel/root"
    chmod 1777 "$work/skel/tmp"
    tar -C / -cf - --exclude=usr/lib/google-cloud-sdk --exclude=usr/lib/jvm --exclude=usr/local/go \
        --exclude=usr/local/bin --exclude=usr/share/doc --exclude=usr/share/man \
        etc usr bin sbin lib lib64 -C "$work/skel" tmp root \
        -C "$(dirname "$sysroot")" --transform "s|^$toolchain|usr/local/rustup/toolchains/$toolchain|" "$toolchain" |
        podman import -q --change "ENV RUSTUP_HOME=/usr/local/rustup" --change "ENV CARGO_HOME=/usr/local/cargo" \
            --change "ENV PATH=/usr/local/cargo/bin:/usr/local/rustup/toolchains/$toolchain/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
            - "$image" >/dev/null
}

mkdir -p "$work/context"
sizes=()
[[ "$mode" == stages ]] && rust_standin
for name in "${names[@]}"; do
    if [[ "$mode" == stages ]]; then
        # The Dockerfile as it is, the working tree as the context (.dockerignore applies).
        podman "${runtime[@]}" build -q --network host --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc" \
            --target "$name" --build-arg RUST_IMAGE=localhost/manifold-check-rust:1-bookworm \
            --build-arg "RUNTIME_IMAGE=localhost/manifold-check-distroless:$tag" -t "localhost/manifold-$name:$tag" . \
            >"$work/build-$name.log" 2>&1 || { tail -30 "$work/build-$name.log" >&2; fail "the Dockerfile's target $name does not build"; }
        say "target $name built ($((SECONDS - start)) s so far)"
    else
        # The build stages need a Rust image and crates.io; here their output is the local
        # build, stripped as they strip it. The global ARGs (before the first FROM), then the
        # stage, copying from the context.
        strip --strip-debug -o "$work/context/manifold-$name" "$bin/manifold-$name"
        { awk '$1 == "FROM" {exit} $1 == "ARG"' Dockerfile
          stage "$name" | sed "s|^COPY --from=build-$name /|COPY |"; } >"$work/Containerfile.$name"
        podman build -q -f "$work/Containerfile.$name" --build-arg "RUNTIME_IMAGE=localhost/manifold-check-distroless:$tag" \
            -t "localhost/manifold-$name:$tag" "$work/context" >/dev/null
    fi
    # Exactly the base's layer and one more, holding the binary.
    layers="$(podman image inspect --format '{{len .RootFS.Layers}}' "localhost/manifold-$name:$tag")"
    [[ "$layers" == 2 ]] || fail "image $name has $layers layers, not the base's and its binary's"
    config="$(podman image inspect --format '{{.Config.User}} {{json .Config.Entrypoint}}' "localhost/manifold-$name:$tag")"
    [[ "$config" == "65532:65532 [\"/manifold-$name\"]" ]] || fail "image $name: user and entrypoint are $config"
    sizes+=("$name $(($(podman image inspect --format '{{.Size}}' "localhost/manifold-$name:$tag") / 1000000)) MB")
done
sizes_line="$(IFS=,; echo "${sizes[*]}")"
say "images built ($mode) over the stand-in base: ${sizes_line//,/, }"

# What the chart's securityContext asks: runAsUser/runAsGroup 65532, readOnlyRootFilesystem
# (and no writable /tmp: Kubernetes adds none), capabilities drop ALL, no privilege escalation.
sandbox=(--read-only --read-only-tmpfs=false --user 65532:65532 --cap-drop ALL
    --security-opt no-new-privileges --network host)

# The process of a running container runs as 65532 with no capabilities on a read-only root.
check_sandboxed() {
    local name="$1" container="$2" pid uids capeff root_options
    pid="$(podman inspect --format '{{.State.Pid}}' "$container")"
    uids="$(awk '/^(Uid|Gid):/ {print $2, $3, $4, $5}' "/proc/$pid/status" | tr '\n' ' ')"
    [[ "$uids" == "65532 65532 65532 65532 65532 65532 65532 65532 " ]] || fail "$name runs with uid/gid $uids"
    capeff="$(awk '/^CapEff:/ {print $2}' "/proc/$pid/status")"
    [[ "$capeff" == 0000000000000000 ]] || fail "$name has capabilities $capeff"
    root_options="$(awk '$5 == "/" {print $6}' "/proc/$pid/mountinfo" | tail -1)"
    [[ "$root_options" == ro || "$root_options" == ro,* ]] || fail "$name's root is mounted $root_options"
    if touch "/proc/$pid/root/probe" 2>/dev/null || touch "/proc/$pid/root/tmp/probe" 2>/dev/null; then
        fail "$name's root filesystem is writable"
    fi
}
# Polls `curl ARGS…` until it succeeds, while the container runs, for 30 s.
wait_for() {
    local name="$1" container="$2" deadline=$((SECONDS + 30))
    shift 2
    until curl -sS -o /dev/null "$@" 2>/dev/null; do
        if [[ "$(podman inspect --format '{{.State.Running}}' "$container")" != true ]]; then
            podman logs "$container" 2>&1 | tail -20 >&2
            fail "the $name container exited"
        fi
        ((SECONDS < deadline)) || { podman logs "$container" 2>&1 | tail -20 >&2; fail "$name: no answer within 30 s"; }
        sleep 0.2
    done
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- 4. The samples, and the gateway serving the quickstart over them --------------------------
math_port="$(free_port)"
text_port="$(free_port)"
samples="$(podman_run -d "${sandbox[@]}" "localhost/manifold-samples:$tag" \
    --math "127.0.0.1:$math_port" --text "127.0.0.1:$text_port")"
containers+=("$samples")
wait_for samples "$samples" "http://127.0.0.1:$math_port/mcp"
wait_for samples "$samples" "http://127.0.0.1:$text_port/mcp"
check_sandboxed samples "$samples"

mkdir -p "$work/manifests" "$work/session-keys"
sed -e "s|127.0.0.1:9301|127.0.0.1:$math_port|" -e "s|127.0.0.1:9302|127.0.0.1:$text_port|" \
    examples/quickstart/servers.yaml >"$work/manifests/servers.yaml"
cp examples/quickstart/route.yaml "$work/manifests/"
chmod -R a+rX "$work/manifests"
head -c 32 /dev/urandom | base64 >"$work/session-keys/keys"
# The chart mounts the key Secret with mode 0440 and fsGroup 65532.
chgrp -R 65532 "$work/session-keys" && chmod 0750 "$work/session-keys" && chmod 0440 "$work/session-keys/keys"
mcp_port="$(free_port)"
admin_port="$(free_port)"
gateway="$(podman_run -d "${sandbox[@]}" \
    -v "$work/manifests:/manifests:ro" -v "$work/session-keys:/etc/manifold/session-keys:ro" \
    "localhost/manifold-gateway:$tag" --manifests /manifests \
    --listen "127.0.0.1:$mcp_port" --admin-listen "127.0.0.1:$admin_port" \
    --session-keys /etc/manifold/session-keys/keys --log-format json)"
containers+=("$gateway")
wait_for gateway "$gateway" -f "http://127.0.0.1:$admin_port/healthz"
curl -fsS -o /dev/null "http://127.0.0.1:$admin_port/readyz" || fail "the gateway's /readyz does not answer 200"
check_sandboxed gateway "$gateway"

url="http://127.0.0.1:$mcp_port/demo/quickstart/mcp"
mcp() { curl -fsS -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' "$@" "$url"; }
init='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"check-image","version":"0"}}}'
mcp -D "$work/headers" -o "$work/initialize" -d "$init" || fail "MCP initialize failed"
session="$(awk 'tolower($1) == "mcp-session-id:" {print $2}' "$work/headers" | tr -d '\r')"
[[ -n "$session" ]] || fail "initialize gave no Mcp-Session-Id: $(cat "$work/initialize")"
mcp -H "Mcp-Session-Id: $session" -H 'MCP-Protocol-Version: 2025-06-18' \
    -d '{"jsonrpc":"2.0","method":"notifications/initialized"}' -o /dev/null || fail "notifications/initialized failed"
answer="$(mcp -H "Mcp-Session-Id: $session" -H 'MCP-Protocol-Version: 2025-06-18' \
    -d '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"math_add","arguments":{"a":2,"b":40}}}')" ||
    fail "tools/call math_add failed"
grep -q '"structuredContent":{"result":42' <<<"$answer" || fail "math_add 2 40 answered $answer"
say "gateway and samples: /healthz, /readyz, math_add(2, 40) = 42 through the gateway;" \
    "both run as 65532:65532 with no capabilities on a read-only root"

# --- 5. The operator ----------------------------------------------------------------------------
podman_run --rm "${sandbox[@]}" -v "$repo/examples/quickstart:/manifests:ro" \
    "localhost/manifold-operator:$tag" render -f /manifests >"$work/rendered.yaml" 2>"$work/render.err" ||
    { cat "$work/render.err" >&2; fail "the operator image cannot render the quickstart"; }
grep -q 'quickstart' "$work/rendered.yaml" || fail "the operator rendered no route"
code=0
podman_run --rm "${sandbox[@]}" -e KUBECONFIG=/nonexistent "localhost/manifold-operator:$tag" \
    run --namespace manifold --admin-listen 127.0.0.1:0 >"$work/run.out" 2>&1 || code=$?
if [[ "$code" != 1 ]] || ! grep -q 'cannot configure a Kubernetes client' "$work/run.out"; then
    cat "$work/run.out" >&2
    fail "operator run without a cluster: exit $code, not the client error"
fi
say "operator: render works; run starts and stops on the missing cluster, as it must here"
say "OK in $((SECONDS - start)) s"
