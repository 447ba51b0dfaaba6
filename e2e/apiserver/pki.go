// The PKI of one test API server: a CA that signs the serving certificate and every client
// certificate (user = CN, groups = O), and the ServiceAccount token signing key. Everything
// lives as PEM files in the server's directory, so `credential` can sign for a running server.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

type pki struct {
	dir  string
	ca   *x509.Certificate
	key  *ecdsa.PrivateKey
	cert []byte // the CA certificate, PEM
}

func (p *pki) path(name string) string { return filepath.Join(p.dir, name) }

// newPKI makes a CA, the serving certificate for 127.0.0.1 and localhost, and the
// ServiceAccount key pair in dir.
func newPKI(dir string) (*pki, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	template := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "manifold-testenv-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	p := &pki{dir: dir, ca: ca, key: key, cert: pemBlock("CERTIFICATE", der)}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := p.write("ca.crt", p.cert); err != nil {
		return nil, err
	}
	if err := p.write("ca.key", pemBlock("EC PRIVATE KEY", keyDER)); err != nil {
		return nil, err
	}
	serving := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	certPEM, keyPEM, err := p.sign(serving)
	if err != nil {
		return nil, err
	}
	if err := p.write("serving.crt", certPEM); err != nil {
		return nil, err
	}
	if err := p.write("serving.key", keyPEM); err != nil {
		return nil, err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	saDER, err := x509.MarshalECPrivateKey(saKey)
	if err != nil {
		return nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, err
	}
	if err := p.write("sa.key", pemBlock("EC PRIVATE KEY", saDER)); err != nil {
		return nil, err
	}
	return p, p.write("sa.pub", pemBlock("PUBLIC KEY", pubDER))
}

// loadPKI reads the CA that newPKI wrote in dir.
func loadPKI(dir string) (*pki, error) {
	p := &pki{dir: dir}
	var err error
	if p.cert, err = os.ReadFile(p.path("ca.crt")); err != nil {
		return nil, fmt.Errorf("no CA in %s: %w", dir, err)
	}
	keyPEM, err := os.ReadFile(p.path("ca.key"))
	if err != nil {
		return nil, err
	}
	certBlock, _ := pem.Decode(p.cert)
	keyBlock, _ := pem.Decode(keyPEM)
	if certBlock == nil || keyBlock == nil {
		return nil, fmt.Errorf("the CA in %s is not PEM", dir)
	}
	if p.ca, err = x509.ParseCertificate(certBlock.Bytes); err != nil {
		return nil, err
	}
	if p.key, err = x509.ParseECPrivateKey(keyBlock.Bytes); err != nil {
		return nil, err
	}
	return p, nil
}

// sign issues a certificate for template with a fresh key, valid for a year.
func (p *pki) sign(template *x509.Certificate) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	template.SerialNumber = serial()
	template.NotBefore = time.Now().Add(-time.Hour)
	template.NotAfter = time.Now().Add(365 * 24 * time.Hour)
	template.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, template, p.ca, &key.PublicKey, p.key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pemBlock("CERTIFICATE", der), pemBlock("EC PRIVATE KEY", keyDER), nil
}

// writeKubeconfig writes a kubeconfig that reaches server as user, in groups.
func (p *pki) writeKubeconfig(out, server, user string, groups []string) error {
	certPEM, keyPEM, err := p.sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: user, Organization: groups},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return err
	}
	b64 := base64.StdEncoding.EncodeToString
	config := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: testenv
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %q
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: testenv
  context: {cluster: testenv, user: %q}
current-context: testenv
`, server, b64(p.cert), user, b64(certPEM), b64(keyPEM), user)
	return os.WriteFile(out, []byte(config), 0o600)
}

func (p *pki) write(name string, data []byte) error {
	return os.WriteFile(p.path(name), data, 0o600)
}

func pemBlock(kind string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		panic(err) // the system's randomness failed: nothing can be signed
	}
	return n
}
