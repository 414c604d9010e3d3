// Raw HTTP against Courier's Engine.IO endpoint: origin checks and CORS on the polling
// handshake, the preflight and the WebSocket upgrade.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import WebSocket from "ws";
import { startServer } from "./harness.mjs";

const ALLOWED = "http://allowed.example";
const OTHER_ALLOWED = "https://second.example";
const DISALLOWED = "http://evil.example";

/** One HTTP request; resolves {status, headers, body}. */
function request(url, { method = "GET", headers = {}, body } = {}, ms = 5000) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, timeout: ms }, (res) => {
      let data = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (data += c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`no response within ${ms} ms`)));
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** Opens a WebSocket; resolves {opened: ws} or {status, body} of a refused upgrade. */
function upgrade(url, headers = {}, ms = 5000) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, handshakeTimeout: ms });
    // Frames can arrive together with the 101 answer: collect them from the start.
    ws.received = [];
    ws.on("message", (data) => ws.received.push(data.toString()));
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`no upgrade answer within ${ms} ms`));
    }, ms);
    ws.once("open", () => {
      clearTimeout(timer);
      resolve({ opened: ws });
    });
    ws.once("unexpected-response", (_req, res) => {
      clearTimeout(timer);
      let data = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (data += c));
      res.on("end", () => {
        ws.terminate();
        resolve({ status: res.statusCode, headers: res.headers, body: data });
      });
    });
    ws.once("error", (e) => {
      clearTimeout(timer);
      // An `error` after `unexpected-response` is ws aborting the request: already resolved.
      reject(e);
    });
  });
}

/** Closes a WebSocket and waits for it to be closed (at most 2 s). */
async function closeWs(ws) {
  if (ws.readyState === WebSocket.CLOSED) return;
  await new Promise((resolve) => {
    const timer = setTimeout(() => {
      ws.terminate();
      resolve();
    }, 2000);
    ws.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
    ws.close();
  });
}

function parseHandshake(body) {
  assert.ok(body.startsWith("0{"), `an Engine.IO OPEN packet, got ${JSON.stringify(body)}`);
  return JSON.parse(body.slice(1));
}

