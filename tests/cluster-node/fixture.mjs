// A Node socket.io server as the app's socket-server runs it: socket.io 4.8 with
// @socket.io/redis-adapter 8 on ioredis, the `online_users` set, and the handlers the mixed
// cluster test needs (send_message, presence, calls), on the same database as Courier.
// Written for the test (the behaviour of socket-server/server.ts, not its code).
//
// Environment: PORT (0: a free one), REDIS_URL, DATABASE_URL, DB_SCHEMA, SOCKET_SECRET, ADAPTER
// ("classic", the default: createAdapter on one Redis; "sharded": createShardedAdapter on a
// Redis Cluster, REDIS_URL then redis+cluster://host:port,host:port,…).
// Prints `listening on http://127.0.0.1:PORT` once ready, and `fetchSockets USER N` each time
// a user's last local socket goes and it asks the cluster for their sockets.
//
// `GET /ops/<op>?…` runs one of the server API calls a Node server makes on the whole
// cluster (the Redis adapter carries them to Courier) and answers its result as JSON:
// emit (io.to(room).emit), binary (a Buffer argument), fetch (fetchSockets), rooms
// (allRooms), join / leave (socketsJoin / socketsLeave), disconnect (disconnectSockets),
// ask (io.to(room).timeout(ms).emitWithAck), remote-join (the adapter's request for one
// socket by id). The sharded adapter has no allRooms nor remote-join.
import http from "node:http";
import crypto from "node:crypto";
import { Server } from "socket.io";
import { createAdapter, createShardedAdapter } from "@socket.io/redis-adapter";
import { Redis, Cluster } from "ioredis";
import pg from "pg";

const ONLINE_USERS = "online_users";
const sharded = process.env.ADAPTER === "sharded";
const pub = sharded
  ? new Cluster(
      process.env.REDIS_URL.replace("redis+cluster://", "")
        .split(",")
        .map((node) => ({ host: node.split(":")[0], port: Number(node.split(":")[1]) })),
      { shardedSubscribers: true },
    )
  : new Redis(process.env.REDIS_URL);
const sub = pub.duplicate();
pub.on("error", () => {});
sub.on("error", () => {});
const db = new pg.Pool({
  connectionString: process.env.DATABASE_URL,
  options: `-c search_path=${process.env.DB_SCHEMA}`,
  max: 4,
});

/** HS256 JWT verification, as jsonwebtoken.verify does for the app's tokens. */
function verify(token) {
  const [head, body, sig] = String(token).split(".");
  const expected = crypto
    .createHmac("sha256", process.env.SOCKET_SECRET)
    .update(`${head}.${body}`)
    .digest("base64url");
  if (!sig || sig !== expected) throw new Error("bad signature");
  const claims = JSON.parse(Buffer.from(body, "base64url").toString());
  if (claims.exp && claims.exp * 1000 < Date.now()) throw new Error("expired");
  return claims;
}

/** The /ops endpoint (see above). */
async function ops(req, res) {
  const url = new URL(req.url, "http://x");
  const q = (name) => url.searchParams.get(name);
  const answer = (status, body) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  try {
    switch (url.pathname) {
      case "/ops/emit":
        io.to(q("room")).emit(q("event"), JSON.parse(q("arg")));
        return answer(200, { ok: true });
      case "/ops/binary":
        io.to(q("room")).emit(q("event"), { name: "a.bin", body: Buffer.from([1, 2, 3]) }, Buffer.from([255]));
        return answer(200, { ok: true });
      case "/ops/fetch": {
        const found = await io.in(q("room")).fetchSockets();
        return answer(200, found.map((s) => ({ id: s.id, rooms: [...s.rooms], data: s.data })));
      }
      case "/ops/rooms":
        return answer(200, [...(await io.of("/").adapter.allRooms())]);
      case "/ops/join":
        io.in(q("room")).socketsJoin(q("join"));
        return answer(200, { ok: true });
      case "/ops/leave":
        io.in(q("room")).socketsLeave(q("leave"));
        return answer(200, { ok: true });
      case "/ops/disconnect":
        io.in(q("room")).disconnectSockets(q("close") === "1");
        return answer(200, { ok: true });
      case "/ops/ask": {
        const responses = await io.to(q("room")).timeout(Number(q("timeout"))).emitWithAck(q("event"), q("arg"));
        return answer(200, responses);
      }
      case "/ops/remote-join": {
        // The adapter's request for one socket by its id ({sid, room}, which adapter 8.3
        // still answers though its own API now sends socketsJoin's form): only the node that
        // holds the socket answers {requestId}.
        const requestId = crypto.randomUUID();
        const listen = pub.duplicate();
        listen.on("error", () => {});
        await listen.subscribe("socket.io-response#/#");
        const answered = new Promise((resolve) =>
          listen.on("message", (_channel, message) => {
            if (JSON.parse(message).requestId === requestId) resolve(true);
          }),
        );
        await pub.publish(
          "socket.io-request#/#",
          JSON.stringify({ uid: "fixture", requestId, type: 2, sid: q("sid"), room: q("join") }),
        );
        const ok = await Promise.race([answered, new Promise((r) => setTimeout(() => r(false), 3000))]);
        listen.disconnect();
        return answer(ok ? 200 : 504, { ok });
      }
      default:
        return answer(404, { error: "no such op" });
    }
  } catch (e) {
    return answer(500, { error: String(e && e.message) });
  }
}

