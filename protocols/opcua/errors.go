package opcua

import "errors"

// Sentinel errors of the OPC UA driver. Every error a Driver returns names the
// device and endpoint; test for these with errors.Is.
var (
	// ErrUntrustedServer: the server's certificate is not in the trust list.
	// The error text names the file (under data_dir/pki/rejected) to move
	// into data_dir/pki/trusted.
	ErrUntrustedServer = errors.New("server certificate not trusted")
	// ErrClientUntrusted: the server refused the secure channel, most often
	// because it does not trust the agent's certificate. The error text
	// names the certificate file to add to the server's trust list.
	ErrClientUntrusted = errors.New("the server does not trust the agent's certificate")
	// ErrLogin: the server refused the username, password or user
	// certificate.
	ErrLogin = errors.New("login refused")
	// ErrNoEndpoint: the server offers no endpoint with the configured
	// security policy, mode or login type.
	ErrNoEndpoint = errors.New("no matching endpoint")
)
