package opcua

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// The agent's PKI lives under data_dir/pki, laid out like other OPC UA
// applications':
//
//	own/cert.der, own/key.pem   the agent's application instance certificate
//	trusted/                    server certificates the agent trusts (DER or PEM)
//	rejected/                   server certificates it refused; move one into
//	                            trusted/ to trust that server
const (
	pkiOwn      = "pki/own"
	pkiTrusted  = "pki/trusted"
	pkiRejected = "pki/rejected"
)

// loadOwn returns the client's certificate (DER) and key: the configured
// files, or data_dir/pki/own, created on first use.
func loadOwn(cfg DeviceConfig, dataDir string) ([]byte, *rsa.PrivateKey, error) {
	if cfg.Certificate != "" || cfg.PrivateKey != "" {
		if cfg.Certificate == "" || cfg.PrivateKey == "" {
			return nil, nil, errors.New("certificate and private_key must be given together")
		}
		return loadPair(cfg.Certificate, cfg.PrivateKey)
	}
	if dataDir == "" {
		return nil, nil, errors.New("no data_dir to keep the agent's OPC UA certificate in")
	}
	dir := filepath.Join(dataDir, pkiOwn)
	cert, key, err := loadPair(filepath.Join(dir, "cert.der"), filepath.Join(dir, "key.pem"))
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return cert, key, err
	}
	if err := createOwn(dir); err != nil {
		return nil, nil, fmt.Errorf("create the agent's certificate in %s: %w", dir, err)
	}
	return loadPair(filepath.Join(dir, "cert.der"), filepath.Join(dir, "key.pem"))
}

// createOwn writes a new certificate and key into a temporary directory and
// renames it into place, so that two devices starting at once end with one
// matching pair.
func createOwn(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".own-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	der, key, err := newCertificate()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "cert.der"), der, 0o644); err != nil {
		return err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(filepath.Join(tmp, "key.pem"), keyPEM, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(filepath.Join(dir, "cert.der")); statErr == nil {
			return nil // another device made it first
		}
		return err
	}
	return nil
}

// ApplicationURI is the URI in the agent's certificate; servers that check
// it see urn:weft:agent:<hostname>.
func ApplicationURI() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	return "urn:weft:agent:" + host
}

func newCertificate() ([]byte, *rsa.PrivateKey, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, nil, err
	}
	uri, err := url.Parse(ApplicationURI())
	if err != nil {
		return nil, nil, err
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "weft-agent@" + host, Organization: []string{"Weft"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(20, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment | x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{uri},
	}
	if host != "" {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	return der, key, err
}

func loadPair(certFile, keyFile string) ([]byte, *rsa.PrivateKey, error) {
	certs, err := readCerts(certFile)
	if err != nil {
		return nil, nil, err
	}
	if len(certs) == 0 {
		return nil, nil, fmt.Errorf("%s holds no certificate", certFile)
	}
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, err
	}
	blk, _ := pem.Decode(b)
	der := b
	if blk != nil {
		der = blk.Bytes
	}
	var key *rsa.PrivateKey
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		key = k
	} else if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, nil, fmt.Errorf("%s: OPC UA needs an RSA key, this is a %T", keyFile, k)
		}
		key = rk
	} else {
		return nil, nil, fmt.Errorf("%s: not an RSA private key in PEM or DER", keyFile)
	}
	return certs[0], key, nil
}

// readCerts reads a DER certificate, or every CERTIFICATE block of a PEM file.
func readCerts(file string) ([][]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if !bytes.Contains(b, []byte("-----BEGIN")) {
		if _, err := x509.ParseCertificate(b); err != nil {
			return nil, fmt.Errorf("%s: not a certificate in DER or PEM: %v", file, err)
		}
		return [][]byte{b}, nil
	}
	var out [][]byte
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type == "CERTIFICATE" {
			out = append(out, blk.Bytes)
		}
	}
	return out, nil
}

// trusted reports whether cert (DER) is in data_dir/pki/trusted or one of
// the extra files.
func trusted(cert []byte, dataDir string, extra []string) (bool, error) {
	var files []string
	if dataDir != "" {
		entries, err := os.ReadDir(filepath.Join(dataDir, pkiTrusted))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return false, err
		}
		for _, e := range entries {
			if !e.IsDir() {
				files = append(files, filepath.Join(dataDir, pkiTrusted, e.Name()))
			}
		}
	}
	files = append(files, extra...)
	for _, f := range files {
		certs, err := readCerts(f)
		if err != nil {
			return false, fmt.Errorf("trust list: %w", err)
		}
		for _, c := range certs {
			if bytes.Equal(c, cert) {
				return true, nil
			}
		}
	}
	return false, nil
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// reject saves an untrusted server certificate into data_dir/pki/rejected and
// returns the file's path and a description of the certificate.
func reject(cert []byte, dataDir string) (file, who string, err error) {
	sum := sha1.Sum(cert)
	thumb := hex.EncodeToString(sum[:])
	name := "server"
	who = "SHA-1 " + thumb
	if c, err := x509.ParseCertificate(cert); err == nil {
		if c.Subject.CommonName != "" {
			name = strings.Trim(unsafeName.ReplaceAllString(c.Subject.CommonName, "_"), "_")
		}
		who = fmt.Sprintf("%q (%s)", c.Subject.String(), who)
	}
	if dataDir == "" {
		return "", who, errors.New("no data_dir to save it in")
	}
	dir := filepath.Join(dataDir, pkiRejected)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", who, err
	}
	file = filepath.Join(dir, name+"_"+thumb[:16]+".der")
	return file, who, os.WriteFile(file, cert, 0o644)
}
