// Command testenv runs a real kube-apiserver and etcd for Manifold's end-to-end tests, the
// way controller-runtime's envtest does: no kubelet, scheduler or controller-manager.
//
//	testenv serve --dir DIR          PKI and kubeconfigs in DIR, etcd in-process, kube-apiserver
//	                                 (the sibling binary) as a child, driven by its flags only
//	testenv credential --dir DIR ... a kubeconfig for any user or ServiceAccount, signed by
//	                                 the client CA of the server serving DIR
//
// `serve` prints `ready <url> <admin kubeconfig>` on stdout once /readyz answers, and stops
// (the API server first, then etcd) on SIGINT, SIGTERM or, with --stop-on-stdin-eof, when
// whoever started it closes its stdin: a test binary that dies takes its API server along,
// and, with that flag, the server takes DIR along when it stops cleanly.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serveCommand(os.Args[2:])
	case "credential":
		err = credentialCommand(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: testenv serve --dir DIR [--port N] [--stop-on-stdin-eof]")
	fmt.Fprintln(os.Stderr, "       testenv credential --dir DIR (--user NAME [--group G]... | --service-account NS/NAME) --out FILE")
	os.Exit(2)
}

func serveCommand(args []string) error {
	flags := flag.NewFlagSet("serve", flag.ExitOnError)
	dir := flags.String("dir", "", "directory for the PKI, etcd's data, logs and kubeconfigs (created)")
	port := flags.Int("port", 0, "the API server's secure port (0: a free one)")
	stopOnEOF := flags.Bool("stop-on-stdin-eof", false, "stop when stdin is closed")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("--dir is required")
	}
	return serve(*dir, *port, *stopOnEOF)
}

type groups []string

func (g *groups) String() string     { return strings.Join(*g, ",") }
func (g *groups) Set(v string) error { *g = append(*g, v); return nil }

func credentialCommand(args []string) error {
	flags := flag.NewFlagSet("credential", flag.ExitOnError)
	dir := flags.String("dir", "", "the directory `serve` was given")
	user := flags.String("user", "", "the user name (the certificate's CN)")
	var extra groups
	flags.Var(&extra, "group", "a group (the certificate's O); repeatable")
	account := flags.String("service-account", "", "NAMESPACE/NAME: the user and groups the API server gives that ServiceAccount")
	out := flags.String("out", "", "where to write the kubeconfig")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *dir == "" || *out == "" {
		return fmt.Errorf("--dir and --out are required")
	}
	name, groupList := *user, []string(extra)
	if *account != "" {
		namespace, sa, ok := strings.Cut(*account, "/")
		if !ok || namespace == "" || sa == "" || *user != "" {
			return fmt.Errorf("--service-account takes NAMESPACE/NAME, and excludes --user")
		}
		name = "system:serviceaccount:" + namespace + ":" + sa
		groupList = append(groupList, "system:serviceaccounts", "system:serviceaccounts:"+namespace)
	}
	if name == "" {
		return fmt.Errorf("one of --user or --service-account is required")
	}
	pki, err := loadPKI(*dir)
	if err != nil {
		return err
	}
	server, err := os.ReadFile(pki.path("server-url"))
	if err != nil {
		return fmt.Errorf("no API server has been served from %s: %w", *dir, err)
	}
	return pki.writeKubeconfig(*out, strings.TrimSpace(string(server)), name, groupList)
}
