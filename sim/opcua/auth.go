package opcua

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/gopcua/opcua/server"
	"github.com/gopcua/opcua/ua"
	"github.com/gopcua/opcua/uapolicy"
	"github.com/gopcua/opcua/uasc"
)

// serverNonceLength is the length of the nonce gopcua's server issues; the
// client appends it to an encrypted password.
const serverNonceLength = 32

// auth holds the service handlers this package puts in place of gopcua's:
// ActivateSession (gopcua accepts any identity) and Read (to enforce
// MaxNodesPerRead and require a live session, as a real server does).
type auth struct {
	srv  *server.Server
	key  *rsa.PrivateKey
	opts Options
	log  *slog.Logger
}

func header(handle uint32) *ua.ResponseHeader {
	return &ua.ResponseHeader{
		Timestamp:          time.Now(),
		RequestHandle:      handle,
		ServiceResult:      ua.StatusOK,
		ServiceDiagnostics: &ua.DiagnosticInfo{},
		StringTable:        []string{},
		AdditionalHeader:   ua.NewExtensionObject(nil),
	}
}

func (a *auth) activateSession(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
	req, ok := r.(*ua.ActivateSessionRequest)
	if !ok {
		return nil, ua.StatusBadRequestTypeInvalid
	}
	if a.srv.Session(req.RequestHeader) == nil {
		return nil, ua.StatusBadSessionIDInvalid
	}
	if code := a.checkIdentity(req); code != ua.StatusOK {
		a.log.Info("login refused", "remote", sc.RemoteAddr(), "status", code)
		return nil, code
	}
	nonce := make([]byte, serverNonceLength)
	if _, err := rand.Read(nonce); err != nil {
		return nil, ua.StatusBadInternalError
	}
	return &ua.ActivateSessionResponse{ResponseHeader: header(req.RequestHeader.RequestHandle), ServerNonce: nonce}, nil
}

func (a *auth) checkIdentity(req *ua.ActivateSessionRequest) ua.StatusCode {
	var tok any
	if req.UserIdentityToken != nil {
		tok = req.UserIdentityToken.Value
	}
	switch t := tok.(type) {
	case nil, *ua.AnonymousIdentityToken:
		if a.opts.NoAnonymous {
			return ua.StatusBadIdentityTokenRejected
		}
		return ua.StatusOK
	case *ua.UserNameIdentityToken:
		want, ok := a.opts.Users[t.UserName]
		if !ok {
			return ua.StatusBadUserAccessDenied
		}
		got, ok := a.password(t)
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
			return ua.StatusBadUserAccessDenied
		}
		return ua.StatusOK
	case *ua.X509IdentityToken:
		for _, c := range a.opts.UserCerts {
			if bytes.Equal(c, t.CertificateData) {
				return ua.StatusOK
			}
		}
		return ua.StatusBadIdentityTokenRejected
	}
	return ua.StatusBadIdentityTokenInvalid
}

// password decrypts a UserNameIdentityToken's password: RSA with the server's
// key, laid out as uint32 length, password, server nonce (Part 4, 7.36.4).
func (a *auth) password(t *ua.UserNameIdentityToken) (string, bool) {
	if t.EncryptionAlgorithm == "" {
		return string(t.Password), true
	}
	policy := ""
	_, suffix, _ := strings.Cut(t.PolicyID, "_")
	for _, p := range uapolicy.SupportedPolicies() {
		if strings.EqualFold(strings.TrimPrefix(p, "http://opcfoundation.org/UA/SecurityPolicy#"), suffix) {
			policy = p
		}
	}
	if policy == "" {
		return "", false
	}
	enc, err := uapolicy.Asymmetric(policy, a.key, nil)
	if err != nil {
		return "", false
	}
	plain, err := enc.Decrypt(t.Password)
	if err != nil || len(plain) < 4 {
		return "", false
	}
	n := int(binary.LittleEndian.Uint32(plain))
	if n < serverNonceLength || n > len(plain)-4 {
		return "", false
	}
	return string(plain[4 : 4+n-serverNonceLength]), true
}

func (a *auth) read(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
	req, ok := r.(*ua.ReadRequest)
	if !ok {
		return nil, ua.StatusBadRequestTypeInvalid
	}
	if a.srv.Session(req.RequestHeader) == nil {
		return nil, ua.StatusBadSessionIDInvalid
	}
	if limit := a.opts.MaxNodesPerRead; limit > 0 && len(req.NodesToRead) > int(limit) {
		return nil, ua.StatusBadTooManyOperations
	}
	results := make([]*ua.DataValue, len(req.NodesToRead))
	for i, n := range req.NodesToRead {
		if n == nil || n.NodeID == nil {
			results[i] = badValue(ua.StatusBadNodeIDInvalid)
			continue
		}
		ns, err := a.srv.Namespace(int(n.NodeID.Namespace()))
		if err != nil {
			results[i] = badValue(ua.StatusBadNodeIDUnknown)
			continue
		}
		results[i] = ns.Attribute(n.NodeID, n.AttributeID)
	}
	return &ua.ReadResponse{ResponseHeader: header(req.RequestHeader.RequestHandle), Results: results, DiagnosticInfos: []*ua.DiagnosticInfo{}}, nil
}

func badValue(code ua.StatusCode) *ua.DataValue {
	return &ua.DataValue{EncodingMask: ua.DataValueStatusCode | ua.DataValueServerTimestamp, Status: code, ServerTimestamp: time.Now()}
}

// selfSigned makes the server's application instance certificate: RSA 2048,
// the application URI urn:weft:sim in its SubjectAltName, host as IP or DNS.
func selfSigned(host string) ([]byte, *rsa.PrivateKey, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, nil, err
	}
	uri, _ := url.Parse("urn:weft:sim")
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Weft OPC UA simulator", Organization: []string{"Weft"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment | x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{uri},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	return der, key, nil
}
