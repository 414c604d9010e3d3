// socket.io-client 4.8 over WebSocket: connect with a token; refusals carry the Node
// server's exact messages.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { io } from "socket.io-client";
import { startServer, token, first, SECRET } from "./harness.mjs";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

function client(auth, extra = {}) {
  return io(server.url, {
    transports: ["websocket"],
    reconnection: false,
    auth,
    ...extra,
  });
}

function sign(claims, secret = SECRET, alg = "HS256") {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const head = b64({ alg, typ: "JWT" });
  const body = b64(claims);
  const sig =
    alg === "none"
      ? ""
      : crypto.createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

test("connects over websocket with a valid token", async () => {
  const socket = client({ token: token("interop-user") });
  try {
    const { name } = await first(socket, ["connect", "connect_error"]);
    assert.equal(name, "connect");
    assert.ok(socket.id, "the server assigned a socket id");
    assert.equal(socket.io.engine.transport.name, "websocket");
  } finally {
    socket.close();
  }
});

test("the auth callback form works too", async () => {
  const socket = client((cb) => cb({ token: token("callback-user") }));
  try {
    const { name } = await first(socket, ["connect", "connect_error"]);
    assert.equal(name, "connect");
  } finally {
    socket.close();
  }
});

const refusals = [
  ["no token", {}, "Authentication error: No token"],
  ["a bad token", { token: "not-a-jwt" }, "Authentication error: Invalid token"],
  [
    "a wrong signature",
    { token: sign({ userId: "u", exp: Math.floor(Date.now() / 1000) + 60 }, "other-secret") },
    "Authentication error: Invalid token",
  ],
  [
    "an expired token",
    { token: sign({ userId: "u", exp: Math.floor(Date.now() / 1000) - 5 }) },
    "Authentication error: Invalid token",
  ],
  [
    "alg none",
    { token: sign({ userId: "u", exp: Math.floor(Date.now() / 1000) + 60 }, SECRET, "none") },
    "Authentication error: Invalid token",
  ],
];

for (const [what, auth, message] of refusals) {
  test(`connect_error with ${what}`, async () => {
    const socket = client(auth);
    try {
      const { name, args } = await first(socket, ["connect", "connect_error"]);
      assert.equal(name, "connect_error");
      assert.equal(args[0].message, message);
    } finally {
      socket.close();
    }
  });
}

test("a signed token from a foreign issuer with the same secret connects", async () => {
  const socket = client({
    token: sign({ userId: "nextjs-user", exp: Math.floor(Date.now() / 1000) + 60, aud: "app" }),
  });
  try {
    const { name } = await first(socket, ["connect", "connect_error"]);
    assert.equal(name, "connect");
  } finally {
    socket.close();
  }
});
