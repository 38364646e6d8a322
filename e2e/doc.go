// Package e2e is the end-to-end proof of issue 10: it runs the real
// processes — weft-sim, weft-agent, Mosquitto, weft-gateway and influxd —
// on loopback, drives load with the simulator's counter profile, injects
// faults, and counts every sample from the simulated PLC to InfluxDB.
//
// # How samples are counted
//
// Expected is known independently of what arrived: the agent reaches
// weft-sim through a Proxy with a Modbus TCP tap (Served), which records
// every answer to a read starting at address 0, and with it the device's
// counter (registers 0..3, a uint64 that ticks every 10 ms, far faster
// than any poll interval, so every poll reads a value of its own). One
// recorded answer is one poll, and one poll is Points samples: the counter
// and Points-1 constant registers read in the same request.
//
// Stored comes from InfluxDB: every counter sample per device (time and
// value), and a count per device of the other points.
//
//   - lost: a counter value served n times and stored fewer times, plus
//     other-point samples short of polls × (Points-1);
//   - duplicated: a counter value stored more often than it was served. A
//     redelivered batch cannot show up here — it carries the same source
//     timestamps and InfluxDB overwrites the same point — so a duplicate
//     means a reading stored under a second timestamp, which is a bug;
//     redeliveries themselves are counted by the gateway's sequence
//     figures (seq.duplicates), which the scenarios print;
//   - out of order: a stored counter smaller than the one stored before it
//     in time order (source times out of step with reading order);
//   - never served: a stored counter value the tap never saw;
//   - overwritten: a lost reading whose previous or next poll of the same
//     device is stored at the millisecond the lost one was served in: two
//     polls stamped alike, one point in InfluxDB (issue 10's lost poll,
//     which scenario 9, TestPollAtSlotEdge, provokes).
//
// Answers the agent could not have taken are not expected (and not lost
// if they are missing): those served 0.9 s or more after their request
// (the agent's timeout is 1 s), and those the agent never read — its side
// of the connection was reset while they were the last answers forwarded
// after its last request, which the kernel does when a socket is closed
// with data unread or gets data after it was closed (the agent had timed
// out and dropped the connection). A clean close (FIN) means it read them.
//
// At the end of a scenario Quiesce blackholes the Modbus link (so every
// answer the tap recorded did reach the agent) and waits until InfluxDB
// has caught up, then Count compares.
//
// # Faults
//
// Proxy sits between agent and Mosquitto and between gateway and influxd:
// Pass, Cut (TCP RST on every connection, open or new), Slow (delay per
// chunk), Blackhole (accept and read, never forward, never close).
// testservers' Stop/Start/Kill stop the broker and influxd; Process.Kill
// sends SIGKILL to the agent or the gateway.
//
// # Knobs
//
// The short forms run in plain go test (skipped under -short); WEFT_SOAK=1
// (make soak) runs the long forms. WEFT_E2E_RATE (samples/s),
// WEFT_E2E_POINTS (per device), WEFT_E2E_INTERVAL, WEFT_E2E_DURATION,
// WEFT_E2E_OUTAGE, WEFT_E2E_INFLUX_OUTAGE, WEFT_E2E_BLACKHOLE,
// WEFT_E2E_KILLS and WEFT_E2E_MEMORY override the sizes; WEFT_E2E_CHARTS
// is where the PNG charts go (make soak: docs/img). WEFT_E2E_TELEGRAF=1
// runs the Telegraf comparison in plain go test, WEFT_TELEGRAF names the
// Telegraf binary, and WEFT_E2E_TOPOLOGY=per-device gives every simulated
// device its own TCP address in it (default shared: one address, unit ids
// behind it); WEFT_E2E_WORKLOAD picks its point map and rate (sparse, the
// default: 20 devices × 50 points every 500 ms; dense-10k and dense-50k:
// 10 or 50 devices × 1,000 registers every second). docs/benchmarks.md ("End to end") lists them with the
// figures they produced.
package e2e
