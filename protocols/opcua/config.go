package opcua

import "time"

// DeviceConfig is the `opcua:` section of a device in the agent's config.
type DeviceConfig struct {
	// Endpoint is opc.tcp://host:port/path.
	Endpoint string `yaml:"endpoint"`
	// SecurityPolicy is None, Basic256Sha256, Aes128_Sha256_RsaOaep or
	// Aes256_Sha256_RsaPss (default None).
	SecurityPolicy string `yaml:"security_policy"`
	// SecurityMode is None, Sign or SignAndEncrypt (default None).
	SecurityMode string `yaml:"security_mode"`
	// Auth is anonymous (default), username or certificate.
	Auth         string `yaml:"auth"`
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// Certificate and PrivateKey are the client's own (PEM); when empty the
	// agent creates one in data_dir on first start.
	Certificate string `yaml:"certificate"`
	PrivateKey  string `yaml:"private_key"`
	// TrustedServerCerts lists server certificate files (PEM or DER) trusted
	// in addition to data_dir/pki/trusted.
	TrustedServerCerts []string `yaml:"trusted_server_certs"`
	// Timeout bounds connect and each request (default 5s).
	Timeout time.Duration `yaml:"timeout"`
	// PublishingInterval of the subscription (default: the device interval).
	PublishingInterval time.Duration `yaml:"publishing_interval"`
}

// PointConfig is the OPC UA part of a point.
type PointConfig struct {
	// Node is a NodeId: ns=2;s=Loom7.Speed, ns=3;i=1001.
	Node string `yaml:"node"`
	// BrowsePath is an alternative to Node: /Objects/2:Loom7/2:Speed.
	BrowsePath string `yaml:"browse_path"`
	// Mode is subscribe (default) or poll.
	Mode string `yaml:"mode"`
	// SamplingInterval of the monitored item (default: the device interval).
	SamplingInterval time.Duration `yaml:"sampling_interval"`
	// QueueSize of the monitored item (default 10).
	QueueSize int `yaml:"queue_size"`
	// Trigger is the monitored item's data-change trigger: status,
	// status_value (default) or status_value_timestamp.
	Trigger string `yaml:"trigger"`
}
