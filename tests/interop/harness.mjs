// Starts the courier binary (and the conformance example) on a free port, seeds demo data,
// signs tokens with it, and small helpers shared by the interop tests.
import { spawn, execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";
import fs from "node:fs";
import os from "node:os";
import crypto from "node:crypto";
import { once } from "node:events";
import assert from "node:assert/strict";
import { io } from "socket.io-client";

const here = path.dirname(fileURLToPath(import.meta.url));
export const COURIER_BIN =
  process.env.COURIER_BIN ?? path.resolve(here, "../../target/debug/courier");
export const CONFORMANCE_BIN =
  process.env.CONFORMANCE_BIN ?? path.resolve(here, "../../target/debug/examples/conformance");
export const SECRET = "interop-test-secret";

/** Every child process still running: killed when the test process exits, whatever happens. */
const live = new Set();
process.on("exit", () => {
  for (const proc of live) {
    try {
      proc.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
});

/** The environment for the server and the token command. */
function courierEnv(extra = {}) {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    RUST_LOG: "info",
    SOCKET_SECRET: SECRET,
    COURIER__SERVER__HOST: "127.0.0.1",
    PORT: "0",
    COURIER__METRICS__BIND: "127.0.0.1:0",
    DATABASE_URL: "sqlite::memory:",
    ...extra,
  };
}

/**
 * Spawns `bin args` and resolves once its stderr logs `listening on http://HOST:PORT`.
 * The process is killed if it does not get there within `ms`.
 */
async function spawnListening(bin, args, env, ms = 20000) {
  const proc = spawn(bin, args, { env, stdio: ["ignore", "ignore", "pipe"] });
  live.add(proc);
  proc.on("exit", () => live.delete(proc));
  let log = "";
  proc.stderr.on("data", (chunk) => {
    log += chunk;
  });
  try {
    const port = await new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${path.basename(bin)} did not start within ${ms} ms:\n${log}`)),
        ms,
      );
      const onData = () => {
        const m = log.match(/listening on http:\/\/[^\s:]+:(\d+)/);
        if (m) {
          clearTimeout(timer);
          proc.stderr.off("data", onData);
          resolve(Number(m[1]));
        }
      };
      proc.stderr.on("data", onData);
      proc.once("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
      proc.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${path.basename(bin)} exited with ${code ?? signal}:\n${log}`));
      });
    });
    return {
      proc,
      port,
      url: `http://127.0.0.1:${port}`,
      log: () => log,
      /** SIGTERM, then SIGKILL if it has not exited within `ms`; resolves with the exit time in ms. */
      async stop(ms = 15000) {
        if (proc.exitCode !== null || proc.signalCode !== null) return 0;
        const started = Date.now();
        const exited = once(proc, "exit");
        proc.kill("SIGTERM");
        const timer = setTimeout(() => proc.kill("SIGKILL"), ms);
        try {
          await exited;
        } finally {
          clearTimeout(timer);
        }
        return Date.now() - started;
      },
    };
  } catch (e) {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill("SIGKILL");
      await once(proc, "exit");
    }
    throw e;
  }
}

/** Starts courier; resolves once it logs its port. */
export async function startServer(extraEnv = {}) {
  return spawnListening(COURIER_BIN, ["serve"], courierEnv(extraEnv));
}

/** Starts the conformance example on a free port. */
export async function startConformance() {
  const server = await spawnListening(CONFORMANCE_BIN, ["--port", "0"], {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    RUST_LOG: "info",
  });
  // It binds 0.0.0.0; connect over loopback.
  return server;
}

/** A fresh SQLite database file in its own temp directory; `remove()` deletes it. */
export function tempDatabase() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "courier-interop-"));
  const file = path.join(dir, "courier.db");
  return {
    file,
    url: `sqlite://${file}?mode=rwc`,
    remove() {
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs `courier seed-demo` against `databaseUrl`; returns the ids and tokens it printed. */
export function seedDemo(databaseUrl, extraEnv = {}) {
  const out = execFileSync(COURIER_BIN, ["seed-demo"], {
    env: courierEnv({ DATABASE_URL: databaseUrl, ...extraEnv }),
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 20000,
  });
  const field = (name) => {
    const m = out.match(new RegExp(`^${name}:\\s*(\\S+)\\s*$`, "m"));
    assert.ok(m, `seed-demo printed no "${name}:" line:\n${out}`);
    return m[1];
  };
  return {
    connectionId: field("connectionId"),
    alice: field("alice"),
    aliceToken: field("alice token"),
    bob: field("bob"),
    bobToken: field("bob token"),
  };
}

/** A token for `user` from `courier token`. */
export function token(user, ttl = 60, extraEnv = {}) {
  return execFileSync(COURIER_BIN, ["token", "--user", user, "--ttl", String(ttl)], {
    env: courierEnv(extraEnv),
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 20000,
  }).trim();
}

/** Resolves with the first of `events` the socket emits (name and args). */
export function first(socket, events, ms = 5000) {
  return new Promise((resolve, reject) => {
    const handlers = new Map();
    const cleanup = () => {
      clearTimeout(timer);
      for (const [name, fn] of handlers) socket.off(name, fn);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`none of ${events.join(", ")} within ${ms} ms`));
    }, ms);
    for (const name of events) {
      const fn = (...args) => {
        cleanup();
        resolve({ name, args });
      };
      handlers.set(name, fn);
      socket.on(name, fn);
    }
  });
}

