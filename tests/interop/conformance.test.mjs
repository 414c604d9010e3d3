// The conformance example's Socket.IO server with socket.io-client 4.8: binary arguments in
// events and acknowledgements, namespaces and the CONNECT auth payload.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startConformance, connectClient, connected, next, closeAll } from "./harness.mjs";

let server;
before(async () => {
  server = await startConformance();
});
after(async () => {
  await server?.stop();
});

function assertBuffer(value, bytes) {
  assert.ok(Buffer.isBuffer(value), `expected a Buffer, got ${Object.prototype.toString.call(value)}`);
  assert.deepEqual([...value], bytes);
}

for (const transports of [["websocket"], ["polling"]]) {
  describe(`conformance server over ${transports[0]}`, () => {
    test("message with Buffers comes back as message-back with the same Buffers", async () => {
      const socket = connectClient(server.url, { transports });
      try {
        const auth = next(socket, "auth");
        await connected(socket);
        assert.deepEqual((await auth)[0], {});
        assert.equal(socket.io.engine.transport.name, transports[0]);
        const back = next(socket, "message-back");
        socket.emit("message", Buffer.from([1, 2, 3]), "text", { nested: Buffer.from([4]) });
        const args = await back;
        assert.equal(args.length, 3);
        assertBuffer(args[0], [1, 2, 3]);
        assert.equal(args[1], "text");
        assert.deepEqual(Object.keys(args[2]), ["nested"]);
        assertBuffer(args[2].nested, [4]);
      } finally {
        closeAll(socket);
      }
    });

    test("plain message-back keeps its arguments", async () => {
      const socket = connectClient(server.url, { transports });
      try {
        await connected(socket);
        const back = next(socket, "message-back");
        socket.emit("message", 1, "2", { three: [3] }, null, true);
        assert.deepEqual(await back, [1, "2", { three: [3] }, null, true]);
      } finally {
        closeAll(socket);
      }
    });

    test("message-with-ack with a Buffer resolves with that Buffer", async () => {
      const socket = connectClient(server.url, { transports });
      try {
        await connected(socket);
        const result = await socket.timeout(2000).emitWithAck("message-with-ack", Buffer.from([5, 6]));
        assertBuffer(result, [5, 6]);
        // Several arguments (some binary) come back through the callback form.
        const args = await new Promise((resolve, reject) => {
          socket.timeout(2000).emit("message-with-ack", "a", Buffer.from([7]), { b: Buffer.from([8, 9]) }, (err, ...rest) =>
            err ? reject(err) : resolve(rest),
          );
        });
        assert.equal(args.length, 3);
        assert.equal(args[0], "a");
        assertBuffer(args[1], [7]);
        assertBuffer(args[2].b, [8, 9]);
        // And a text-only ack.
        assert.deepEqual(await socket.timeout(2000).emitWithAck("message-with-ack", { x: 1 }), { x: 1 });
      } finally {
        closeAll(socket);
      }
    });

    test("/custom with auth {token: 'abc'} gets auth {token: 'abc'}", async () => {
      const socket = connectClient(`${server.url}/custom`, { transports, auth: { token: "abc" } });
      try {
        const auth = next(socket, "auth");
        await connected(socket);
        assert.deepEqual((await auth)[0], { token: "abc" });
        // The echo works on that namespace too.
        const back = next(socket, "message-back");
        socket.emit("message", Buffer.from([10]));
        assertBuffer((await back)[0], [10]);
      } finally {
        closeAll(socket);
      }
    });

    test("an unknown namespace gets connect_error 'Invalid namespace'", async () => {
      const socket = connectClient(`${server.url}/nope`, { transports });
      try {
        await assert.rejects(connected(socket), /connect_error: Invalid namespace/);
      } finally {
        closeAll(socket);
      }
    });
  });
}

test("the default client (polling, then the upgrade) echoes binary after upgrading", async () => {
  const socket = connectClient(server.url, {});
  try {
    await connected(socket);
    if (socket.io.engine.transport.name !== "websocket") await next(socket.io.engine, "upgrade");
    assert.equal(socket.io.engine.transport.name, "websocket");
    const result = await socket.timeout(2000).emitWithAck("message-with-ack", Buffer.from([0, 255]));
    assertBuffer(result, [0, 255]);
  } finally {
    closeAll(socket);
  }
});