const server = http.createServer((req, res) => {
  if (req.url.startsWith("/ops/")) ops(req, res);
});
const io = new Server(server, {
  adapter: sharded ? createShardedAdapter(pub, sub) : createAdapter(pub, sub),
});
const local = new Map(); // userId -> Set of socket ids on this server

io.use((socket, next) => {
  try {
    socket.data.userId = verify(socket.handshake.auth.token).userId;
    next();
  } catch {
    next(new Error("Authentication error: Invalid token"));
  }
});

async function markOnline(userId) {
  await pub.sadd(ONLINE_USERS, userId);
  io.emit("user_online_status", {
    userId,
    isOnline: true,
    lastSeenAt: new Date(),
    timestamp: new Date(),
  });
}

async function markOffline(userId) {
  await pub.srem(ONLINE_USERS, userId);
  io.emit("user_offline_status", {
    userId,
    isOnline: false,
    lastSeenAt: new Date(),
    timestamp: new Date(),
  });
}

io.on("connection", (socket) => {
  const userId = socket.data.userId;
  if (!local.has(userId)) {
    local.set(userId, new Set([socket.id]));
    markOnline(userId);
  } else {
    local.get(userId).add(socket.id);
  }
  socket.join(userId);

  socket.on("join_chat", (connectionId) => socket.join(connectionId));

  socket.on("send_message", async ({ connectionId, content, tempId }) => {
    try {
      const { rows } = await db.query(
        'SELECT "user1Id", "user2Id", "status" FROM "connections" WHERE "id" = $1',
        [connectionId],
      );
      const connection = rows[0];
      if (!connection || connection.status !== "ACTIVE") {
        socket.emit("error", { message: "Connection is not active." });
        return;
      }
      const receiverId =
        connection.user1Id === userId ? connection.user2Id : connection.user1Id;
      const inserted = await db.query(
        'INSERT INTO "messages" ("id", "connectionId", "senderId", "receiverId", "content", ' +
          '"isRead", "createdAt", "updatedAt") VALUES ($1, $2, $3, $4, $5, false, $6, $6) ' +
          "RETURNING *",
        [crypto.randomUUID(), connectionId, userId, receiverId, content || "", new Date()],
      );
      const message = inserted.rows[0];
      io.to(receiverId).emit("receive_message", message);
      socket.emit("message_sent", { tempId, savedMessage: message });
    } catch (e) {
      console.error(e);
      socket.emit("error", { message: "Message failed to send." });
    }
  });

  socket.on("call:initiate", async ({ recipientId, callType, roomName }) => {
    if ((await pub.sismember(ONLINE_USERS, recipientId)) !== 1) {
      socket.emit("call:failed", { reason: "Recipient is offline", code: "USER_OFFLINE" });
      return;
    }
    io.to(recipientId).emit("call:incoming", {
      callerId: userId,
      callerName: "User",
      callerImage: null,
      callType,
      roomName,
      connectionId: roomName,
      timestamp: new Date(),
    });
  });

  socket.on("call:answer", ({ callerId, connectionId }) => {
    io.to(callerId).emit("call:accepted", {
      participantId: userId,
      connectionId,
      timestamp: new Date(),
    });
  });

  socket.on("disconnect", () => {
    const sockets = local.get(userId);
    if (!sockets) return;
    sockets.delete(socket.id);
    if (sockets.size > 0) return;
    local.delete(userId);
    io.in(userId)
      .fetchSockets()
      .then((found) => {
        console.log(`fetchSockets ${userId} ${found.length}`);
        if (found.length === 0) markOffline(userId);
      })
      .catch((e) => console.log(`fetchSockets ${userId} failed ${e.message}`));
  });
});

server.listen(Number(process.env.PORT || 0), "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
