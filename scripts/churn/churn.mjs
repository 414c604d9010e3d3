// Churn: many short lives of a socket against one Courier process, with the real
// socket.io-client: connect → join_chat → send_message (acked) → disconnect, WebSocket and
// long-polling mixed, `--concurrency` at a time. Prints one JSON line per sample of the
// server (RSS, open files, the gauges of /metrics) and a summary line. See ./run.
//
// node churn.mjs --url http://127.0.0.1:4000 --secret S --pid PID --metrics http://127.0.0.1:9464/metrics
//   [--cycles 200000] [--concurrency 64] [--conversations 100] [--polling-every 2]
//   [--sample-every 10000] [--settle-secs 150]
import { createHmac } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { io } from "socket.io-client";

const opts = {
  url: "http://127.0.0.1:4000",
  secret: "benchsecret",
  pid: 0,
  metrics: "",
  cycles: 200000,
  concurrency: 64,
  conversations: 100,
  pollingEvery: 2,
  sampleEvery: 10000,
  settleSecs: 150,
};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const key = argv[i].replace(/^--/, "").replace(/-([a-z])/g, (_, c) => c.toUpperCase());
  if (!(key in opts)) throw new Error(`unknown option ${argv[i]}`);
  opts[key] = typeof opts[key] === "number" ? Number(argv[i + 1]) : argv[i + 1];
}

const b64 = (v) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");
function token(userId) {
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ userId, iat: now, exp: now + 60 })}`;
  return `${body}.${createHmac("sha256", opts.secret).update(body).digest("base64url")}`;
}

async function gauges() {
  if (!opts.metrics) return {};
  const text = await (await fetch(opts.metrics)).text();
  const out = {};
  for (const line of text.split("\n")) {
    const m = line.match(/^(courier_(?:sockets|users_online|rooms_alive|recovery_records|sessions_pending|allocator_[a-z_]+|slow_clients_total))(\{[^}]*\})? ([0-9.e+-]+)$/);
    if (m) out[m[1] + (m[2] ?? "")] = Number(m[3]);
  }
  return out;
}

async function sample(label, cycles) {
  const status = readFileSync(`/proc/${opts.pid}/status`, "utf8");
  const rss = Number(status.match(/VmRSS:\s+(\d+)/)[1]);
  const fds = readdirSync(`/proc/${opts.pid}/fd`).length;
  const line = { sample: label, cycles, rss_kib: rss, fds, ...(await gauges()) };
  console.log(JSON.stringify(line));
  return line;
}

let started = 0;
let done = 0;
let failed = 0;
const failures = new Map();
let nextSample = opts.sampleEvery;
const samples = [];

async function cycle(i) {
  const k = i % opts.conversations;
  const user = `u${2 * k + (Math.floor(i / opts.conversations) % 2)}`;
  const polling = opts.pollingEvery > 0 && i % opts.pollingEvery === 0;
  const socket = io(opts.url, {
    transports: polling ? ["polling"] : ["websocket"],
    auth: { token: token(user) },
    reconnection: false,
    forceNew: true,
    timeout: 20000,
  });
  try {
    await new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", reject);
    });
    const joined = await socket.timeout(20000).emitWithAck("join_chat", `c${k}`);
    if (!joined || joined.ok !== true) throw new Error(`join_chat: ${JSON.stringify(joined)}`);
    const sent = await socket
      .timeout(20000)
      .emitWithAck("send_message", { connectionId: `c${k}`, content: `churn ${i}`, tempId: `t${i}` });
    if (!sent || !sent.savedMessage) throw new Error(`send_message: ${JSON.stringify(sent)}`);
  } catch (e) {
    failed += 1;
    const why = String(e.message ?? e).slice(0, 80);
    failures.set(why, (failures.get(why) ?? 0) + 1);
  } finally {
    socket.disconnect();
  }
}

async function worker() {
  while (started < opts.cycles) {
    const i = started++;
    await cycle(i);
    done += 1;
    if (done >= nextSample) {
      nextSample += opts.sampleEvery;
      samples.push(await sample("progress", done));
    }
  }
}

const t0 = Date.now();
const base = await sample("baseline", 0);
await Promise.all(Array.from({ length: opts.concurrency }, worker));
const secs = (Date.now() - t0) / 1000;
const end = await sample("end", done);
// Wait for the recovery records to expire (recovery.max_disconnection after the last cycle).
const deadline = Date.now() + opts.settleSecs * 1000;
let settled = end;
while (Date.now() < deadline) {
  await new Promise((r) => setTimeout(r, 5000));
  settled = await gauges();
  const left = ["courier_recovery_records", "courier_rooms_alive", "courier_users_online", "courier_sessions_pending", "courier_sockets{transport=\"polling\"}", "courier_sockets{transport=\"websocket\"}"];
  if (left.every((k) => (settled[k] ?? 0) === 0)) break;
}
await new Promise((r) => setTimeout(r, 10000));
const after = await sample("settled", done);
const first = samples[0] ?? end;
console.log(
  JSON.stringify({
    summary: true,
    cycles: done,
    failed,
    failures: Object.fromEntries(failures),
    cycles_per_sec: Math.round(done / secs),
    rss_after_first_kib: first.rss_kib,
    rss_end_kib: end.rss_kib,
    rss_settled_kib: after.rss_kib,
    rss_settled_vs_first: +(after.rss_kib / first.rss_kib).toFixed(3),
    fds_baseline: base.fds,
    fds_settled: after.fds,
    allocated_after_first: first.courier_allocator_allocated_bytes,
    allocated_settled: after.courier_allocator_allocated_bytes,
  }),
);
process.exit(failed === 0 ? 0 : 1);