describe("origin checks and CORS", () => {
  let server;
  let polling;
  let websocket;
  before(async () => {
    server = await startServer({ NEXTJS_URL: `${ALLOWED},${OTHER_ALLOWED}` });
    polling = `${server.url}/socket.io/?EIO=4&transport=polling`;
    websocket = `ws://127.0.0.1:${server.port}/socket.io/?EIO=4&transport=websocket`;
  });
  after(async () => {
    await server?.stop();
  });

  test("no Origin: the polling handshake answers 200 with an OPEN packet", async () => {
    const res = await request(polling);
    assert.equal(res.status, 200);
    const open = parseHandshake(res.body);
    assert.equal(typeof open.sid, "string");
    assert.deepEqual(open.upgrades, ["websocket"]);
    assert.equal(typeof open.pingInterval, "number");
    assert.equal(typeof open.pingTimeout, "number");
    assert.equal(typeof open.maxPayload, "number");
    assert.equal(res.headers["access-control-allow-origin"], undefined);
  });

  test("a disallowed Origin gets 403 on the polling handshake", async () => {
    const res = await request(polling, { headers: { Origin: DISALLOWED } });
    assert.equal(res.status, 403);
    assert.equal(res.headers["access-control-allow-origin"], undefined);
    assert.ok(!res.body.startsWith("0{"), "no session was opened");
  });

  test("a disallowed Origin gets 403 on the preflight too, without CORS headers", async () => {
    const res = await request(polling, {
      method: "OPTIONS",
      headers: { Origin: DISALLOWED, "Access-Control-Request-Method": "POST" },
    });
    assert.equal(res.status, 403);
    assert.equal(res.headers["access-control-allow-origin"], undefined);
  });

  test("a disallowed Origin gets 403 on the WebSocket upgrade", async () => {
    const res = await upgrade(websocket, { Origin: DISALLOWED });
    assert.equal(res.opened, undefined, "the upgrade must be refused");
    assert.equal(res.status, 403);
  });

  for (const origin of [ALLOWED, OTHER_ALLOWED]) {
    test(`the allowed origin ${origin} gets CORS headers on the polling handshake`, async () => {
      const res = await request(polling, { headers: { Origin: origin } });
      assert.equal(res.status, 200);
      assert.equal(res.headers["access-control-allow-origin"], origin);
      assert.equal(res.headers["access-control-allow-credentials"], "true");
      parseHandshake(res.body);
    });
  }

  test("the allowed origin's preflight answers 204 with the CORS headers", async () => {
    const res = await request(polling, {
      method: "OPTIONS",
      headers: {
        Origin: ALLOWED,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
      },
    });
    assert.equal(res.status, 204);
    assert.equal(res.headers["access-control-allow-origin"], ALLOWED);
    assert.equal(res.headers["access-control-allow-credentials"], "true");
    const methods = (res.headers["access-control-allow-methods"] ?? "")
      .split(",")
      .map((m) => m.trim().toUpperCase());
    assert.ok(methods.includes("GET"), `GET in ${methods}`);
    assert.ok(methods.includes("POST"), `POST in ${methods}`);
    assert.equal(res.body, "");
  });

  test("the allowed origin can POST to its polling session with CORS headers", async () => {
    const open = parseHandshake((await request(polling, { headers: { Origin: ALLOWED } })).body);
    const url = `${polling}&sid=${encodeURIComponent(open.sid)}`;
    const res = await request(url, {
      method: "POST",
      headers: { Origin: ALLOWED, "Content-Type": "text/plain;charset=UTF-8" },
      body: "6", // a NOOP packet
    });
    assert.equal(res.status, 200);
    assert.equal(res.body, "ok");
    assert.equal(res.headers["access-control-allow-origin"], ALLOWED);
    assert.equal(res.headers["access-control-allow-credentials"], "true");
    // A disallowed origin cannot use that session.
    const foreign = await request(url, {
      method: "POST",
      headers: { Origin: DISALLOWED, "Content-Type": "text/plain;charset=UTF-8" },
      body: "6",
    });
    assert.equal(foreign.status, 403);
    // Close the session.
    await request(url, { method: "POST", headers: { Origin: ALLOWED }, body: "1" });
  });

  test("the allowed origin and no origin may upgrade to WebSocket", async () => {
    for (const headers of [{ Origin: ALLOWED }, {}]) {
      const res = await upgrade(websocket, headers);
      assert.ok(res.opened, `upgrade refused with ${res.status} ${res.body}`);
      const ws = res.opened;
      try {
        if (ws.received.length === 0) {
          await new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error("no OPEN packet")), 5000);
            ws.once("message", () => {
              clearTimeout(timer);
              resolve();
            });
          });
        }
        const open = parseHandshake(ws.received[0]);
        assert.deepEqual(open.upgrades, []);
      } finally {
        await closeWs(ws);
      }
    }
  });

  test("/healthz answers 200", async () => {
    const res = await request(`${server.url}/healthz`);
    assert.equal(res.status, 200);
  });
});

describe("a polling-only server", () => {
  let server;
  before(async () => {
    server = await startServer({ COURIER__ENGINEIO__TRANSPORTS: "polling" });
  });
  after(async () => {
    await server?.stop();
  });

  test("offers no upgrade and refuses the websocket transport", async () => {
    const res = await request(`${server.url}/socket.io/?EIO=4&transport=polling`);
    assert.equal(res.status, 200);
    assert.deepEqual(parseHandshake(res.body).upgrades, []);
    const ws = await upgrade(`ws://127.0.0.1:${server.port}/socket.io/?EIO=4&transport=websocket`);
    assert.equal(ws.opened, undefined, "the upgrade must be refused");
    assert.equal(ws.status, 400);
    assert.deepEqual(JSON.parse(ws.body), { code: 0, message: "Transport unknown" });
  });
});
