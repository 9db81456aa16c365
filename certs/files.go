package certs

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// LeafFiles returns the paths under dir where WriteFiles puts the certificate
// and key of kind and name: <dir>/<kind>-<name>.pem and
// <dir>/<kind>-<name>-key.pem (for example service-billing.pem).
func LeafFiles(dir string, kind Kind, name string) (certPath, keyPath string) {
	base := string(kind) + "-" + name
	return filepath.Join(dir, base+".pem"), filepath.Join(dir, base+"-key.pem")
}

// WriteFiles writes the leaf to dir at the paths of LeafFiles, the key with
// mode 0600. Each file is replaced atomically (written aside, then renamed),
// so a process reloading them never reads a half-written file; the key is
// written first, so a reader may briefly see a new key with the old
// certificate, which mtls refuses and retries.
func (l *Leaf) WriteFiles(dir string) (certPath, keyPath string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("certs: %w", err)
	}
	certPath, keyPath = LeafFiles(dir, l.Identity.Kind, l.Identity.Name)
	if err := writeAtomic(keyPath, l.KeyPEM, 0o600); err != nil {
		return "", "", err
	}
	if err := writeAtomic(certPath, l.CertPEM, 0o644); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

// IssueFiles loads the CA from caDir, issues req and writes the leaf into
// outDir (see LeafFiles). It is what `tenantry certs issue` runs.
func IssueFiles(caDir, outDir string, req Request) (*Leaf, error) {
	ca, err := LoadCA(caDir)
	if err != nil {
		return nil, err
	}
	leaf, err := Issue(ca, req)
	if err != nil {
		return nil, err
	}
	if _, _, err := leaf.WriteFiles(outDir); err != nil {
		return nil, err
	}
	return leaf, nil
}

func marshalKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("certs: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func parseCertPEM(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

func parseKeyPEM(b []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM key")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unsupported PEM block %q", block.Type)
	}
	if err != nil {
		return nil, err
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want ECDSA", key)
	}
	return ec, nil
}

// writeNew creates path with data, failing with ErrExists if it exists.
func writeNew(path string, data []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("certs: %s: %w", path, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("certs: sync %s: %w", path, err)
	}
	return f.Close()
}

// writeAtomic replaces path with data through a temporary file and a rename.
func writeAtomic(path string, data []byte, perm fs.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("certs: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("certs: sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	return nil
}
