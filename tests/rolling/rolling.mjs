// scripts/rolling-restart's driver (read that script first: it builds Courier, starts the
// private redis-server and nginx, makes the database and writes the JSON file this reads).
//
// Starts the two Courier nodes (COURIER_ENV=production, `--config deploy/node-X.toml`, the
// secret, database and Redis in the environment as deploy/courier.env sets them), makes the
// users and conversations, connects real socket.io-client sockets through nginx (half
// starting on long-polling, half WebSocket only; each from its own loopback address so that
// ip_hash spreads them over both nodes), sends acknowledged messages at a steady rate,
// restarts each node in turn (SIGTERM, or SIGKILL), then checks the database and what every
// socket got, and prints one summary. Exit code 0 only when nothing was lost, duplicated or
// unrecovered.
import { spawn, execFileSync } from "node:child_process";
import { once } from "node:events";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { io } from "socket.io-client";

const cfg = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const SHAPES = {
  // sockets, conversations, messages per second (all sockets), seconds of load before the
  // first restart and after each, the longest the whole run may take
  full: { sockets: 40, conversations: 20, rate: 200, settle: 10, limit: 300 },
  short: { sockets: 12, conversations: 6, rate: 60, settle: 5, limit: 120 },
};
const shape = SHAPES[cfg.mode];

