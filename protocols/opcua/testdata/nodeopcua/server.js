// A small node-opcua server for the Go tests of protocols/opcua: an
// independent OPC UA implementation that opens Sign and SignAndEncrypt
// channels (gopcua v0.8.0's server cannot). The Go test starts it with one
// JSON argument and reads one line, "READY {json}", from its stdout:
//
//   node server.js '{"port":4840,"pki":"/tmp/x/pki","users":{"operator":"s3cret"},
//                    "anonymous":false,"acceptClients":true,"updateMs":100}'
//
// The server's PKI is pki/server (own/, trusted/certs, rejected/), user
// certificates are trusted under pki/user. acceptClients trusts every client
// (and user) certificate; without it an unknown one lands in rejected/ and
// is refused until it is moved into trusted/certs. A certificate the caller
// put in pki/server/own saves the server generating one (several seconds).
//
// It listens on 127.0.0.1 only, offers None and every policy the driver
// supports in Sign and SignAndEncrypt, and exits when its stdin closes, so a
// test that dies leaves nothing behind.
"use strict";

const path = require("path");
const { OPCUAServer } = require("node-opcua-server");
const { OPCUACertificateManager } = require("node-opcua-certificate-manager");
const { MessageSecurityMode, SecurityPolicy } = require("node-opcua-secure-channel");
const { DataType, Variant } = require("node-opcua-variant");
const { StatusCodes } = require("node-opcua-status-code");

async function main() {
	const opts = JSON.parse(process.argv[2] || "{}");
	const users = opts.users || {};
	const serverCertificateManager = new OPCUACertificateManager({
		rootFolder: path.join(opts.pki, "server"),
		automaticallyAcceptUnknownCertificate: !!opts.acceptClients,
	});
	await serverCertificateManager.initialize();
	// User certificates (auth: certificate) are checked against their own
	// trust list, kept beside the server's so nothing lands in $HOME.
	const userCertificateManager = new OPCUACertificateManager({
		rootFolder: path.join(opts.pki, "user"),
		automaticallyAcceptUnknownCertificate: !!opts.acceptClients,
	});
	await userCertificateManager.initialize();

	const server = new OPCUAServer({
		host: "127.0.0.1",
		port: opts.port,
		serverCertificateManager,
		userCertificateManager,
		securityPolicies: [
			SecurityPolicy.None,
			SecurityPolicy.Basic256Sha256,
			SecurityPolicy.Aes128_Sha256_RsaOaep,
			SecurityPolicy.Aes256_Sha256_RsaPss,
		],
		securityModes: [MessageSecurityMode.None, MessageSecurityMode.Sign, MessageSecurityMode.SignAndEncrypt],
		allowAnonymous: opts.anonymous !== false,
		userManager: { isValidUser: (name, password) => Object.hasOwn(users, name) && users[name] === password },
		serverInfo: { applicationUri: "urn:weft:nodeopcua-test", productUri: "weft-nodeopcua-test",
			applicationName: { text: "Weft node-opcua test server" } },
		buildInfo: { productName: "Weft node-opcua test server", manufacturerName: "Weft" },
		isAuditing: false,
	});
	await server.initialize();

	const addressSpace = server.engine.addressSpace;
	const ns = addressSpace.getOwnNamespace();
	const loom = ns.addObject({ organizedBy: addressSpace.rootFolder.objects, browseName: "Loom1", nodeId: "s=Loom1" });
	let counter = 0;
	const start = Date.now();
	const speed = () => Math.round((600 + 5 * Math.sin((Date.now() - start) / 7000)) * 10) / 10;
	ns.addVariable({ componentOf: loom, browseName: "Speed", nodeId: "s=Loom1.Speed", dataType: "Double",
		value: { get: () => new Variant({ dataType: DataType.Double, value: speed() }) } });
	const counterVar = ns.addVariable({ componentOf: loom, browseName: "Counter", nodeId: "s=Loom1.Counter", dataType: "UInt32",
		value: new Variant({ dataType: DataType.UInt32, value: 0 }) });
	ns.addVariable({ componentOf: loom, browseName: "Style", nodeId: "s=Loom1.Style", dataType: "String",
		value: new Variant({ dataType: DataType.String, value: "Denim 3/1 twill 12oz" }) });
	const timer = setInterval(() => {
		counter++;
		counterVar.setValueFromSource(new Variant({ dataType: DataType.UInt32, value: counter }), StatusCodes.Good);
	}, opts.updateMs || 100);

	await server.start();
	process.stdout.write("READY " + JSON.stringify({
		endpoint: server.getEndpointUrl(),
		certificate: server.certificateFile,
		pki: serverCertificateManager.rootDir,
		namespace: ns.index,
	}) + "\n");

	let stopping = false;
	const stop = async () => {
		if (stopping) return;
		stopping = true;
		clearInterval(timer);
		await server.shutdown(0);
		process.exit(0);
	};
	process.stdin.on("end", stop);
	process.stdin.on("close", stop);
	process.stdin.resume();
	process.on("SIGTERM", stop);
	process.on("SIGINT", stop);
}

main().catch((err) => {
	process.stderr.write("node-opcua test server: " + (err && err.stack || err) + "\n");
	process.exit(1);
});
