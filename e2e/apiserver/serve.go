// serve: etcd in this process, kube-apiserver (the binary beside this one) as a child process
// configured by flags alone, an admin kubeconfig once /readyz answers, and a clean stop.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// auditPolicy records every write (not reads) at Metadata level: tests count an
// operator's writes in DIR/audit.log.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  verbs: [get, list, watch]
- level: Metadata
`

func serve(dir string, port int, stopOnEOF bool) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	// A test harness's folder (--stop-on-stdin-eof) goes when the server stops cleanly: the
	// harness may never remove it, since a test binary's shared server lives in a static
	// whose drop never runs. Registered before etcd's Close, so it runs after it; a failed
	// start keeps the folder, whose logs the harness prints.
	removeDir := false
	defer func() {
		if removeDir {
			_ = os.RemoveAll(dir)
		}
	}()
	pki, err := newPKI(dir)
	if err != nil {
		return fmt.Errorf("making the PKI: %w", err)
	}
	etcd, err := startEtcd(dir)
	if err != nil {
		return fmt.Errorf("starting etcd: %w", err)
	}
	defer etcd.Close()
	if port == 0 {
		if port, err = freePort(); err != nil {
			return err
		}
	}
	server := "https://127.0.0.1:" + strconv.Itoa(port)
	if err := os.WriteFile(pki.path("server-url"), []byte(server+"\n"), 0o600); err != nil {
		return err
	}
	admin := pki.path("admin.kubeconfig")
	if err := pki.writeKubeconfig(admin, server, "manifold-testenv-admin", []string{"system:masters"}); err != nil {
		return err
	}
	if err := os.WriteFile(pki.path("audit-policy.yaml"), []byte(auditPolicy), 0o600); err != nil {
		return err
	}
	apiserver, err := startAPIServer(dir, port, etcd.Clients[0].Addr().String())
	if err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- apiserver.Wait() }()

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	if stopOnEOF {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			cancel()
		}()
	}
	ready := make(chan error, 1)
	go func() { ready <- waitReady(ctx, pki, server) }()
	select {
	case err = <-ready:
		if err != nil {
			stop(apiserver, exited)
			return err
		}
		fmt.Printf("ready %s %s\n", server, admin)
		if self, err := os.Executable(); err == nil {
			fmt.Fprintf(os.Stderr, "testenv: kube-apiserver at %s; to use it:\n  export KUBECONFIG=%s PATH=%s:$PATH\n  kubectl get namespaces\n(stop with Ctrl-C)\n",
				server, admin, filepath.Dir(self))
		}
	case err = <-exited:
		return fmt.Errorf("kube-apiserver exited during start-up (%v); see %s", err, filepath.Join(dir, "apiserver.log"))
	}
	select {
	case <-ctx.Done():
		stop(apiserver, exited)
		removeDir = stopOnEOF
		return nil
	case err = <-exited:
		return fmt.Errorf("kube-apiserver exited (%v); see %s", err, filepath.Join(dir, "apiserver.log"))
	}
}

func startEtcd(dir string) (*embed.Etcd, error) {
	clientPort, err := freePort()
	if err != nil {
		return nil, err
	}
	peerPort, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg := embed.NewConfig()
	cfg.Name = "testenv"
	cfg.Dir = filepath.Join(dir, "etcd")
	client := url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(clientPort)}
	peer := url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(peerPort)}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// Test data: losing it on a crash is fine, waiting for the disk is not.
	cfg.UnsafeNoFsync = true
	cfg.LogLevel = "warn"
	cfg.LogOutputs = []string{filepath.Join(dir, "etcd.log")}
	etcd, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-etcd.Server.ReadyNotify():
		return etcd, nil
	case <-time.After(60 * time.Second):
		etcd.Close()
		return nil, fmt.Errorf("etcd was not ready within 60 s; see %s", cfg.LogOutputs[0])
	}
}

func startAPIServer(dir string, port int, etcdAddr string) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	binary := filepath.Join(filepath.Dir(self), "kube-apiserver")
	in := func(name string) string { return filepath.Join(dir, name) }
	args := []string{
		"--etcd-servers=http://" + etcdAddr,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--endpoint-reconciler-type=none",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + in("certs"),
		"--tls-cert-file=" + in("serving.crt"),
		"--tls-private-key-file=" + in("serving.key"),
		"--client-ca-file=" + in("ca.crt"),
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.0.0.0/24",
		"--allow-privileged=true",
		"--disable-admission-plugins=ServiceAccount",
		"--service-account-issuer=https://127.0.0.1:" + strconv.Itoa(port) + "/",
		"--service-account-key-file=" + in("sa.pub"),
		"--service-account-signing-key-file=" + in("sa.key"),
		"--audit-policy-file=" + in("audit-policy.yaml"),
		"--audit-log-path=" + in("audit.log"),
		"--audit-log-format=json",
		"--audit-log-mode=blocking",
	}
	log, err := os.Create(in("apiserver.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = log, log
	// The API server must not outlive this process, however it ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", binary, err)
	}
	return cmd, nil
}

// waitReady polls /readyz as admin (anonymous requests may be refused while RBAC bootstraps).
func waitReady(ctx context.Context, pki *pki, server string) error {
	roots := x509.NewCertPool()
	roots.AddCert(pki.ca)
	cert, err := adminCertificate(pki)
	if err != nil {
		return err
	}
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}}},
	}
	deadline := time.Now().Add(120 * time.Second)
	last := "no answer"
	for time.Now().Before(deadline) {
		if resp, err := client.Get(server + "/readyz"); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, lastLine(body))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped before the API server was ready")
		case <-time.After(250 * time.Millisecond):
		}
	}
	return fmt.Errorf("/readyz did not answer 200 within 120 s (last: %s)", last)
}

// adminCertificate is a client certificate in system:masters, for the readiness probe.
func adminCertificate(p *pki) (tls.Certificate, error) {
	certPEM, keyPEM, err := p.sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "manifold-testenv-admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

func stop(apiserver *exec.Cmd, exited <-chan error) {
	_ = apiserver.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = apiserver.Process.Kill()
		<-exited
	}
}

func freePort() (int, error) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer listener.Close()
	return listener.Addr().(*net.TCPAddr).Port, nil
}

// lastLine is the last non-empty line of a /readyz answer: the check that failed.
func lastLine(body []byte) string {
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	return lines[len(lines)-1]
}