const started = Date.now();
const elapsed = () => ((Date.now() - started) / 1000).toFixed(1).padStart(6);
const say = (line) => process.stderr.write(`[${elapsed()}s] ${line}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolves once `cond()` (sync or async) is true; rejects naming `what` after `ms`. */
async function until(what, cond, ms) {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
    await sleep(100);
  }
}

// ---------------------------------------------------------------------------------------
// The Courier nodes

const SECRET = crypto.randomBytes(48).toString("base64");

class CourierNode {
  constructor(spec) {
    Object.assign(this, spec);
    this.proc = null;
    this.workdir = path.join(cfg.tmp, this.name);
    fs.mkdirSync(this.workdir, { recursive: true });
    this.logFile = path.join(cfg.tmp, `${this.name}.log`);
  }

  /** Starts the node (again), retrying while its ports are still being released. */
  async start() {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.startOnce();
      } catch (e) {
        if (attempt >= 40 || !/cannot listen|in use/i.test(e.message)) throw e;
        await sleep(250);
      }
    }
  }

  startOnce() {
    // As courier@.service runs it: an empty working directory, --config the node's file,
    // the shared settings in the environment (deploy/courier.env). The ports this script
    // picked override the file's (the environment wins), nothing else does.
    const env = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      RUST_LOG: "info",
      COURIER_ENV: "production",
      SOCKET_SECRET: SECRET,
      DATABASE_URL: cfg.databaseUrl,
      REDIS_URL: cfg.redisUrl,
      NEXTJS_URL: "http://localhost:3000",
      PORT: String(this.port),
      COURIER__METRICS__BIND: `127.0.0.1:${this.metricsPort}`,
    };
    const log = fs.openSync(this.logFile, "a");
    fs.writeSync(log, `---- ${new Date().toISOString()} start\n`);
    const proc = spawn(cfg.courier, ["--config", this.config], {
      cwd: this.workdir,
      env,
      stdio: ["ignore", log, "pipe"],
    });
    this.proc = proc;
    let text = "";
    proc.stderr.on("data", (chunk) => {
      fs.writeSync(log, chunk);
      if (text !== null) text += chunk;
    });
    proc.once("close", () => fs.closeSync(log));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        proc.kill("SIGKILL");
        reject(new Error(`${this.name} did not listen within 30 s:\n${text}`));
      }, 30000);
      const ready = () => {
        if (/listening on http:\/\//.test(text)) {
          clearTimeout(timer);
          text = null;
          proc.stderr.off("data", ready);
          resolve();
        }
      };
      proc.stderr.on("data", ready);
      proc.once("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
      proc.once("exit", (code, signal) => {
        if (text === null) return;
        clearTimeout(timer);
        reject(new Error(`${this.name} exited with ${code ?? signal} at start:\n${text}`));
      });
    });
  }

  /** Sends `signal`; resolves with the milliseconds until the process exited. */
  async stop(signal) {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return 0;
    const t0 = Date.now();
    const exited = once(proc, "exit");
    proc.kill(signal);
    await exited;
    return Date.now() - t0;
  }

  /** Sockets connected to this node (its courier_sockets gauge), or null if it does not answer. */
  sockets() {
    return new Promise((resolve) => {
      const req = http.get(
        { host: "127.0.0.1", port: this.metricsPort, path: "/metrics", timeout: 2000 },
        (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (d) => (body += d));
          res.on("end", () => {
            let n = 0;
            for (const m of body.matchAll(/^courier_sockets(?:\{[^}]*\})? (\S+)$/gm)) n += Number(m[1]);
            resolve(res.statusCode === 200 ? n : null);
          });
        },
      );
      req.on("timeout", () => req.destroy());
      req.on("error", () => resolve(null));
    });
  }
}

const nodes = cfg.nodes.map((spec) => new CourierNode(spec));
const killAll = () => {
  for (const node of nodes) {
    try {
      node.proc?.kill("SIGKILL");
    } catch {
      // gone
    }
  }
};
process.on("exit", killAll);
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    say(`${sig}: stopping`);
    process.exit(1);
  });
}
setTimeout(() => {
  say(`the run took longer than ${shape.limit} s: stopping`);
  process.exit(1);
}, shape.limit * 1000).unref();

const totalSockets = async () => {
  const counts = await Promise.all(nodes.map((n) => n.sockets()));
  return counts.includes(null) ? null : counts.reduce((a, b) => a + b, 0);
};

// ---------------------------------------------------------------------------------------
// The database: users and conversations, and what was saved

function psql(sql) {
  return execFileSync("psql", [cfg.databaseUrl, "-qAt", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", sql], {
    encoding: "utf8",
    maxBuffer: 256 * 1024 * 1024,
  });
}

function makeFixtures() {
  // As tests/common/world.rs does: users, and an ACTIVE connection between the two members
  // of each conversation.
  const users = [];
  const rows = [];
  for (let i = 0; i < shape.sockets; i++) {
    const id = `rolling-user-${String(i).padStart(3, "0")}`;
    users.push(id);
    rows.push(`('${id}', '${id}@rolling.test', 'Rolling ${i}', 'rolling${i}', now())`);
  }
  const conversations = [];
  const connRows = [];
  for (let k = 0; k < shape.conversations; k++) {
    const id = `rolling-conversation-${String(k).padStart(3, "0")}`;
    conversations.push(id);
    connRows.push(`('${id}', '${users[2 * k]}', '${users[2 * k + 1]}', 'ACTIVE', now())`);
  }
  psql(
    `INSERT INTO users (id, email, "fullName", name, "updatedAt") VALUES ${rows.join(", ")};` +
      `INSERT INTO connections (id, "user1Id", "user2Id", status, "updatedAt") VALUES ${connRows.join(", ")};`,
  );
  return { users, conversations };
}

/** An HS256 JWT `{userId, exp}`, as the app signs its socket tokens. */
function sign(userId) {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const unsigned = `${part({ alg: "HS256", typ: "JWT" })}.${part({ userId, iat: now, exp: now + 3600 })}`;
  const mac = crypto.createHmac("sha256", SECRET).update(unsigned).digest("base64url");
  return `${unsigned}.${mac}`;
}

// ---------------------------------------------------------------------------------------
// The clients

const stats = {
  sent: 0,
  acked: 0,
  failed: [], // [tempId, why]
  reconnects: 0,
  recovered: 0,
  unrecovered: [], // socket names
  disconnects: {}, // reason -> count
  connectErrors: 0,
  inFlight: 0, // sends unacknowledged when their socket dropped, sent again
  connectErrorKinds: {}, // message -> count
  errors: [], // `error` events
  ackTimes: [], // every ack's time (ms since the load started)
};
const sends = new Map(); // tempId -> {client, id (when acked)}
const deliveries = new Map(); // message id -> times received by the other member
const foreign = []; // receive_message for someone else, or of an unknown message
let outOfOrder = 0;
let loadStart = 0;
let loadOn = false;
let closing = false; // the sockets are being closed at the end

class Client {
  constructor(index, user, peerIndex, conversation) {
    this.index = index;
    this.name = `s${String(index).padStart(2, "0")}`;
    this.user = user;
    this.peerIndex = peerIndex;
    this.conversation = conversation;
    this.pollingFirst = index % 2 === 0;
    this.seq = 0;
    this.connects = 0;
    this.lastAck = 0;
    this.longestGap = { ms: 0, at: 0 };
    this.lastSeen = -1; // the peer's last sequence number received, for order
    this.trail = []; // its stream events and reconnects, for a failure's diagnosis
    // ip_hash keys on the first three octets: 127.0.N.1 for the N-th socket.
    const localAddress = `127.0.${index + 1}.1`;
    this.socket = io(cfg.url, {
      forceNew: true,
      transports: this.pollingFirst ? ["polling", "websocket"] : ["websocket"],
      auth: { token: sign(user) },
      // WebSocket (ws) takes localAddress; long-polling's requests go through this agent.
      localAddress,
      agent: new http.Agent({ keepAlive: true, localAddress }),
      // Sends are queued and retried (same tempId) until acknowledged, across reconnects:
      // socket.io-client's retries / ackTimeout. Courier saves a retry once.
      retries: 1000,
      ackTimeout: 10000,
    });
    const s = this.socket;
    s.on("connect", () => {
      this.note(`connect${this.connects ? ` (recovered: ${s.recovered})` : ""}`);
      this.connects += 1;
      if (this.connects === 1) return;
      stats.reconnects += 1;
      if (s.recovered) stats.recovered += 1;
      else stats.unrecovered.push(`${this.name} at ${elapsed().trim()} s`);
    });
    s.on("disconnect", (reason) => {
      if (closing) return;
      this.note(`disconnect (${reason})`);
      stats.disconnects[reason] = (stats.disconnects[reason] ?? 0) + 1;
      // socket.io-client's retry queue (a private field): the send in flight, unacknowledged,
      // is sent again after the reconnect, with its tempId.
      stats.inFlight += (s._queue ?? []).filter((p) => p.pending).length;
      if (reason === "io server disconnect") say(`${this.name}: the server disconnected it: it will not reconnect`);
    });
    s.on("connect_error", (e) => {
      stats.connectErrors += 1;
      const d = e.description;
      const why = `${e.message}${d ? ` (${typeof d === "object" ? d.message ?? d.code ?? JSON.stringify(d) : d})` : ""}`;
      stats.connectErrorKinds[why] = (stats.connectErrorKinds[why] ?? 0) + 1;
      if (!s.active) say(`${this.name}: CONNECT refused, not retried: ${e.message}`);
    });
    s.on("error", (e) => stats.errors.push(`${this.name}: ${JSON.stringify(e)}`));
    s.on("receive_message", (msg) => this.received(msg));
  }

  /** Keeps `what` in the socket's trail. */
  note(what) {
    this.trail.push([Date.now() - started, what]);
  }

  received(msg) {
    const send = sends.get(msg?.content?.replace(/^rolling /, ""));
    if (!send || msg.receiverId !== this.user || send.client.index !== this.peerIndex) {
      foreign.push(`${this.name} got ${JSON.stringify(msg).slice(0, 200)}`);
      return;
    }
    deliveries.set(msg.id, (deliveries.get(msg.id) ?? 0) + 1);
    this.note(`got ${send.client.name}-${send.seq} (createdAt ${msg.createdAt})`);
    if (send.seq <= this.lastSeen) outOfOrder += 1;
    this.lastSeen = Math.max(this.lastSeen, send.seq);
  }

  send() {
    const seq = this.seq++;
    const tempId = `${this.name}-${seq}`;
    const send = { client: this, seq, id: null, at: Date.now() - started };
    sends.set(tempId, send);
    stats.sent += 1;
    const payload = { connectionId: this.conversation, content: `rolling ${tempId}`, tempId };
    this.socket.emit("send_message", payload, (err, ack) => {
      if (err || !ack?.savedMessage?.id) {
        stats.failed.push([tempId, err ? err.message : JSON.stringify(ack)]);
        return;
      }
      const now = Date.now() - loadStart;
      send.id = ack.savedMessage.id;
      this.note(`acked ${tempId} (createdAt ${ack.savedMessage.createdAt})`);
      stats.acked += 1;
      if (loadOn) {
        stats.ackTimes.push(now);
        if (now - this.lastAck > this.longestGap.ms) this.longestGap = { ms: now - this.lastAck, at: now };
        this.lastAck = now;
      }
    });
  }
}

// ---------------------------------------------------------------------------------------
// The run

/**
 * Stops `node` with `signal`, waits until its sockets have reconnected (through nginx, to the
 * other node, with connection state recovery), then starts it again.
 */
async function restart(node, signal) {
  const other = nodes.find((n) => n !== node);
  const had = await node.sockets();
  const reconnectsBefore = stats.reconnects;
  const t0 = Date.now();
  say(`${node.name}: ${signal} (${had} sockets on it)`);
  const exitMs = await node.stop(signal);
  say(`${node.name}: exited in ${exitMs} ms`);
  await until(
    `the ${had} sockets of ${node.name} to reconnect to ${other.name}`,
    async () =>
      stats.reconnects - reconnectsBefore >= had &&
      clients.every((c) => c.socket.connected) &&
      (await other.sockets()) === clients.length,
    60000,
  );
  const movedMs = Date.now() - t0;
  const reconnects = stats.reconnects - reconnectsBefore;
  say(`${node.name}: every socket on ${other.name} after ${movedMs} ms; starting ${node.name} again`);
  await node.start();
  const backMs = Date.now() - t0;
  return { node: node.name, other: other.name, signal, had, exitMs, movedMs, reconnects, backMs };
}

const [nodeA, nodeB] = nodes;
await nodeA.start(); // migrates the new database
const { users, conversations } = makeFixtures();
await nodeB.start();
say(`nodes listening: ${nodes.map((n) => `${n.name} on ${n.port}`).join(", ")}; nginx at ${cfg.url}`);

const clients = users.map((user, i) => {
  const k = Math.floor(i / 2);
  return new Client(i, user, i % 2 === 0 ? i + 1 : i - 1, conversations[k]);
});
await until("every socket to connect", () => clients.every((c) => c.socket.connected), 30000);
await until("the nodes to count every socket", async () => (await totalSockets()) === clients.length, 10000);
const spread = await Promise.all(nodes.map((n) => n.sockets()));
say(`connected: ${spread.map((n, i) => `${nodes[i].name} ${n}`).join(", ")}`);

// The load: each socket sends at rate / sockets per second, phases spread over the interval.
const interval = (1000 * shape.sockets) / shape.rate;
loadStart = Date.now();
loadOn = true;
const timers = clients.map((c) =>
  setTimeout(() => {
    c.send();
    c.timer = setInterval(() => c.send(), interval);
  }, Math.random() * interval),
);
say(`load: ${shape.rate} msg/s over ${shape.sockets} sockets`);
await sleep(shape.settle * 1000);

const restarts = [];
let failure = null;
try {
  for (const node of nodes) {
    restarts.push(await restart(node, cfg.signal));
    await sleep(shape.settle * 1000);
  }
} catch (e) {
  failure = e.message;
  say(`FAILED: ${failure}`);
}

for (const t of timers) clearTimeout(t);
for (const c of clients) clearInterval(c.timer);
const loadSecs = (Date.now() - loadStart) / 1000;
say(`load stopped after ${loadSecs.toFixed(1)} s; waiting for the last acks and deliveries`);
const settled = () => stats.acked + stats.failed.length === stats.sent;
await until("every send to be acknowledged", settled, 60000).catch((e) => say(e.message));
loadOn = false;
const ackedIds = [...sends.values()].filter((s) => s.id);
await until(
  "every acknowledged message to reach the other member",
  () => ackedIds.every((s) => deliveries.has(s.id)),
  20000,
).catch((e) => say(e.message));
await sleep(1000); // a duplicate would come now

// What the database holds.
const rows = psql(`SELECT id, content, "createdAt" FROM messages`)
  .split("\n")
  .filter(Boolean)
  .map((line) => line.split("\t"));
const byContent = new Map();
for (const [id, content] of rows) {
  const ids = byContent.get(content) ?? [];
  ids.push(id);
  byContent.set(content, ids);
}
const savedTwice = [...byContent.entries()].filter(([, ids]) => ids.length > 1);
const notSaved = ackedIds.filter((s) => !(byContent.get(`rolling ${s.client.name}-${s.seq}`) ?? []).includes(s.id));
const unknownRows = rows.filter(([, content]) => !sends.has(content.replace(/^rolling /, "")));
const notDelivered = ackedIds.filter((s) => !deliveries.has(s.id));
const deliveredTwice = [...deliveries.entries()].filter(([, n]) => n > 1);
const unacked = stats.sent - stats.acked;

closing = true;
for (const c of clients) c.socket.close();
// What the sender and the receiver of a lost message saw around it (stderr).
for (const m of notDelivered.slice(0, 3)) {
  const receiver = clients[m.client.peerIndex];
  const row = rows.find(([id]) => id === m.id);
  say(`not delivered: ${m.client.name}-${m.seq}, sent at ${(m.at / 1000).toFixed(3)} s, createdAt ${row?.[2]}`);
  for (const c of [m.client, receiver]) {
    const near = c.trail.filter(([t]) => Math.abs(t - m.at) < 3000);
    say(`  ${c === receiver ? "receiver" : "sender"} ${c.name}:`);
    for (const [t, what] of near) say(`    ${(t / 1000).toFixed(3)} s ${what}`);
  }
}
await Promise.all(nodes.map((n) => n.stop("SIGTERM")));

// ---------------------------------------------------------------------------------------
// The summary

const problems = [];
if (failure) problems.push(failure);
if (spread.some((n) => !n)) problems.push("nginx sent every socket to one node (ip_hash)");
if (unacked > 0) problems.push(`${unacked} sends not acknowledged`);
if (notSaved.length || savedTwice.length || unknownRows.length) problems.push("not saved exactly once");
if (notDelivered.length || deliveredTwice.length || foreign.length) problems.push("not delivered exactly once");
if (outOfOrder) problems.push(`${outOfOrder} messages received out of their sender's order`);
if (stats.unrecovered.length) problems.push(`${stats.unrecovered.length} reconnects not recovered`);
for (const r of restarts) {
  if (r.signal === "SIGTERM" && r.exitMs >= cfg.stopTimeoutSecs * 1000)
    problems.push(`${r.node} took ${r.exitMs} ms to stop, past TimeoutStopSec=${cfg.stopTimeoutSecs}s`);
}
if (restarts.length < nodes.length) problems.push("not every node was restarted");
if (stats.errors.length) problems.push(`${stats.errors.length} error events (${stats.errors[0]})`);

const times = [...stats.ackTimes].sort((a, b) => a - b);
let quiet = { ms: 0, at: 0 };
for (let i = 1; i < times.length; i++) {
  if (times[i] - times[i - 1] > quiet.ms) quiet = { ms: times[i] - times[i - 1], at: times[i] };
}
const worst = clients.reduce((w, c) => (c.longestGap.ms > w.longestGap.ms ? c : w), clients[0]);
const s = (ms) => `${(ms / 1000).toFixed(2)} s`;
const examples = (list) => (list.length ? ` e.g. ${list.slice(0, 3).join(", ")}` : "");
const polling = clients.filter((c) => c.pollingFirst).length;
const out = [
  `rolling restart (${cfg.mode}, ${cfg.signal}): ${clients.length} sockets (${polling} starting on long-polling, ` +
    `${clients.length - polling} WebSocket only) in ${conversations.length} conversations, ` +
    `${shape.rate} msg/s for ${loadSecs.toFixed(1)} s, through nginx (ip_hash) to 2 release nodes`,
  `  sockets at start:  ${spread.map((n, i) => `${nodes[i].name} ${n}`).join(", ")}`,
  ...restarts.map(
    (r) =>
      `  ${r.node} ${r.signal}:  ${r.had} sockets on it; exited in ${s(r.exitMs)}` +
      (r.signal === "SIGTERM" ? ` (TimeoutStopSec ${cfg.stopTimeoutSecs} s)` : "") +
      `; every socket on ${r.other} at ${s(r.movedMs)} (${r.reconnects} reconnects); ` +
      `${r.node} listening again at ${s(r.backMs)}`,
  ),
  `  acked:             ${stats.acked} / ${stats.sent} sent (${stats.inFlight} in flight when their socket dropped, ` +
    `sent again with their tempId)` +
    (stats.failed.length ? ` (${stats.failed.length} failed:${examples(stats.failed.map((f) => f.join(" ")))})` : ""),
  `  saved once:        ${rows.length} rows for ${ackedIds.length} acked messages; ${notSaved.length} missing, ` +
    `${savedTwice.length} saved twice, ${unknownRows.length} unknown${examples(savedTwice.map(([c]) => c))}`,
  `  delivered once:    ${ackedIds.length - notDelivered.length} / ${ackedIds.length} received by the other member; ` +
    `${notDelivered.length} missing, ${deliveredTwice.length} twice, ${foreign.length} stray, ${outOfOrder} out of order` +
    examples(notDelivered.map((m) => `${m.client.name}-${m.seq}`)),
  `  recovered:         ${stats.recovered} / ${stats.reconnects} reconnects with socket.recovered true` +
    examples(stats.unrecovered) +
    ` (disconnects: ${Object.entries(stats.disconnects).map(([r, n]) => `${n} ${r}`).join(", ") || "none"}; ` +
    `${stats.connectErrors} connect errors retried` +
    (stats.connectErrors
      ? `: ${Object.entries(stats.connectErrorKinds).map(([k, n]) => `${n} ${k}`).join(", ")}`
      : "") +
    ")",
  `  longest gap:       ${s(worst.longestGap.ms)} between two acks of one socket (${worst.name}, at ` +
    `${s(worst.longestGap.at)}); ${s(quiet.ms)} with no ack from any socket (at ${s(quiet.at)})`,
  problems.length ? `  FAILED: ${problems.join("; ")}` : "  OK: nothing lost, nothing duplicated, every reconnect recovered",
];
process.stdout.write(`${out.join("\n")}\n`);
process.exit(problems.length ? 1 : 0);
