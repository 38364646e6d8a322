// Cross-check helper for tahu_test.go: Eclipse Tahu's JavaScript payload
// library (npm sparkplug-payload) decodes what Weft encodes, and encodes
// payloads for Weft to decode. Input on stdin, one JSON object:
//   {"decode": ["<hex>", ...], "encode": [<Tahu payload object>, ...]}
// Output: {"decoded": [<payload as JSON>], "encoded": ["<hex>"]}, with
// 64-bit integers as decimal strings.
const Long = require("long");
const sp = require("sparkplug-payload").get("spBv1.0");

const plain = (k, v) => (Long.isLong(v) ? v.toString() : typeof v === "bigint" ? v.toString() : v);

let input = "";
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", () => {
  const req = JSON.parse(input);
  const out = { decoded: [], encoded: [] };
  for (const hex of req.decode || []) {
    out.decoded.push(JSON.parse(JSON.stringify(sp.decodePayload(Buffer.from(hex, "hex")), plain)));
  }
  for (const p of req.encode || []) {
    out.encoded.push(Buffer.from(sp.encodePayload(p)).toString("hex"));
  }
  process.stdout.write(JSON.stringify(out));
});