/** Resolves with the args of the next `event` on `emitter`; rejects after `ms`. */
export function next(emitter, event, ms = 5000) {
  return first(emitter, [event], ms).then(({ args }) => args);
}

/** A socket.io-client socket that never reconnects and never shares its manager. */
export function connectClient(url, opts = {}) {
  return io(url, { reconnection: false, forceNew: true, ...opts });
}

/** Resolves once `socket` is connected; rejects on `connect_error` or after `ms`. */
export async function connected(socket, ms = 5000) {
  if (socket.connected) return;
  const { name, args } = await first(socket, ["connect", "connect_error"], ms);
  if (name !== "connect") throw new Error(`connect_error: ${args[0]?.message}`);
}

/** Resolves once the engine has upgraded to WebSocket (at once if it already has). */
export async function upgraded(socket, ms = 5000) {
  const engine = socket.io.engine;
  if (engine.transport.name === "websocket") return;
  await next(engine, "upgrade", ms);
}

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** Checks the shape of a saved message sent by `from` to `to` on `connectionId`. */
export function assertSavedMessage(msg, { connectionId, from, to, content }) {
  assert.equal(typeof msg, "object");
  assert.equal(typeof msg.id, "string");
  assert.ok(msg.id.length > 0, "the message has an id");
  assert.equal(msg.connectionId, connectionId);
  assert.equal(msg.senderId, from);
  assert.equal(msg.receiverId, to);
  assert.equal(msg.content, content);
  assert.equal(msg.isRead, false);
  assert.match(msg.createdAt, ISO_UTC);
  assert.match(msg.updatedAt, ISO_UTC);
  assert.ok(!Number.isNaN(Date.parse(msg.createdAt)));
  assert.equal(msg.mediaUrl, null);
}

/** A unique tempId. */
export function tempId(label = "t") {
  return `${label}-${crypto.randomUUID()}`;
}

/**
 * Both join the conversation (with acks), then `alice` sends a message: she gets
 * `message_sent` with her tempId, `bob` gets `receive_message` with the same saved message.
 * Returns the saved message.
 */
export async function chatRoundTrip(alice, bob, demo, label = "hello") {
  for (const s of [alice, bob]) {
    const ack = await s.timeout(5000).emitWithAck("join_chat", demo.connectionId);
    assert.deepEqual(ack, { ok: true, connectionId: demo.connectionId });
  }
  const id = tempId(label);
  const content = `${label} from alice ${id}`;
  const sent = next(alice, "message_sent");
  const received = next(bob, "receive_message");
  alice.emit("send_message", { connectionId: demo.connectionId, content, tempId: id });
  const [[sentPayload], [receivedMessage]] = await Promise.all([sent, received]);
  assert.equal(sentPayload.tempId, id);
  assertSavedMessage(sentPayload.savedMessage, {
    connectionId: demo.connectionId,
    from: demo.alice,
    to: demo.bob,
    content,
  });
  assert.deepEqual(receivedMessage, sentPayload.savedMessage);
  return sentPayload.savedMessage;
}

/**
 * Closes every socket given and waits `ms` so their close packets reach the server before
 * it is stopped (a long-polling client's close is a POST; SIGTERM right after it may leave the
 * session, and its pending GET, open until the server's shutdown timeout).
 */
export async function closeAndSettle(sockets, ms = 300) {
  closeAll(...sockets);
  await new Promise((r) => setTimeout(r, ms));
}

/** Closes every socket given (ignoring those already closed). */
export function closeAll(...sockets) {
  for (const s of sockets) {
    try {
      s?.close();
    } catch {
      // already closed
    }
  }
}
