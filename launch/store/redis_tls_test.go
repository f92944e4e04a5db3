package store

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hooklaunch/caddy-valohai/launch"
	"github.com/hooklaunch/caddy-valohai/launch/store/redistest"
)

// testCA makes a CA and a certificate it signed for 127.0.0.1, written as
// PEM files in dir; it returns the pool that trusts the CA.
func testCA(t *testing.T, dir string) (certFile, keyFile, caFile string, roots *x509.CertPool) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "redis"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	roots = x509.NewCertPool()
	roots.AddCert(ca)
	return write("redis.crt", "CERTIFICATE", der), write("redis.key", "EC PRIVATE KEY", keyDER), write("ca.crt", "CERTIFICATE", caDER), roots
}

// `tls` speaks TLS to every node of a cluster, verifying the nodes'
// certificates: a one-node cluster serving TLS only to clients works with
// the right roots and is unreachable (ErrUnreachable) with the system's.
func TestRedisClusterTLS(t *testing.T) {
	certFile, keyFile, caFile, roots := testCA(t, t.TempDir())
	tlsPort := redistest.FreePorts(t, 1)[0]
	node := redistest.StartServer(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-announce-ip", "127.0.0.1",
		"--tls-port", strconv.Itoa(tlsPort), "--tls-cluster", "yes",
		"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-ca-cert-file", caFile, "--tls-auth-clients", "no")
	ctx := context.Background()
	plain := node.Client()
	defer plain.Close()
	if err := plain.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatalf("CLUSTER ADDSLOTSRANGE: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, _ := plain.ClusterInfo(ctx).Result()
		if strings.Contains(info, "cluster_state:ok") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("one-node cluster not ok: %s", info)
		}
		time.Sleep(100 * time.Millisecond)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort))

	s, err := Open(ctx, Config{Type: "redis", Cluster: []string{addr}, TLS: true, TLSConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}})
	if err != nil {
		t.Fatalf("Open over TLS: %v", err)
	}
	defer s.Close()
	if err := s.CreateRun(ctx, &launch.Run{ID: "tls", CreatedAt: time.Now(), Status: launch.StatusPending}, nil); err != nil {
		t.Fatal(err)
	}
	// The run is there, read back over plain TCP from the node itself.
	if n, err := plain.Exists(ctx, "{valohai:}run:tls").Result(); err != nil || n != 1 {
		t.Fatalf("run key over the plain port: %d, %v", n, err)
	}

	// The system's roots do not trust the test CA: verification is on.
	_, err = Open(ctx, Config{Type: "redis", Cluster: []string{addr}, TLS: true})
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Open with untrusted certificate: %v, want ErrUnreachable naming the certificate", err)
	}
	// Without tls the TLS port does not answer.
	_, err = Open(ctx, Config{Type: "redis", Cluster: []string{addr}})
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Open without tls: %v", err)
	}
}
